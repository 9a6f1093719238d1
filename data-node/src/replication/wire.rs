//! Frames and effects to and from their protobuf form (`ember.proto`, "replication").

use std::sync::Arc;

use bytes::Bytes;
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
                    argv: argv.iter().map(|a| a.to_vec()).collect(),
                    clear: false,
                },
                Effect::Clear => pb::Effect {
                    argv: Vec::new(),
                    clear: true,
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
    #[error("an effect with neither a command nor clear")]
    EmptyEffect,
}

pub fn frame_from_pb(f: pb::Frame) -> Result<Frame, BadFrame> {
    let slot = slot(f.slot)?;
    let effects: Vec<Effect> = f
        .effects
        .into_iter()
        .map(|e| match (e.clear, e.argv.is_empty()) {
            (true, _) => Ok(Effect::Clear),
            (false, false) => Ok(Effect::Command(
                e.argv.into_iter().map(Bytes::from).collect(),
            )),
            (false, true) => Err(BadFrame::EmptyEffect),
        })
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
