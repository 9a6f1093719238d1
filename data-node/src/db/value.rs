//! The value types stored in the keyspace.
//!
//! Everything is owned and exactly sized (`Box<[u8]>`); the collections are boxed so
//! that [`Value`] stays small (24 bytes) for the common case of string keys.

use std::collections::{HashSet, VecDeque};

pub use super::zset::ZSet;
use super::{Hasher, Key, Map};

/// A stored value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Box<[u8]>),
    Hash(Box<Map<Key, Box<[u8]>>>),
    List(Box<VecDeque<Box<[u8]>>>),
    Set(Box<HashSet<Key, Hasher>>),
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

    /// An estimate of the bytes this value uses (for `MEMORY USAGE`).
    pub fn mem_usage(&self) -> usize {
        const OVERHEAD: usize = 16;
        match self {
            Value::Str(s) => s.len() + OVERHEAD,
            Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>() + 64,
            Value::List(l) => l.iter().map(|v| v.len() + 32).sum::<usize>() + 64,
            Value::Set(s) => s.iter().map(|v| v.len() + 32).sum::<usize>() + 64,
            Value::ZSet(z) => z.iter().map(|(m, _)| m.len() + 48).sum::<usize>() + 96,
        }
    }
}
