//! The keyspace, organised by hash slot.
//!
//! [`Db`] holds one [`SlotTable`] per hash slot (16384), each behind its own
//! `parking_lot::Mutex`. A synchronous mutex is right here (as in mini-redis): it is
//! only ever held for the duration of one command (or one `EXEC`), never across an
//! `.await`, so a slow client cannot hold it. Because every keyed command has all its
//! keys in one slot (anything else is `CROSSSLOT`), a command locks exactly one table.
//!
//! Per-slot work that the cluster and migration code needs is cheap: counting, listing
//! and dropping a slot touch only that slot's table.
//!
//! Expiry: each table keeps a separate map of deadlines for the keys that have a TTL.
//! Keys expire lazily when accessed, and [`Db::active_expire_cycle`] (run periodically
//! by the server) sweeps tables in rounds.
//!
//! The total key count is kept in an atomic: [`SlotGuard`] records the table's length
//! when locked and applies the difference when dropped, so no code path can forget it.
//! The same drop keeps a bitmap of the non-empty slots, which `SCAN`, `KEYS`,
//! `RANDOMKEY` and `FLUSHALL` read instead of locking 16384 tables.
//!
//! Every change is also handed, as effects, to the consumers of [`observe`] (see
//! there), under the slot's lock: a command's through [`SlotGuard::publish`], the
//! expiry of keys when the guard is dropped.

pub mod access;
pub mod dense;
mod entries;
pub mod observe;
pub mod positions;
pub mod value;
pub mod zset;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

pub use dense::{DenseMap, DenseSet, Member};
pub use observe::{Argv, Consumer, Effect, Observers};
pub use value::{Value, ZSet};

/// Number of hash slots.
pub const SLOTS: usize = 16384;

/// The hasher of all keyspace maps (fast, randomly seeded per process).
pub type Hasher = foldhash::fast::RandomState;
/// A map with [`Hasher`].
pub type Map<K, V> = HashMap<K, V, Hasher>;
/// A key or a string value: an owned, exactly sized allocation (never a slice of a
/// connection's read buffer).
pub type Key = Box<[u8]>;

/// Told of the keys that expire (lazily or by the active cycle), while it wants.
pub trait ExpiryListener: Send + Sync {
    fn wants(&self) -> bool;
    fn expired(&self, keys: &[Key]);
}

/// One process-wide, randomly seeded hasher for the dense tables (slot tables, sets,
/// hashes): they do not each need a seed.
static HASHER: LazyLock<Hasher> = LazyLock::new(Hasher::default);

/// The hash of a key, member or field in the dense tables.
pub(crate) fn hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    HASHER.hash_one(key)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The keys of one hash slot.
#[derive(Default)]
pub struct SlotTable {
    map: entries::Entries,
    /// Deadline (ms since epoch) of each key that has a TTL; every key here is in `map`.
    expires: Map<Key, u64>,
    /// Keys removed because they expired (for `INFO stats`).
    expired: u64,
    /// Reads that found their key, and that did not (`keyspace_hits`/`_misses`),
    /// counted while `counting` (a read command runs).
    hits: u64,
    misses: u64,
    counting: bool,
    /// Someone observes the keyspace (set when the slot is locked): expiries are
    /// recorded in `expired_keys` for them.
    observed: bool,
    /// Keys expired under the current lock, not yet published as `DEL`.
    expired_keys: Vec<Key>,
    /// Someone listens for expiries (keyspace notifications; set when the slot is
    /// locked): expired keys are kept in `expired_notes` for them.
    noted: bool,
    /// Keys expired under the current lock, not yet told to the expiry listener.
    expired_notes: Vec<Key>,
    /// During a migration's handoff: writes to this slot wait (see `cmd::execute`).
    held: bool,
    /// Clients blocked on keys of this slot (see [`crate::blocking`]).
    waiters: Option<Box<crate::blocking::Waiters>>,
}

impl SlotTable {
    /// Number of keys (including ones expired but not yet removed).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Removes `key` if its deadline has passed (on a replica: only hides it, see
    /// [`set_replica`]). Returns whether it is expired.
    fn expire_if_needed(&mut self, key: &[u8], now: u64) -> bool {
        if self.expires.is_empty() {
            return false;
        }
        match self.expires.get(key) {
            Some(&at) if at <= now && REPLICA.load(Ordering::Relaxed) => true,
            Some(&at) if at <= now => {
                self.expires.remove(key);
                self.map.remove(key);
                self.expired += 1;
                if self.observed {
                    self.expired_keys.push(key.into());
                }
                if self.noted {
                    self.expired_notes.push(key.into());
                }
                true
            }
            _ => false,
        }
    }

    /// The live value of `key` (an access of it, for eviction; a hit or a miss).
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        let v = match self.expire_if_needed(key, now) {
            true => None,
            false => self.map.get_touched(key),
        };
        if self.counting {
            match v {
                Some(_) => self.hits += 1,
                None => self.misses += 1,
            }
        }
        v
    }

    /// Whether [`SlotTable::get`]s count as hits and misses (set around a read command).
    pub fn count_reads(&mut self, on: bool) {
        self.counting = on;
    }

    /// The live value of `key`, mutably (an access of it).
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Value> {
        match self.expire_if_needed(key, now) {
            true => None,
            false => self.map.get_mut_touched(key),
        }
    }

    /// The live value of `key` without counting an access (`OBJECT`, `TYPE`, eviction).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        match self.expire_if_needed(key, now) {
            true => None,
            false => self.map.get(key),
        }
    }

    /// What live `key` remembers of its use ([`access`]).
    pub fn access(&mut self, key: &[u8], now: u64) -> Option<u32> {
        self.peek_with_access(key, now).map(|(_, bits)| bits)
    }

    /// The live value of `key` and its access bits, without counting an access.
    pub fn peek_with_access(&mut self, key: &[u8], now: u64) -> Option<(&Value, u32)> {
        match self.expire_if_needed(key, now) {
            true => None,
            false => self.map.get_with_access(key),
        }
    }

    /// The key at position `i` (`0..len`, live or not) and its access bits.
    pub fn access_at(&self, i: usize) -> Option<(&[u8], u32)> {
        self.map.access_at(i)
    }

    /// Up to `n` keys with a TTL, from a pseudo-random place in the table (eviction
    /// samples of the `volatile-*` policies), with their deadlines.
    pub fn sample_expiring(&self, n: usize, start: usize) -> Vec<(Key, u64)> {
        let len = self.expires.len();
        if len == 0 {
            return Vec::new();
        }
        self.expires
            .iter()
            .cycle()
            .skip(start % len)
            .take(n.min(len))
            .map(|(k, &at)| (k.clone(), at))
            .collect()
    }

    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some()
    }

    /// Sets `key` to `value`, clearing any TTL (like `SET`).
    pub fn set(&mut self, key: &[u8], value: Value) {
        if !self.expires.is_empty() {
            self.expires.remove(key);
        }
        self.set_keep_ttl(key, value);
    }

    /// Sets `key` to `value`, keeping its TTL if it has one.
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value) {
        self.map.insert(key, value);
    }

    /// Removes `key` (live or not). Returns its value if it was live.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Value> {
        let expired = self.expire_if_needed(key, now);
        if !self.expires.is_empty() {
            self.expires.remove(key);
        }
        let value = self.map.remove(key);
        value.filter(|_| !expired)
    }

    /// Removes `key` if it holds an empty collection (after a pop/remove).
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        if self.map.get(key).is_some_and(Value::is_empty_collection) {
            self.expires.remove(key);
            self.map.remove(key);
        }
    }

    /// The deadline of `key`, if it is live and has one.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        self.expires.get(key).copied()
    }

    /// Sets the deadline of an existing key (caller checked it exists).
    pub fn set_expire_at(&mut self, key: &[u8], at: u64) {
        if let Some(d) = self.expires.get_mut(key) {
            *d = at;
        } else {
            self.expires.insert(key.into(), at);
        }
    }

    /// Removes the deadline of `key`. Returns whether it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.expires.remove(key).is_some()
    }

    /// Iterates over all keys (possibly including expired ones not yet removed).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.map.keys()
    }

    /// Iterates over all entries (possibly including expired ones not yet removed), in
    /// position order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.map.iter()
    }

    /// The entry at position `i` (`0..len`, live or not). Positions are dense and a
    /// removal moves the last entry into the hole (see [`positions`]).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &Value)> {
        self.map.get_index(i)
    }

    /// Whether `key` is expired at `now` (without removing it).
    pub fn is_expired(&self, key: &[u8], now: u64) -> bool {
        self.expires.get(key).is_some_and(|&at| at <= now)
    }

    /// Removes every key whose deadline has passed; returns how many.
    pub fn remove_expired(&mut self, now: u64) -> usize {
        if self.expires.is_empty() {
            return 0;
        }
        let dead: Vec<Key> = self
            .expires
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &dead {
            self.expires.remove(k);
            self.map.remove(k);
        }
        self.expired += dead.len() as u64;
        let n = dead.len();
        if self.noted {
            self.expired_notes.extend(dead.iter().cloned());
        }
        if self.observed {
            self.expired_keys.extend(dead);
        }
        n
    }

    /// The keys found expired since the last call (while an expiry listener listens).
    pub fn take_expired_notes(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.expired_notes)
    }

    /// Holds writes to this slot (a migration's handoff), or releases them.
    pub fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// Whether writes must wait (a migration's handoff is in progress).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Whether clients are blocked on keys of this slot.
    pub fn has_waiters(&self) -> bool {
        self.waiters.is_some()
    }

    pub fn waiters(&self) -> Option<&crate::blocking::Waiters> {
        self.waiters.as_deref()
    }

    /// Queues a blocked client under each of its keys.
    pub fn add_waiter(&mut self, w: &std::sync::Arc<crate::blocking::Waiter>) {
        self.waiters.get_or_insert_with(Default::default).add(w);
    }

    /// Takes a blocked client out of the queues (if it is there).
    pub fn remove_waiter(&mut self, w: &std::sync::Arc<crate::blocking::Waiter>) {
        if let Some(ws) = self.waiters.as_mut() {
            ws.remove(w);
            if ws.is_empty() {
                self.waiters = None;
            }
        }
    }

    /// Takes every blocked client out of the queues.
    pub fn take_waiters(&mut self) -> Vec<std::sync::Arc<crate::blocking::Waiter>> {
        self.waiters
            .take()
            .map(|mut ws| ws.drain())
            .unwrap_or_default()
    }

    /// Takes every key out, leaving the table empty.
    fn take_keys(&mut self) -> SlotTable {
        SlotTable {
            map: std::mem::take(&mut self.map),
            expires: std::mem::take(&mut self.expires),
            ..SlotTable::default()
        }
    }
}

/// This node is a replica: as in Redis, keys expire here only through the `DEL`s its
/// primary publishes when they expire there. A read of a key whose deadline has passed
/// answers as if it were gone, but leaves it (a replica whose clock runs ahead would
/// otherwise drop a key the primary still has, and diverge when the primary writes it);
/// the active sweep does not run. One keyspace per process, so one flag.
static REPLICA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this node a replica (or a primary again), for [`REPLICA`].
pub fn set_replica(replica: bool) {
    REPLICA.store(replica, Ordering::Relaxed);
}

/// Whether this node is a replica (it never evicts: its primary's `DEL`s do).
pub fn is_replica() -> bool {
    REPLICA.load(Ordering::Relaxed)
}

/// A locked slot table. Dropping it publishes the expiries it saw, updates the key count
/// and the bitmap of non-empty slots, then releases the lock.
pub struct SlotGuard<'a> {
    guard: MutexGuard<'a, SlotTable>,
    db: &'a Db,
    slot: u16,
    len_before: usize,
}

impl Deref for SlotGuard<'_> {
    type Target = SlotTable;
    fn deref(&self) -> &SlotTable {
        &self.guard
    }
}

impl DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut SlotTable {
        &mut self.guard
    }
}

impl SlotGuard<'_> {
    /// Whether changes are observed: [`SlotGuard::publish`] is only worth building
    /// effects for then.
    pub fn observed(&self) -> bool {
        self.guard.observed
    }

    /// Hands `effects` (what the command holding this guard changed) to the observers,
    /// after the `DEL`s of the keys it found expired.
    pub fn publish(&mut self, effects: Vec<Effect>) {
        if !self.guard.observed || effects.is_empty() {
            return;
        }
        self.publish_expired();
        self.db.observers.publish(self.slot, effects.into());
    }

    fn publish_expired(&mut self) {
        if !self.guard.expired_notes.is_empty() {
            if let Some(l) = self.db.expiry_listener.get() {
                l.expired(&self.guard.take_expired_notes());
            }
        }
        if self.guard.expired_keys.is_empty() {
            return;
        }
        let dels: Vec<Effect> = std::mem::take(&mut self.guard.expired_keys)
            .into_iter()
            .map(|k| Effect::Command(observe::argv([b"DEL", &k])))
            .collect();
        self.db.observers.publish(self.slot, dels.into());
    }

    /// Takes every key of the slot out, and says so to the observers.
    fn take_published(&mut self) -> SlotTable {
        if self.guard.observed {
            self.publish_expired();
            self.db.observers.before_clear(self.slot, &self.guard);
        }
        let keys = self.guard.take_keys();
        self.publish(vec![Effect::Clear]);
        keys
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.publish_expired();
        let after = self.guard.len();
        if after != self.len_before {
            self.db
                .keys
                .fetch_add(after as i64 - self.len_before as i64, Ordering::Relaxed);
            // Ordering: under the slot's lock (the guard is released after this body),
            // so the bit always follows the table's last change.
            let (word, bit) = (
                &self.db.nonempty[self.slot as usize / 64],
                1u64 << (self.slot % 64),
            );
            if self.len_before == 0 {
                word.fetch_or(bit, Ordering::Release);
            } else if after == 0 {
                word.fetch_and(!bit, Ordering::Release);
            }
        }
    }
}

/// What [`Db::stats`] counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableStats {
    /// Keys with a TTL now.
    pub with_ttl: usize,
    /// Keys removed because they expired.
    pub expired: u64,
    /// Reads that found their key (`keyspace_hits`), and that did not.
    pub hits: u64,
    pub misses: u64,
}

/// The whole keyspace.
pub struct Db {
    slots: Box<[Mutex<SlotTable>]>,
    /// Sum of all tables' lengths (maintained by [`SlotGuard`]).
    keys: AtomicI64,
    /// Bit `s % 64` of word `s / 64` is set exactly when the table of slot `s` holds a
    /// key (maintained by [`SlotGuard`], under the slot's lock). Read without locking.
    nonempty: Box<[AtomicU64]>,
    /// Per-slot modification counter, bumped after every write to the slot: `WATCH`
    /// remembers it and `EXEC` compares. A write to any key of the slot aborts a
    /// transaction watching another key of the same slot (a documented false abort).
    versions: Box<[AtomicU64]>,
    /// Signalled when migration holds are released.
    released: tokio::sync::Notify,
    /// Who sees every change (see [`observe`]).
    pub observers: Observers,
    /// Who is told of expired keys (keyspace notifications).
    expiry_listener: std::sync::OnceLock<std::sync::Arc<dyn ExpiryListener>>,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    pub fn new() -> Db {
        Db {
            slots: (0..SLOTS)
                .map(|_| Mutex::new(SlotTable::default()))
                .collect(),
            keys: AtomicI64::new(0),
            nonempty: (0..SLOTS / 64).map(|_| AtomicU64::new(0)).collect(),
            versions: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            released: tokio::sync::Notify::new(),
            observers: Observers::default(),
            expiry_listener: Default::default(),
        }
    }

    /// Sets who is told of expired keys (once).
    pub fn set_expiry_listener(&self, l: std::sync::Arc<dyn ExpiryListener>) {
        let _ = self.expiry_listener.set(l);
    }

    /// Locks the table of `slot` (which must be < 16384). Do not hold the guard across
    /// an `.await`, and never lock a second slot while holding one.
    pub fn lock(&self, slot: u16) -> SlotGuard<'_> {
        let mut guard = self.slots[slot as usize].lock();
        guard.observed = self.observers.active();
        guard.noted = self.expiry_listener.get().is_some_and(|l| l.wants());
        let len_before = guard.len();
        SlotGuard {
            guard,
            db: self,
            slot,
            len_before,
        }
    }

    /// Runs `f` with the table of `slot` locked.
    pub fn with_slot<R>(&self, slot: u16, f: impl FnOnce(&mut SlotTable) -> R) -> R {
        let mut g = self.lock(slot);
        f(&mut g)
    }

    /// Total number of keys (`DBSIZE`).
    pub fn dbsize(&self) -> usize {
        self.keys.load(Ordering::Relaxed).max(0) as usize
    }

    /// The first slot at or after `from` whose table holds a key, without locking any
    /// (a table filled or emptied meanwhile may or may not be seen).
    pub fn next_nonempty(&self, from: usize) -> Option<u16> {
        if from >= SLOTS {
            return None;
        }
        let mut w = from / 64;
        let mut bits = self.nonempty[w].load(Ordering::Acquire) & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some((w * 64 + bits.trailing_zeros() as usize) as u16);
            }
            w += 1;
            if w == self.nonempty.len() {
                return None;
            }
            bits = self.nonempty[w].load(Ordering::Acquire);
        }
    }

    /// A slot picked uniformly among those whose table holds a key (`None`: all empty).
    /// Reads the 256 words of the bitmap twice: O(1) whatever the number of keys.
    pub fn random_nonempty(&self) -> Option<u16> {
        use rand::Rng;
        // A table emptied between the two passes can make the pick miss: retry.
        for _ in 0..4 {
            let total: u32 = self
                .nonempty
                .iter()
                .map(|w| w.load(Ordering::Acquire).count_ones())
                .sum();
            if total == 0 {
                return None;
            }
            let mut k = rand::rng().random_range(0..total);
            for (i, w) in self.nonempty.iter().enumerate() {
                let mut bits = w.load(Ordering::Acquire);
                let ones = bits.count_ones();
                if k < ones {
                    for _ in 0..k {
                        bits &= bits - 1;
                    }
                    return Some((i * 64 + bits.trailing_zeros() as usize) as u16);
                }
                k -= ones;
            }
        }
        self.next_nonempty(0)
    }

    /// The slots whose table holds a key, in order (see [`Db::next_nonempty`]).
    pub fn nonempty_slots(&self) -> impl Iterator<Item = u16> + '_ {
        let mut from = 0;
        std::iter::from_fn(move || {
            let s = self.next_nonempty(from)?;
            from = s as usize + 1;
            Some(s)
        })
    }

    /// Number of keys in `slot` (`CLUSTER COUNTKEYSINSLOT`).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots[slot as usize].lock().len()
    }

    /// Up to `count` live keys of `slot` (`CLUSTER GETKEYSINSLOT`).
    pub fn keys_in_slot(&self, slot: u16, count: usize) -> Vec<Bytes> {
        let now = now_ms();
        let t = self.slots[slot as usize].lock();
        t.keys()
            .filter(|k| !t.is_expired(k, now))
            .take(count)
            .map(Bytes::copy_from_slice)
            .collect()
    }

    /// Takes the whole table of `slot` out (to free it off the lock), leaving it empty.
    pub fn take_slot(&self, slot: u16) -> SlotTable {
        let mut g = self.lock(slot);
        let taken = g.take_published();
        drop(g);
        self.bump_version(slot);
        taken
    }

    /// Makes `table` the live table of `slot` (a migration into this node committed),
    /// and publishes it whole: `Clear`, then the commands that rebuild each key.
    pub fn install_slot(&self, slot: u16, table: SlotTable) {
        let mut g = self.lock(slot);
        g.map = table.map;
        g.expires = table.expires;
        if g.observed() {
            let mut effects = vec![Effect::Clear];
            for (key, value) in g.iter() {
                let commands = observe::rebuild(key, value, g.expire_at(key));
                effects.extend(commands.into_iter().map(Effect::Command));
            }
            g.publish(effects);
        }
        drop(g);
        self.bump_version(slot);
    }

    /// Waits until `slot` is no longer held by a migration's handoff.
    pub async fn wait_released(&self, slot: u16) {
        loop {
            let released = self.released.notified();
            if !self.slots[slot as usize].lock().held {
                return;
            }
            released.await;
        }
    }

    /// Wakes writes waiting in [`Db::wait_released`] (they re-check their slot).
    pub fn notify_released(&self) {
        self.released.notify_waiters();
    }

    /// Removes every key of `slot`; returns how many there were.
    pub fn drop_slot(&self, slot: u16) -> usize {
        let mut g = self.lock(slot);
        let n = g.len();
        let taken = g.take_published();
        drop(g);
        drop(taken);
        self.bump_version(slot);
        n
    }

    /// Removes every key (`FLUSHALL`). Empty slots are skipped without locking them: a
    /// write racing with the flush may stay, as if it came just after.
    pub fn flush(&self) {
        for slot in self.nonempty_slots() {
            let mut g = self.lock(slot);
            if !g.is_empty() {
                drop(g.take_published());
                self.bump_version(slot);
            }
        }
    }

    /// Records a modification of `slot` (for `WATCH`).
    pub fn bump_version(&self, slot: u16) {
        self.versions[slot as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The modification counter of `slot`.
    pub fn version(&self, slot: u16) -> u64 {
        self.versions[slot as usize].load(Ordering::Relaxed)
    }

    /// `CONFIG RESETSTAT`: the expired, hit and missed counts back to 0.
    pub fn reset_stats(&self) {
        for s in self.slots.iter() {
            let mut t = s.lock();
            (t.expired, t.hits, t.misses) = (0, 0, 0);
        }
    }

    /// Counts over every slot table (each locked in turn).
    pub fn stats(&self) -> TableStats {
        let mut total = TableStats::default();
        for s in self.slots.iter() {
            let t = s.lock();
            total.with_ttl += t.expires_len();
            total.expired += t.expired;
            total.hits += t.hits;
            total.misses += t.misses;
        }
        total
    }

    /// One round of active expiry over `count` slots starting at `start`; returns the
    /// slot to start from next time. Each slot is locked on its own, briefly.
    pub fn active_expire_cycle(&self, start: u16, count: usize) -> u16 {
        if REPLICA.load(Ordering::Relaxed) {
            return start; // the primary's DELs expire keys here
        }
        let now = now_ms();
        let mut slot = start as usize % SLOTS;
        for _ in 0..count {
            let mut g = self.lock(slot as u16);
            if g.expires_len() > 0 && g.remove_expired(now) > 0 {
                drop(g);
                self.bump_version(slot as u16);
            }
            slot = (slot + 1) % SLOTS;
        }
        slot as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_guards() {
        let db = Db::new();
        db.with_slot(5, |t| {
            t.set(b"a", Value::Str(b"1"[..].into()));
            t.set(b"b", Value::Str(b"2"[..].into()));
        });
        db.with_slot(7, |t| t.set(b"c", Value::Str(b"3"[..].into())));
        assert_eq!(db.dbsize(), 3);
        assert_eq!(db.count_in_slot(5), 2);
        assert_eq!(db.keys_in_slot(5, 1).len(), 1);
        assert_eq!(db.drop_slot(5), 2);
        assert_eq!(db.dbsize(), 1);
        db.flush();
        assert_eq!(db.dbsize(), 0);
    }

    #[test]
    fn lazy_and_active_expiry() {
        let db = Db::new();
        db.with_slot(1, |t| {
            t.set(b"a", Value::Str(b"1"[..].into()));
            t.set_expire_at(b"a", 10);
            t.set(b"b", Value::Str(b"1"[..].into()));
            t.set_expire_at(b"b", 10);
            assert!(t.get(b"a", 11).is_none());
        });
        assert_eq!(db.dbsize(), 1);
        db.active_expire_cycle(0, SLOTS);
        assert_eq!(db.dbsize(), 0);
        let stats = db.stats();
        assert_eq!((stats.with_ttl, stats.expired), (0, 2));
    }

    #[test]
    fn the_bitmap_follows_every_way_a_table_fills_or_empties() {
        let db = Db::new();
        let v = || Value::Str(b"1"[..].into());
        let slots = |db: &Db| db.nonempty_slots().collect::<Vec<_>>();
        assert_eq!(db.next_nonempty(0), None);
        assert_eq!(db.random_nonempty(), None);
        for s in [0u16, 63, 64, 700, 16383] {
            db.with_slot(s, |t| t.set(b"k", v()));
        }
        assert_eq!(slots(&db), [0, 63, 64, 700, 16383]);
        assert_eq!(db.next_nonempty(65), Some(700));
        assert_eq!(db.next_nonempty(16384), None);
        for _ in 0..200 {
            let s = db.random_nonempty().unwrap();
            assert!([0, 63, 64, 700, 16383].contains(&s), "{s}");
        }
        db.with_slot(63, |t| {
            t.remove(b"k", 0);
        });
        let taken = db.take_slot(64);
        assert_eq!(slots(&db), [0, 700, 16383]);
        db.install_slot(5, taken);
        assert_eq!(slots(&db), [0, 5, 700, 16383]);
        db.drop_slot(0);
        db.with_slot(700, |t| {
            t.set(b"e", v());
            t.set_expire_at(b"e", 1);
            t.remove(b"k", 0);
        });
        assert_eq!(slots(&db), [5, 700, 16383]);
        db.active_expire_cycle(700, 1);
        assert_eq!(slots(&db), [5, 16383]);
        db.flush();
        assert!(slots(&db).is_empty());
        assert_eq!(db.dbsize(), 0);
    }

    #[test]
    fn random_slots_are_uniform_over_the_non_empty_ones() {
        let db = Db::new();
        let filled = [3u16, 4, 1000, 9000];
        for &s in &filled {
            db.with_slot(s, |t| t.set(b"k", Value::Str(b"1"[..].into())));
        }
        let mut hits = [0usize; 4];
        for _ in 0..4000 {
            let s = db.random_nonempty().unwrap();
            hits[filled.iter().position(|&f| f == s).unwrap()] += 1;
        }
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    }
}
