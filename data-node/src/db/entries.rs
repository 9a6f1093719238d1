//! The keys and values of one slot table, packed for memory and for lookups.
//!
//! A `HashMap<Key, Value>` bucket is 40 bytes (a 16-byte key slice, a 24-byte value),
//! and hashbrown keeps between 44% and 87% of buckets full: a slot table of ~61 keys
//! (1M keys over 16384 slots) sits in 128 buckets, 86 bytes per key. Here each key and
//! its value are one allocation, an [`Entry`]: the value, the key's length and the key's
//! bytes, behind an 8-byte pointer, so a lookup reads the key to compare from the entry
//! it fetches anyway instead of chasing a separate key allocation.
//!
//! The entries sit at dense positions in a [`Dense`] (a `Vec` of the pointers plus a
//! hash index of 4-byte positions), so that `SCAN` resumes at a position with Redis's
//! guarantee and `RANDOMKEY` picks a random position (see [`super::positions`]). The
//! same ~61-key table costs about 8 bytes per key in the `Vec` and 6.5 in the index
//! (128 buckets of 2-byte positions), where a table of 8-byte pointers took 19.
//!
//! The API is the subset of `HashMap` the keyspace uses, plus positions.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use super::dense::{Dense, Keyed};
use super::Value;

/// Where the key's length (a `u32`) sits in an entry, right after the value.
const LEN_AT: usize = size_of::<Value>();
/// Where what the key remembers of its use sits ([`super::access`]), after the length.
const ACCESS_AT: usize = LEN_AT + size_of::<u32>();
/// Where the key's bytes start.
const KEY_AT: usize = ACCESS_AT + size_of::<u32>();
const _: () = assert!(LEN_AT.is_multiple_of(align_of::<u32>()));

/// One key and its value in one allocation: `[value][key length: u32][access: u32][key
/// bytes]`. The access bits are atomic so that a read (through `&self`) can update
/// them; the table's lock makes every access exclusive anyway.
struct Entry(NonNull<u8>);

// SAFETY: an `Entry` owns its allocation like a `Box<(Value, [u8])>` would; `Value` is
// `Send + Sync`.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

impl Entry {
    fn layout(key_len: usize) -> Layout {
        Layout::from_size_align(KEY_AT + key_len, align_of::<Value>()).expect("entry layout")
    }

    fn new(key: &[u8], value: Value) -> Entry {
        // Keys are bounded by `proto-max-bulk-len` (at most 512 MiB).
        let len = u32::try_from(key.len()).expect("key longer than 4 GiB");
        let layout = Self::layout(key.len());
        // SAFETY: the layout is non-zero-sized; the writes stay inside it, the value at
        // offset 0 (aligned for `Value`), the length at `LEN_AT` (aligned for `u32`).
        unsafe {
            let Some(p) = NonNull::new(alloc(layout)) else {
                handle_alloc_error(layout)
            };
            p.as_ptr().cast::<Value>().write(value);
            p.as_ptr().add(LEN_AT).cast::<u32>().write(len);
            p.as_ptr()
                .add(ACCESS_AT)
                .cast::<AtomicU32>()
                .write(AtomicU32::new(super::access::fresh()));
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.as_ptr().add(KEY_AT), key.len());
            Entry(p)
        }
    }

    fn key_len(&self) -> usize {
        // SAFETY: written by `new`, never changed.
        unsafe { self.0.as_ptr().add(LEN_AT).cast::<u32>().read() as usize }
    }

    fn key(&self) -> &[u8] {
        // SAFETY: `key_len` bytes initialised by `new` follow `KEY_AT`; borrowed from self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(KEY_AT), self.key_len()) }
    }

    fn access(&self) -> &AtomicU32 {
        // SAFETY: written by `new` at `ACCESS_AT` (aligned for `u32`), borrowed from self.
        unsafe { &*self.0.as_ptr().add(ACCESS_AT).cast::<AtomicU32>() }
    }

    /// Records an access.
    fn touch(&self) {
        let a = self.access();
        a.store(super::access::touched(a.load(Relaxed)), Relaxed);
    }

    fn value(&self) -> &Value {
        // SAFETY: a valid `Value` lives at offset 0 until the entry is dropped.
        unsafe { &*self.0.as_ptr().cast::<Value>() }
    }

    fn value_mut(&mut self) -> &mut Value {
        // SAFETY: as in `value`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.0.as_ptr().cast::<Value>() }
    }

    /// Frees the entry and returns its value.
    fn into_value(self) -> Value {
        let this = ManuallyDrop::new(self);
        let layout = Self::layout(this.key_len());
        // SAFETY: the value is moved out exactly once and the allocation freed with the
        // layout it was made with; `ManuallyDrop` keeps `Drop` from doing either again.
        unsafe {
            let value = this.0.as_ptr().cast::<Value>().read();
            dealloc(this.0.as_ptr(), layout);
            value
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let layout = Self::layout(self.key_len());
        // SAFETY: as in `into_value`, dropping the value in place instead of moving it.
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr().cast::<Value>());
            dealloc(self.0.as_ptr(), layout);
        }
    }
}

impl Keyed for Entry {
    fn key(&self) -> &[u8] {
        Entry::key(self)
    }
}

#[derive(Default)]
pub struct Entries {
    dense: Dense<Entry>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.dense.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.dense.get(key).map(Entry::value)
    }

    /// [`Entries::get`], recording an access of the key.
    pub fn get_touched(&self, key: &[u8]) -> Option<&Value> {
        let e = self.dense.get(key)?;
        e.touch();
        Some(e.value())
    }

    /// [`Entries::get_mut`], recording an access of the key.
    pub fn get_mut_touched(&mut self, key: &[u8]) -> Option<&mut Value> {
        let e = self.dense.get_mut(key)?;
        e.touch();
        Some(e.value_mut())
    }

    /// The value of `key` and what the key remembers of its use ([`super::access`]).
    pub fn get_with_access(&self, key: &[u8]) -> Option<(&Value, u32)> {
        self.dense
            .get(key)
            .map(|e| (e.value(), e.access().load(Relaxed)))
    }

    /// The key at position `i` and what it remembers of its use (eviction samples).
    pub fn access_at(&self, i: usize) -> Option<(&[u8], u32)> {
        self.dense
            .get_index(i)
            .map(|e| (e.key(), e.access().load(Relaxed)))
    }

    /// Inserts or replaces (an access of the key); returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: Value) -> Option<Value> {
        match self.dense.get_mut(key) {
            Some(e) => {
                e.touch();
                Some(std::mem::replace(e.value_mut(), value))
            }
            None => {
                self.dense.push_unique(Entry::new(key, value));
                None
            }
        }
    }

    /// Removes `key`; the last entry takes its position.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.dense.remove(key).map(Entry::into_value)
    }

    /// The entry at position `i` (`0..len`).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &Value)> {
        self.dense.get_index(i).map(|e| (e.key(), e.value()))
    }

    /// The keys in position order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.dense.as_slice().iter().map(Entry::key)
    }

    /// The entries in position order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.dense.as_slice().iter().map(|e| (e.key(), e.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Behaves exactly like a HashMap under random inserts and removes, and every
        /// position holds one of its entries.
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u8..40, any::<u8>()), 0..400)) {
            let mut ours = Entries::default();
            let mut model: HashMap<Vec<u8>, u8> = HashMap::new();
            for (insert, k, v) in ops {
                let key = vec![k; usize::from(k % 7)];
                if insert {
                    let old = ours.insert(&key, Value::Str(vec![v].into_boxed_slice()));
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
            for i in 0..ours.len() {
                let (k, v) = ours.get_index(i).unwrap();
                prop_assert!(ours.get(k).is_some_and(|w| std::ptr::eq(v, w)));
            }
            prop_assert!(ours.get_index(ours.len()).is_none());
        }
    }
}
