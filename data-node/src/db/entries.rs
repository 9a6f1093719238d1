//! The keys and values of one slot table, packed for memory.
//!
//! A `HashMap<Key, Value>` bucket is 40 bytes (a 16-byte key slice, a 24-byte value),
//! and hashbrown keeps between 44% and 87% of buckets full: a slot table of ~61 keys
//! (1M keys over 16384 slots) sits in 128 buckets, 86 bytes per key. Here a bucket is
//! one 8-byte pointer to an `Entry` holding the key and the value, so the same table
//! costs 19 bytes per key plus the 40-byte entry: 27 bytes less per key.
//!
//! The API is the subset of `HashMap` the keyspace uses.

use std::sync::LazyLock;

use hashbrown::HashTable;

use super::{Hasher, Key, Value};

struct Entry {
    key: Key,
    value: Value,
}

/// One process-wide, randomly seeded hasher (the tables do not each need a seed).
static HASHER: LazyLock<Hasher> = LazyLock::new(Hasher::default);

fn hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    HASHER.hash_one(key)
}

#[derive(Default)]
pub struct Entries {
    table: HashTable<Box<Entry>>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.table
            .find(hash(key), |e| &*e.key == key)
            .map(|e| &e.value)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.table
            .find_mut(hash(key), |e| &*e.key == key)
            .map(|e| &mut e.value)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        let h = hash(&key);
        match self.table.find_mut(h, |e| e.key == key) {
            Some(e) => Some(std::mem::replace(&mut e.value, value)),
            None => {
                self.table
                    .insert_unique(h, Box::new(Entry { key, value }), |e| hash(&e.key));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        match self.table.find_entry(hash(key), |e| &*e.key == key) {
            Ok(occupied) => Some(occupied.remove().0.value),
            Err(_) => None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.table.iter().map(|e| &e.key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.table.iter().map(|e| (&e.key, &e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Behaves exactly like a HashMap under random inserts and removes.
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u8..40, any::<u8>()), 0..400)) {
            let mut ours = Entries::default();
            let mut model: HashMap<Vec<u8>, u8> = HashMap::new();
            for (insert, k, v) in ops {
                let key = vec![k; usize::from(k % 7)];
                if insert {
                    let old = ours.insert(key.clone().into_boxed_slice(), Value::Str(vec![v].into_boxed_slice()));
                    prop_assert_eq!(old.is_some(), model.insert(key, v).is_some());
                } else {
                    prop_assert_eq!(ours.remove(&key).is_some(), model.remove(&key).is_some());
                }
                prop_assert_eq!(ours.len(), model.len());
            }
            for (k, v) in &model {
                match ours.get(k) {
                    Some(Value::Str(s)) => prop_assert_eq!(&**s, &[*v][..]),
                    other => prop_assert!(false, "missing {:?}: {:?}", k, other.is_some()),
                }
            }
            prop_assert_eq!(ours.keys().count(), model.len());
        }
    }
}
