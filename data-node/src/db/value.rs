//! The value types stored in the keyspace.
//!
//! Everything is owned and exactly sized (`Box<[u8]>`); the collections are boxed so
//! that [`Value`] stays small (24 bytes) for the common case of string keys. Hashes and
//! sets keep their elements at dense positions ([`super::dense`]) for O(1) random picks
//! and `SCAN` cursors.

use std::collections::VecDeque;

use super::dense::{DenseMap, DenseSet};
pub use super::zset::ZSet;

/// A stored value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Box<[u8]>),
    Hash(Box<DenseMap<Box<[u8]>>>),
    List(Box<VecDeque<Box<[u8]>>>),
    Set(Box<DenseSet>),
    ZSet(Box<ZSet>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// An estimate of the bytes this value uses (for `MEMORY USAGE`): hashes and sets
    /// count their tables' allocations and their elements' bytes.
    pub fn mem_usage(&self) -> usize {
        const OVERHEAD: usize = 16;
        match self {
            Value::Str(s) => s.len() + OVERHEAD,
            Value::Hash(h) => {
                size_of::<DenseMap<Box<[u8]>>>()
                    + h.heap_bytes()
                    + h.values().map(|v| v.len()).sum::<usize>()
            }
            Value::List(l) => l.iter().map(|v| v.len() + 32).sum::<usize>() + 64,
            Value::Set(s) => size_of::<DenseSet>() + s.heap_bytes(),
            Value::ZSet(z) => z.iter().map(|(m, _)| m.len() + 48).sum::<usize>() + 96,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_usage_of_sets_and_hashes_counts_tables_and_elements() {
        let mut s = DenseSet::default();
        let mut h = DenseMap::default();
        for i in 0..1000 {
            s.insert(format!("member:{i:04}").as_bytes());
            h.insert(format!("f:{i:04}").as_bytes(), vec![b'v'; 20].into());
        }
        // Members: 4 + 11 bytes each, their 8-byte slots, 3-byte index buckets.
        let set = Value::Set(Box::new(s)).mem_usage();
        assert!((15_000 + 8_000 + 3_000..40_000).contains(&set), "{set}");
        // Fields 4 + 6, values 20, 24-byte slots, index buckets.
        let hash = Value::Hash(Box::new(h)).mem_usage();
        assert!(
            (10_000 + 20_000 + 24_000 + 3_000..80_000).contains(&hash),
            "{hash}"
        );
    }
}
