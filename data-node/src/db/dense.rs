//! Indexable hash tables: elements at dense positions `0..len`, found by key through a
//! hash index of positions.
//!
//! Redis picks random elements and resumes `SCAN` cursors in O(1) by looking into its
//! hash table's buckets. A hashbrown table cannot do either (no bucket access, and open
//! addressing moves elements on growth), so here the elements live in a `Vec` at
//! positions `0..len` and a `HashTable<u32>` maps a key to its position. A removal is a
//! swap-remove: the last element moves into the hole and its index entry is updated.
//! That is the layout [`super::positions`] needs: a random element is a random position,
//! and a cursor is a position (see its proof of the `SCAN` guarantee).
//!
//! - [`Dense`] is the core, generic over what the `Vec` holds ([`Keyed`] says where its
//!   key is). The keyspace's slot tables use it with their packed entries
//!   (`db/entries.rs`).
//! - [`DenseMap`] (hash values) and [`DenseSet`] (set values) hold [`Member`]s.
//!
//! Memory. A position is 2 bytes up to 65536 elements and 4 beyond, so a bucket of the
//! index costs 3 or 5 bytes (with its control byte) instead of the 17 of a
//! `HashSet<Box<[u8]>>` or the 33 of a `HashMap<Box<[u8]>, Box<[u8]>>`; the `Vec` adds
//! one element per member, and a member is a thin pointer ([`Member`], 8 bytes, its
//! length stored in its allocation), not a 16-byte `Box<[u8]>`. The `Vec` grows by a
//! quarter (at least 4), so it is at least 80% full after growing; both halves shrink
//! (to twice the length) once the length falls below a quarter of their capacity, as
//! Redis shrinks its dictionaries. Growth and shrinking cost O(len) once per O(len)
//! changes; removals move one element.
//!
//! Positions fit `u32`: a collection holds fewer than 2^32 elements (it would take well
//! over 64 GB).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::fmt;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use hashbrown::HashTable;

use super::hash;

/// Capacity below which neither half of a [`Dense`] is shrunk.
const SHRINK_ABOVE: usize = 16;

/// Collections with at most this many elements index their positions as `u16`.
const SMALL_INDEX: usize = 1 << 16;

/// Something stored in a [`Dense`]: it carries its key.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

/// A position as the index stores it.
trait Pos: Copy + Eq {
    /// `i` as a position (the caller checked that it fits).
    fn at(i: usize) -> Self;
    fn get(self) -> usize;
}

impl Pos for u16 {
    fn at(i: usize) -> u16 {
        i as u16
    }
    fn get(self) -> usize {
        usize::from(self)
    }
}

impl Pos for u32 {
    fn at(i: usize) -> u32 {
        i as u32
    }
    fn get(self) -> usize {
        self as usize
    }
}

/// The positions hashed by key: 2-byte positions (3 bytes a bucket with the control
/// byte) up to [`SMALL_INDEX`] elements, 4-byte ones beyond. A slot table of a 1M-key
/// node (~61 keys) thus spends 3 bytes per bucket where a pointer took 8.
#[derive(Clone)]
enum Index {
    Small(HashTable<u16>),
    Large(HashTable<u32>),
}

/// Runs `$body` with `$t` bound to the index's table, whatever its position type.
macro_rules! on_index {
    ($index:expr, $t:ident => $body:expr) => {
        match $index {
            Index::Small($t) => $body,
            Index::Large($t) => $body,
        }
    };
}

/// Elements at dense positions, indexed by key. At most one element per key.
#[derive(Clone)]
pub struct Dense<T> {
    /// The elements; position `i` is `items[i]`.
    items: Vec<T>,
    /// The position of every element, hashed by the element's key: exactly one entry
    /// per position `0..items.len()`; `Small` exactly while `items.len()` is at most
    /// [`SMALL_INDEX`] (or was, before a shrink turns it back).
    index: Index,
}

impl<T> Default for Dense<T> {
    fn default() -> Self {
        Dense {
            items: Vec::new(),
            index: Index::Small(HashTable::new()),
        }
    }
}

impl<T: Keyed> Dense<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The position of `key`.
    pub fn position(&self, key: &[u8]) -> Option<usize> {
        let (items, h) = (&self.items, hash(key));
        on_index!(&self.index, t => t
            .find(h, |&i| items[Pos::get(i)].key() == key)
            .map(|&i| Pos::get(i)))
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.position(key).map(|i| &self.items[i])
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        self.position(key).map(|i| &mut self.items[i])
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    /// The element at position `i`.
    pub fn get_index(&self, i: usize) -> Option<&T> {
        self.items.get(i)
    }

    /// The element at position `i`, mutably. The caller must not change its key (the
    /// index would no longer find it); what else it holds is the caller's.
    pub fn get_index_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)
    }

    /// The elements in position order.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// Appends `item`, whose key the caller knows is absent.
    pub fn push_unique(&mut self, item: T) {
        let pos = self.items.len();
        assert!(pos < u32::MAX as usize, "a collection of 2^32 elements");
        if pos == SMALL_INDEX && matches!(self.index, Index::Small(_)) {
            self.index = Index::Large(self.rebuild_index(pos * 2));
        }
        if self.items.len() == self.items.capacity() {
            let more = (self.items.capacity() / 4).max(4);
            self.items.reserve_exact(more);
        }
        let h = hash(item.key());
        self.items.push(item);
        let items = &self.items;
        on_index!(&mut self.index, t => {
            t.insert_unique(h, Pos::at(pos), |&i| hash(items[Pos::get(i)].key()));
        })
    }

    /// A new index of every position, with room for `capacity`.
    fn rebuild_index<P: Pos>(&self, capacity: usize) -> HashTable<P> {
        let items = &self.items;
        let mut t = HashTable::with_capacity(capacity.max(items.len()));
        for (i, item) in items.iter().enumerate() {
            t.insert_unique(hash(item.key()), P::at(i), |&j: &P| {
                hash(items[j.get()].key())
            });
        }
        t
    }

    /// Removes the element of `key`; the last element takes its position.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let (items, h) = (&self.items, hash(key));
        let pos = on_index!(&mut self.index, t => {
            match t.find_entry(h, |&i| items[Pos::get(i)].key() == key) {
                Ok(entry) => Pos::get(entry.remove().0),
                Err(_) => return None,
            }
        });
        Some(self.fill_hole(pos))
    }

    /// Removes the element at position `i` (< len); the last element takes its place.
    pub fn swap_remove_index(&mut self, i: usize) -> T {
        let h = hash(self.items[i].key());
        on_index!(&mut self.index, t => {
            match t.find_entry(h, |&j| Pos::get(j) == i) {
                Ok(entry) => {
                    entry.remove();
                }
                Err(_) => unreachable!("every position is indexed"),
            }
        });
        self.fill_hole(i)
    }

    /// Takes out `items[pos]`, whose index entry is already gone: the last element
    /// moves into `pos` and its index entry is updated.
    fn fill_hole(&mut self, pos: usize) -> T {
        let last = self.items.len() - 1;
        let item = self.items.swap_remove(pos);
        if pos != last {
            let h = hash(self.items[pos].key());
            on_index!(&mut self.index, t => {
                let moved = t
                    .find_mut(h, |&j| Pos::get(j) == last)
                    .expect("the last position is indexed");
                *moved = Pos::at(pos);
            });
        }
        self.shrink_if_sparse();
        item
    }

    fn index_capacity(&self) -> usize {
        on_index!(&self.index, t => t.capacity())
    }

    /// Shrinks either half to twice the length once it is less than a quarter full (the
    /// index turns back to 2-byte positions when they fit again).
    fn shrink_if_sparse(&mut self) {
        let len = self.items.len();
        if self.items.capacity() > SHRINK_ABOVE && len * 4 < self.items.capacity() {
            self.items.shrink_to(len * 2);
        }
        if self.index_capacity() > SHRINK_ABOVE && len * 4 < self.index_capacity() {
            if matches!(self.index, Index::Large(_)) && len * 2 <= SMALL_INDEX {
                self.index = Index::Small(self.rebuild_index(len * 2));
            } else {
                let items = &self.items;
                on_index!(&mut self.index, t => {
                    t.shrink_to(len * 2, |&i| hash(items[Pos::get(i)].key()));
                })
            }
        }
    }

    /// Keeps the elements for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        // Downwards: what a removal moves into `i` comes from above, already looked at.
        for i in (0..self.items.len()).rev() {
            if !keep(&self.items[i]) {
                self.swap_remove_index(i);
            }
        }
    }

    /// Removes everything and frees both halves.
    pub fn clear(&mut self) {
        *self = Dense::default();
    }

    /// Takes every element out, in position order, leaving this empty.
    pub fn take_all(&mut self) -> Vec<T> {
        std::mem::take(self).items
    }

    /// Bytes of the two tables (not what the elements point to).
    pub fn table_bytes(&self) -> usize {
        self.items.capacity() * size_of::<T>() + on_index!(&self.index, t => t.allocation_size())
    }
}

/// A member of a set or a field of a hash: the bytes in one allocation
/// `[length: u32][bytes]`, behind an 8-byte pointer (a `Box<[u8]>` is 16).
pub struct Member(NonNull<u8>);

// SAFETY: a `Member` owns its allocation like a `Box<[u8]>`; nothing is shared.
unsafe impl Send for Member {}
unsafe impl Sync for Member {}

const MEMBER_AT: usize = size_of::<u32>();

impl Member {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(MEMBER_AT + len, align_of::<u32>()).expect("member layout")
    }

    pub fn new(bytes: &[u8]) -> Member {
        // Bulk strings are bounded by `proto-max-bulk-len` (at most 512 MiB).
        let len = u32::try_from(bytes.len()).expect("a member longer than 4 GiB");
        let layout = Self::layout(bytes.len());
        // SAFETY: the layout is at least 4 bytes; the length is written at offset 0
        // (aligned for `u32`) and the bytes right after it, inside the allocation.
        unsafe {
            let Some(p) = NonNull::new(alloc(layout)) else {
                handle_alloc_error(layout)
            };
            p.as_ptr().cast::<u32>().write(len);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.as_ptr().add(MEMBER_AT), bytes.len());
            Member(p)
        }
    }

    pub fn len(&self) -> usize {
        // SAFETY: written by `new`, never changed.
        unsafe { self.0.as_ptr().cast::<u32>().read() as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes initialised by `new` follow the length; borrowed from self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(MEMBER_AT), self.len()) }
    }

    /// Bytes allocated for it (for `MEMORY USAGE`).
    pub fn alloc_bytes(&self) -> usize {
        MEMBER_AT + self.len()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let layout = Self::layout(self.len());
        // SAFETY: allocated by `new` with this layout, freed once.
        unsafe { dealloc(self.0.as_ptr(), layout) }
    }
}

impl Clone for Member {
    fn clone(&self) -> Member {
        Member::new(self.as_bytes())
    }
}

impl std::ops::Deref for Member {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<V> Keyed for (Member, V) {
    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A hash map from byte strings to `V`, with dense positions (a hash value is a
/// `DenseMap<Box<[u8]>>`). Iteration is in position order.
#[derive(Clone)]
pub struct DenseMap<V> {
    dense: Dense<(Member, V)>,
}

impl<V> Default for DenseMap<V> {
    fn default() -> Self {
        DenseMap {
            dense: Dense::default(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for DenseMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.dense.as_slice().iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<V> DenseMap<V> {
    pub fn len(&self) -> usize {
        self.dense.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.dense.get(key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.dense.get_mut(key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.dense.contains(key)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        match self.dense.get_mut(key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.dense.push_unique((Member::new(key), value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.dense.remove(key).map(|(_, v)| v)
    }

    /// The entry at position `i` (`0..len`).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &V)> {
        self.dense.get_index(i).map(|(k, v)| (k.as_bytes(), v))
    }

    /// Removes the entry at position `i` (< len); the last entry takes its place.
    pub fn swap_remove_index(&mut self, i: usize) -> (Member, V) {
        self.dense.swap_remove_index(i)
    }

    /// The entries in position order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &V)> + DoubleEndedIterator {
        self.dense.as_slice().iter().map(|(k, v)| (k.as_bytes(), v))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &V) -> bool) {
        self.dense.retain(|(k, v)| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.dense.clear();
    }

    /// Takes every entry out, leaving the map empty.
    pub fn take_all(&mut self) -> Vec<(Member, V)> {
        self.dense.take_all()
    }

    /// Bytes of the tables and of the keys (values that own memory are the caller's).
    pub fn heap_bytes(&self) -> usize {
        self.dense.table_bytes()
            + self
                .dense
                .as_slice()
                .iter()
                .map(|(k, _)| k.alloc_bytes())
                .sum::<usize>()
    }
}

/// A set of byte strings with dense positions (a set value). Iteration is in position
/// order.
#[derive(Clone, Default)]
pub struct DenseSet {
    map: DenseMap<()>,
}

impl fmt::Debug for DenseSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.map.dense.as_slice().iter().map(|(k, _)| k))
            .finish()
    }
}

impl DenseSet {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.map.contains_key(member)
    }

    /// Adds `member`; returns whether it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if self.map.contains_key(member) {
            return false;
        }
        self.map.dense.push_unique((Member::new(member), ()));
        true
    }

    /// Removes `member`; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.map.remove(member).is_some()
    }

    /// The member at position `i` (`0..len`).
    pub fn get_index(&self, i: usize) -> Option<&[u8]> {
        self.map.get_index(i).map(|(k, _)| k)
    }

    /// Removes the member at position `i` (< len); the last member takes its place.
    pub fn swap_remove_index(&mut self, i: usize) -> Member {
        self.map.swap_remove_index(i).0
    }

    /// The members in position order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator {
        self.map.iter().map(|(k, _)| k)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        self.map.retain(|k, _| keep(k));
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Takes every member out, leaving the set empty.
    pub fn take_all(&mut self) -> Vec<Member> {
        self.map.take_all().into_iter().map(|(m, _)| m).collect()
    }

    /// Bytes of the tables and the members.
    pub fn heap_bytes(&self) -> usize {
        self.map.heap_bytes()
    }
}

impl<'a> Extend<&'a [u8]> for DenseSet {
    fn extend<I: IntoIterator<Item = &'a [u8]>>(&mut self, members: I) {
        for m in members {
            self.insert(m);
        }
    }
}

impl<'a> FromIterator<&'a [u8]> for DenseSet {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(members: I) -> Self {
        let mut s = DenseSet::default();
        s.extend(members);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// Every position is indexed exactly once and every key finds its own position.
    fn consistency_check<T: Keyed>(d: &Dense<T>) {
        let positions: Vec<usize> =
            on_index!(&d.index, t => t.iter().map(|&i| Pos::get(i)).collect());
        assert_eq!(positions.len(), d.items.len());
        assert_eq!(
            matches!(d.index, Index::Small(_)),
            d.items.len() <= SMALL_INDEX || d.index_capacity() < 2 * SMALL_INDEX,
            "small index exactly while positions fit (or until a shrink)"
        );
        let mut seen = vec![false; d.items.len()];
        for i in positions {
            assert!(!std::mem::replace(&mut seen[i], true), "{i} twice");
        }
        for (i, item) in d.items.iter().enumerate() {
            assert_eq!(d.position(item.key()), Some(i));
        }
    }

    #[test]
    fn members_keep_their_bytes() {
        for len in [0usize, 1, 3, 4, 15, 16, 100, 5000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let m = Member::new(&bytes);
            assert_eq!(m.len(), len);
            assert_eq!(&*m, &bytes[..]);
            assert_eq!(&*m.clone(), &bytes[..]);
        }
        assert_eq!(size_of::<Member>(), 8);
        assert_eq!(size_of::<(Member, ())>(), 8);
        assert_eq!(size_of::<(Member, Box<[u8]>)>(), 24);
    }

    #[test]
    fn removal_moves_the_last_element_into_the_hole() {
        let mut s = DenseSet::default();
        for m in ["a", "b", "c", "d"] {
            assert!(s.insert(m.as_bytes()));
        }
        assert!(!s.insert(b"b"));
        assert!(s.remove(b"b"));
        assert_eq!(s.iter().collect::<Vec<_>>(), [&b"a"[..], b"d", b"c"]);
        assert_eq!(&*s.swap_remove_index(0), b"a");
        assert_eq!(s.iter().collect::<Vec<_>>(), [&b"c"[..], b"d"]);
        consistency_check(&s.map.dense);
    }

    #[test]
    fn shrinks_once_a_quarter_full_and_grows_by_a_quarter() {
        let mut m: DenseMap<u32> = DenseMap::default();
        for i in 0..10_000u32 {
            m.insert(&i.to_be_bytes(), i);
            let cap = m.dense.items.capacity();
            assert!(m.len() * 5 + 20 >= cap * 4, "{} of {cap}", m.len());
        }
        let big = m.dense.table_bytes();
        for i in 0..9_900u32 {
            assert_eq!(m.remove(&i.to_be_bytes()), Some(i));
        }
        assert!(
            m.dense.items.capacity() <= 4 * 100,
            "{}",
            m.dense.items.capacity()
        );
        assert!(
            m.dense.index_capacity() <= 4 * 100,
            "{}",
            m.dense.index_capacity()
        );
        assert!(m.dense.table_bytes() * 20 < big);
        consistency_check(&m.dense);
        for i in 9_900..10_000u32 {
            assert_eq!(m.get(&i.to_be_bytes()), Some(&i));
        }
    }

    #[test]
    fn positions_widen_past_65536_elements_and_narrow_after_shrinking() {
        let mut s = DenseSet::default();
        let key = |i: u32| i.to_le_bytes();
        for i in 0..SMALL_INDEX as u32 {
            s.insert(&key(i));
        }
        assert!(matches!(s.map.dense.index, Index::Small(_)));
        for i in SMALL_INDEX as u32..100_000 {
            s.insert(&key(i));
        }
        assert!(matches!(s.map.dense.index, Index::Large(_)));
        consistency_check(&s.map.dense);
        assert!((0..100_000).all(|i| s.contains(&key(i))));
        for i in 0..90_000 {
            assert!(s.remove(&key(i)));
        }
        assert!(matches!(s.map.dense.index, Index::Small(_)));
        consistency_check(&s.map.dense);
        assert!((90_000..100_000).all(|i| s.contains(&key(i))));
    }

    #[test]
    fn retain_and_take_all() {
        let mut s: DenseSet = (0..1000u32)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(|x| x.as_bytes())
            .collect();
        s.retain(|m| m.last().is_some_and(|d| d % 2 == 0));
        assert_eq!(s.len(), 500);
        consistency_check(&s.map.dense);
        assert_eq!(s.take_all().len(), 500);
        assert!(s.is_empty() && s.get_index(0).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u16),
        Remove(u8),
        RemoveAt(u16),
        Retain(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u16>().prop_map(Op::RemoveAt),
            1 => (2u8..9).prop_map(Op::Retain),
        ]
    }

    /// Lengths 0..=12: several keys share a length, and one is empty.
    fn key(k: u8) -> Vec<u8> {
        vec![k; usize::from(k % 13)]
    }

    proptest! {
        /// Behaves like a std HashMap under inserts, removes by key and by position,
        /// and retain; positions stay dense and indexed.
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 0..600)) {
            let mut ours: DenseMap<u16> = DenseMap::default();
            let mut model: HashMap<Vec<u8>, u16> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let k = key(k);
                        prop_assert_eq!(ours.insert(&k, v), model.insert(k, v));
                    }
                    Op::Remove(k) => {
                        let k = key(k);
                        prop_assert_eq!(ours.remove(&k), model.remove(&k));
                    }
                    Op::RemoveAt(i) if !ours.is_empty() => {
                        let i = usize::from(i) % ours.len();
                        let (k, v) = ours.swap_remove_index(i);
                        prop_assert_eq!(model.remove(&*k), Some(v));
                    }
                    Op::RemoveAt(_) => {}
                    Op::Retain(m) => {
                        ours.retain(|_, v| v % u16::from(m) != 0);
                        model.retain(|_, v| *v % u16::from(m) != 0);
                    }
                }
                prop_assert_eq!(ours.len(), model.len());
            }
            consistency_check(&ours.dense);
            for (k, v) in &model {
                prop_assert_eq!(ours.get(k), Some(v));
            }
            let keys: HashSet<&[u8]> = ours.keys().collect();
            prop_assert_eq!(keys.len(), model.len());
            for i in 0..ours.len() {
                let (k, v) = ours.get_index(i).unwrap();
                prop_assert_eq!(model.get(k), Some(v));
            }
            prop_assert!(ours.get_index(ours.len()).is_none());
        }
    }
}
