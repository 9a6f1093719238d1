//! How keys travel between nodes during a migration: a value becomes one or more
//! [`pb::KeyPart`]s (a big value is split so that no message, and no hold of the slot
//! lock, is large), and parts are applied to a table on the receiving side.
//!
//! The first part of a key replaces whatever the receiver had; later parts append.

use ember_proto::pb::{self, key_part};

use crate::db::{Key, SlotTable, Value};

/// Largest payload of one part (a piece of a big value).
pub const PART_BYTES: usize = 256 * 1024;
/// Largest number of collection elements in one part.
pub const PART_ITEMS: usize = 4096;

/// A value's size class: small values are encoded in one go, under one lock.
pub fn is_big(value: &Value) -> bool {
    match value {
        Value::Str(s) => s.len() > PART_BYTES,
        Value::Hash(h) => h.len() > PART_ITEMS,
        Value::List(l) => l.len() > PART_ITEMS,
        Value::Set(s) => s.len() > PART_ITEMS,
        Value::ZSet(z) => z.len() > PART_ITEMS,
    }
}

/// Number of pieces `value` is sent in.
pub fn piece_count(value: &Value) -> usize {
    let (n, per) = match value {
        Value::Str(s) => (s.len(), PART_BYTES),
        Value::Hash(h) => (h.len(), PART_ITEMS),
        Value::List(l) => (l.len(), PART_ITEMS),
        Value::Set(s) => (s.len(), PART_ITEMS),
        Value::ZSet(z) => (z.len(), PART_ITEMS),
    };
    n.div_ceil(per).max(1)
}

/// Piece `index` of `value` (see [`piece_count`]). Hashes and sets are cut by dense
/// positions and lists by index (piece `i` holds elements `i * PART_ITEMS ..`), so each
/// piece costs its own size whatever its index. If the value changes between pieces the
/// key is also marked dirty and sent again whole, so a torn sequence never survives.
pub fn encode_piece(
    key: &[u8],
    value: &Value,
    expire_at: Option<u64>,
    index: usize,
) -> pb::KeyPart {
    let bytes = |b: &[u8]| b.to_vec();
    let payload = match value {
        Value::Str(s) => {
            let start = (index * PART_BYTES).min(s.len());
            let end = (start + PART_BYTES).min(s.len());
            key_part::Value::String(s[start..end].to_vec())
        }
        Value::Hash(h) => {
            let mut items = Vec::new();
            for (f, v) in piece(h.len(), index).filter_map(|i| h.get_index(i)) {
                items.push(bytes(f));
                items.push(bytes(v));
            }
            key_part::Value::Hash(pb::Pairs { items })
        }
        Value::List(l) => key_part::Value::List(pb::Items {
            items: l.range(piece(l.len(), index)).map(|v| bytes(v)).collect(),
        }),
        Value::Set(s) => key_part::Value::Set(pb::Items {
            items: piece(s.len(), index)
                .filter_map(|i| s.get_index(i))
                .map(bytes)
                .collect(),
        }),
        Value::ZSet(z) => {
            let mut members = Vec::new();
            let mut scores = Vec::new();
            // By dense position: a part is O(PART_ITEMS), however far into the set.
            let from = (index * PART_ITEMS).min(z.len());
            for (m, score) in (from..(from + PART_ITEMS).min(z.len())).map(|i| z.at(i)) {
                members.push(bytes(m));
                scores.push(score);
            }
            key_part::Value::Zset(pb::ScoredItems { members, scores })
        }
    };
    pb::KeyPart {
        key: key.to_vec(),
        first: index == 0,
        deleted: false,
        expire_at_ms: expire_at.unwrap_or(0),
        value: Some(payload),
    }
}

/// The positions of piece `index` of a collection of `len` elements.
fn piece(len: usize, index: usize) -> std::ops::Range<usize> {
    let start = index.saturating_mul(PART_ITEMS).min(len);
    start..(start + PART_ITEMS).min(len)
}

/// The part saying `key` no longer exists.
pub fn deleted(key: &[u8]) -> pb::KeyPart {
    pb::KeyPart {
        key: key.to_vec(),
        first: true,
        deleted: true,
        expire_at_ms: 0,
        value: None,
    }
}

/// Payload bytes of a part (for progress).
pub fn part_bytes(part: &pb::KeyPart) -> usize {
    let v = match &part.value {
        None => 0,
        Some(key_part::Value::String(s)) => s.len(),
        Some(key_part::Value::Hash(p)) => p.items.iter().map(Vec::len).sum(),
        Some(key_part::Value::List(i)) | Some(key_part::Value::Set(i)) => {
            i.items.iter().map(Vec::len).sum()
        }
        Some(key_part::Value::Zset(z)) => z.members.iter().map(|m| m.len() + 8).sum(),
    };
    part.key.len() + v
}

/// Why a part could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("a continuation part for a key that is missing or of another type")]
    Orphan,
    #[error("a part without a value")]
    Empty,
    #[error("malformed sorted set part")]
    BadZset,
}

/// Applies one part to `table` (the receiver's staging table for the key's slot).
pub fn apply(table: &mut SlotTable, part: pb::KeyPart, now: u64) -> Result<(), CodecError> {
    let key = part.key.as_slice();
    if part.deleted {
        table.remove(key, now);
        return Ok(());
    }
    let payload = part.value.ok_or(CodecError::Empty)?;
    if part.first {
        let fresh = match &payload {
            key_part::Value::String(_) => Value::Str(Box::default()),
            key_part::Value::Hash(_) => Value::Hash(Default::default()),
            key_part::Value::List(_) => Value::List(Default::default()),
            key_part::Value::Set(_) => Value::Set(Default::default()),
            key_part::Value::Zset(_) => Value::ZSet(Box::default()),
        };
        table.set(key, fresh);
        if part.expire_at_ms > 0 {
            table.set_expire_at(key, part.expire_at_ms);
        }
    }
    append(table, key, payload, now)
}

fn append(
    table: &mut SlotTable,
    key: &[u8],
    payload: key_part::Value,
    now: u64,
) -> Result<(), CodecError> {
    let value = table.get_mut(key, now).ok_or(CodecError::Orphan)?;
    let boxed = |v: Vec<u8>| -> Key { v.into_boxed_slice() };
    match (value, payload) {
        (Value::Str(s), key_part::Value::String(more)) => {
            let mut v = std::mem::take(s).into_vec();
            v.extend_from_slice(&more);
            *s = v.into_boxed_slice();
        }
        (Value::Hash(h), key_part::Value::Hash(p)) => {
            let mut it = p.items.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                h.insert(&f, boxed(v));
            }
        }
        (Value::List(l), key_part::Value::List(i)) => l.extend(i.items.into_iter().map(boxed)),
        (Value::Set(s), key_part::Value::Set(i)) => s.extend(i.items.iter().map(Vec::as_slice)),
        (Value::ZSet(z), key_part::Value::Zset(p)) => {
            if p.members.len() != p.scores.len() {
                return Err(CodecError::BadZset);
            }
            for (m, score) in p.members.iter().zip(p.scores) {
                z.insert(m, score);
            }
        }
        _ => return Err(CodecError::Orphan),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ZSet;

    fn round_trip(value: Value) -> Value {
        let mut table = SlotTable::default();
        for i in 0..piece_count(&value) {
            apply(
                &mut table,
                encode_piece(b"k", &value, Some(u64::MAX / 2), i),
                0,
            )
            .unwrap();
        }
        assert_eq!(
            table.expire_at(b"k"),
            Some(u64::MAX / 2),
            "the TTL moves with the key"
        );
        table.get(b"k", 0).unwrap().clone()
    }

    #[test]
    fn big_and_small_values_survive_the_trip() {
        let s: Vec<u8> = (0..PART_BYTES * 2 + 17).map(|i| i as u8).collect();
        match round_trip(Value::Str(s.clone().into_boxed_slice())) {
            Value::Str(got) => assert_eq!(&*got, &s[..]),
            other => panic!("{other:?}"),
        }
        let mut z = ZSet::default();
        for i in 0..(PART_ITEMS * 2 + 3) {
            z.insert(format!("m{i}").as_bytes(), i as f64 / 3.0);
        }
        match round_trip(Value::ZSet(Box::new(z.clone()))) {
            Value::ZSet(got) => {
                assert_eq!(got.len(), z.len());
                assert_eq!(got.score(b"m7"), z.score(b"m7"));
            }
            other => panic!("{other:?}"),
        }
        let list: std::collections::VecDeque<Box<[u8]>> = (0..PART_ITEMS + 5)
            .map(|i| i.to_string().into_bytes().into_boxed_slice())
            .collect();
        match round_trip(Value::List(Box::new(list.clone()))) {
            Value::List(got) => assert_eq!(*got, list, "list order is kept"),
            other => panic!("{other:?}"),
        }
        let n = PART_ITEMS * 3 + 11;
        let mut set = crate::db::DenseSet::default();
        let mut hash = crate::db::DenseMap::default();
        for i in 0..n {
            set.insert(format!("m{i}").as_bytes());
            hash.insert(
                format!("f{i}").as_bytes(),
                i.to_string().into_bytes().into(),
            );
        }
        assert_eq!(piece_count(&Value::Set(Box::new(set.clone()))), 4);
        match round_trip(Value::Set(Box::new(set.clone()))) {
            Value::Set(got) => {
                assert_eq!(got.len(), n);
                assert!(set.iter().all(|m| got.contains(m)));
            }
            other => panic!("{other:?}"),
        }
        match round_trip(Value::Hash(Box::new(hash.clone()))) {
            Value::Hash(got) => {
                assert_eq!(got.len(), n);
                assert!(hash.iter().all(|(f, v)| got.get(f) == Some(v)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn orphans_and_deletes() {
        let mut table = SlotTable::default();
        let mut part = encode_piece(b"k", &Value::Str(b"v".to_vec().into_boxed_slice()), None, 0);
        part.first = false;
        assert!(apply(&mut table, part, 0).is_err());
        apply(
            &mut table,
            encode_piece(b"k", &Value::Str(b"v".to_vec().into_boxed_slice()), None, 0),
            0,
        )
        .unwrap();
        apply(&mut table, deleted(b"k"), 0).unwrap();
        assert!(table.get(b"k", 0).is_none());
    }
}
