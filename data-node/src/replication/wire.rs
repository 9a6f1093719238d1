//! Frames and effects to and from their protobuf form (`ember.proto`, "replication").

use std::sync::Arc;

use ember_proto::pb;

use super::log::Frame;
use crate::db::Effect;

/// The replication stream's format version (`ReplicationChunk.format`). A replica
/// refuses a stream of another version rather than apply what it may misread.
pub const FORMAT: u32 = 1;

pub fn frame_to_pb(f: &Frame) -> pb::Frame {
    pb::Frame {
        end: f.end,
        slot: u32::from(f.slot),
        effects: f
            .effects
            .iter()
            .map(|e| match e {
                Effect::Command(argv) => pb::Effect {
                    argv: argv.clone(),
                    ..Default::default()
                },
                Effect::Clear => pb::Effect {
                    clear: true,
                    ..Default::default()
                },
                Effect::Staged(part) => pb::Effect {
                    staged: part.clone(),
                    ..Default::default()
                },
            })
            .collect(),
    }
}

/// Why a received frame cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum BadFrame {
    #[error("slot {0} is out of range")]
    Slot(u32),
    #[error("an effect with neither a command, clear nor a staged key")]
    EmptyEffect,
}

pub fn frame_from_pb(f: pb::Frame) -> Result<Frame, BadFrame> {
    let slot = slot(f.slot)?;
    let effects: Vec<Effect> = f
        .effects
        .into_iter()
        .map(
            |e| match (e.clear, e.argv.is_empty(), e.staged.is_empty()) {
                (true, _, _) => Ok(Effect::Clear),
                (false, false, _) => Ok(Effect::Command(e.argv)),
                (false, true, false) => Ok(Effect::Staged(e.staged)),
                (false, true, true) => Err(BadFrame::EmptyEffect),
            },
        )
        .collect::<Result<_, _>>()?;
    Ok(Frame {
        end: f.end,
        slot,
        effects: Arc::from(effects),
    })
}

pub fn slot(s: u32) -> Result<u16, BadFrame> {
    u16::try_from(s)
        .ok()
        .filter(|s| *s < ember_core::SLOT_COUNT)
        .ok_or(BadFrame::Slot(s))
}
