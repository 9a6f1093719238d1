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

/// Encodes `ReplicationChunk { items: frames }` (what [`frame_to_pb`] of each, in a
/// chunk, encodes to) straight from the frames: no protobuf values are built, so no
/// argument is copied twice. For writers that encode every frame (the append-only file).
pub fn encode_frames_chunk(frames: &[Frame], buf: &mut Vec<u8>) {
    use prost::encoding::{encode_varint, encoded_len_varint as vlen};
    fn field(tag: u32, len: usize) -> usize {
        vlen(u64::from(tag << 3)) + vlen(len as u64) + len
    }
    fn effect_len(e: &Effect) -> usize {
        match e {
            Effect::Command(argv) => argv.iter().map(|a| field(1, a.len())).sum(),
            Effect::Clear => 2,
            Effect::Staged(part) => field(3, part.len()),
        }
    }
    fn frame_len(f: &Frame) -> usize {
        let end = if f.end != 0 { 1 + vlen(f.end) } else { 0 };
        let slot = if f.slot != 0 {
            1 + vlen(u64::from(f.slot))
        } else {
            0
        };
        end + slot
            + f.effects
                .iter()
                .map(|e| field(3, effect_len(e)))
                .sum::<usize>()
    }
    fn bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
        encode_varint(u64::from(tag << 3 | 2), buf);
        encode_varint(b.len() as u64, buf);
        buf.extend_from_slice(b);
    }
    for f in frames {
        let flen = frame_len(f);
        // items = 6 (ReplItem), frame = 1 (Frame)
        encode_varint(6 << 3 | 2, buf);
        encode_varint(field(1, flen) as u64, buf);
        encode_varint(1 << 3 | 2, buf);
        encode_varint(flen as u64, buf);
        if f.end != 0 {
            encode_varint(1 << 3, buf);
            encode_varint(f.end, buf);
        }
        if f.slot != 0 {
            encode_varint(2 << 3, buf);
            encode_varint(u64::from(f.slot), buf);
        }
        for e in f.effects.iter() {
            encode_varint(3 << 3 | 2, buf);
            encode_varint(effect_len(e) as u64, buf);
            match e {
                Effect::Command(argv) => argv.iter().for_each(|a| bytes(1, a, buf)),
                Effect::Clear => buf.extend_from_slice(&[2 << 3, 1]),
                Effect::Staged(part) => bytes(3, part, buf),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use prost::Message;

    /// The direct encoding is byte for byte prost's, for every kind of effect, empty
    /// arguments, offsets and slots of every varint length, zero included.
    #[test]
    fn frames_encode_as_prost_encodes_them() {
        let argv = |parts: &[&[u8]]| -> Vec<Bytes> {
            parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
        };
        let big = vec![b'x'; 300];
        let frames: Vec<Frame> = [
            (0u64, 0u16, vec![Effect::Clear]),
            (5, 1, vec![Effect::Command(argv(&[b"SET", b"k", b""]))]),
            (
                1 << 40,
                16383,
                vec![
                    Effect::Command(argv(&[b"RPUSH", &big, b"a"])),
                    Effect::Staged(Bytes::from(big.clone())),
                    Effect::Clear,
                ],
            ),
            (300, 200, vec![]),
        ]
        .into_iter()
        .map(|(end, slot, effects)| Frame {
            end,
            slot,
            effects: Arc::from(effects),
        })
        .collect();
        for n in 0..=frames.len() {
            let mut direct = Vec::new();
            encode_frames_chunk(&frames[..n], &mut direct);
            let chunk = pb::ReplicationChunk {
                items: frames[..n]
                    .iter()
                    .map(|f| pb::ReplItem {
                        item: Some(pb::repl_item::Item::Frame(frame_to_pb(f))),
                    })
                    .collect(),
                ..Default::default()
            };
            assert_eq!(direct, chunk.encode_to_vec(), "{n} frames");
        }
    }
}
