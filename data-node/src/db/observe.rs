//! The write observer: every change to the keyspace, as the effects that reproduce it,
//! handed in order to every consumer that subscribed (replication's stream, the
//! append-only file, tests that replay them).
//!
//! An effect is deterministic and absolute, as Redis propagates: applied in order to a
//! copy of the slot, the effects make the copy equal to the original whatever the time
//! or the randomness on the other side. Handlers say what to propagate through
//! [`crate::cmd::Ctx::propagate`] (`SPOP` → `SREM` of the members chosen, `EXPIRE` →
//! `PEXPIREAT`, `INCRBYFLOAT` → `SET` of the result); a write that says nothing
//! propagates itself as received, and a write that changed nothing propagates nothing.
//! Keys removed because they expired propagate as `DEL`, before whatever the command
//! that found them expired did.
//!
//! Consumers are called under the slot's lock, so the order they see is the order in
//! which the slot changed; they must only queue what they are given, never block.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

/// One command, as arguments (`[b"SREM", key, member]`).
pub type Argv = Vec<Bytes>;

/// One change of one slot, as a consumer must apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run this command on the slot.
    Command(Argv),
    /// Remove every key of the slot (`FLUSHALL`, or the slot left this node).
    Clear,
    /// A piece of a key that a migration into this node is importing (the migration
    /// codec's `KeyPart`, encoded). Not in the keyspace: a replica stages it as its
    /// primary does, so that it holds the slot's keys the moment the migration commits.
    Staged(Bytes),
}

/// Something that wants every change, in order.
pub trait Consumer: Send + Sync {
    /// The effects of one command (one `EXEC`, one expiry) on `slot`, in the order they
    /// apply. Called with the slot locked.
    fn observe(&self, slot: u16, effects: &Arc<[Effect]>);

    /// `slot` is about to be emptied (`table` still holds its keys): `observe` gets
    /// [`Effect::Clear`] once it is. For consumers that follow keys by name.
    fn before_clear(&self, _slot: u16, _table: &super::SlotTable) {}
}

/// The subscribed consumers.
#[derive(Default)]
pub struct Observers {
    consumers: RwLock<Vec<Arc<dyn Consumer>>>,
    /// `consumers.len()`, read on every lock of a slot without taking the `RwLock`.
    count: AtomicUsize,
}

impl Observers {
    /// From the next lock of a slot on, `consumer` sees every change.
    pub fn subscribe(&self, consumer: Arc<dyn Consumer>) {
        let mut list = self.consumers.write();
        list.push(consumer);
        self.count.store(list.len(), Ordering::Release);
    }

    /// `consumer` sees no change after this returns.
    pub fn unsubscribe(&self, consumer: &Arc<dyn Consumer>) {
        let mut list = self.consumers.write();
        list.retain(|c| !Arc::ptr_eq(c, consumer));
        self.count.store(list.len(), Ordering::Release);
    }

    /// Whether anyone is subscribed (effects are only built then).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    pub(super) fn before_clear(&self, slot: u16, table: &super::SlotTable) {
        for c in self.consumers.read().iter() {
            c.before_clear(slot, table);
        }
    }

    /// Built once, shared by every consumer (the log keeps it as it is).
    pub(super) fn publish(&self, slot: u16, effects: Arc<[Effect]>) {
        if effects.is_empty() {
            return;
        }
        for c in self.consumers.read().iter() {
            c.observe(slot, &effects);
        }
    }
}

/// An argument vector from byte strings (`argv([b"DEL", key])`).
pub fn argv<const N: usize>(parts: [&[u8]; N]) -> Argv {
    parts.into_iter().map(Bytes::copy_from_slice).collect()
}

/// A consumer that keeps everything it sees (tests, and tools that replay effects).
#[derive(Default)]
pub struct Recorder {
    seen: parking_lot::Mutex<Vec<(u16, Vec<Effect>)>>,
}

impl Recorder {
    /// Every batch seen since the last call (one per [`Consumer::observe`]), in order.
    pub fn take_batches(&self) -> Vec<(u16, Vec<Effect>)> {
        std::mem::take(&mut self.seen.lock())
    }

    /// Every effect seen since the last call, in order.
    pub fn take(&self) -> Vec<(u16, Effect)> {
        self.take_batches()
            .into_iter()
            .flat_map(|(slot, batch)| batch.into_iter().map(move |e| (slot, e)))
            .collect()
    }
}

impl Consumer for Recorder {
    fn observe(&self, slot: u16, effects: &Arc<[Effect]>) {
        self.seen.lock().push((slot, effects.to_vec()));
    }
}

/// Elements per command in [`rebuild`] (as Redis's AOF rewrite batches them).
pub const REBUILD_BATCH: usize = 64;

/// The commands that recreate `key` holding `value` (with deadline `expire_at`) on a
/// slot where it is absent: `SET`, or `RPUSH` / `SADD` / `HSET` / `ZADD` of at most
/// [`REBUILD_BATCH`] elements each, then `PEXPIREAT`. How a whole slot is published when
/// it arrives at once (a migration into this node commits), and what an append-only
/// file's rewrite writes.
pub fn rebuild(key: &[u8], value: &super::Value, expire_at: Option<u64>) -> Vec<Argv> {
    use super::Value;
    let copy = |b: &[u8]| Bytes::copy_from_slice(b);
    let mut out = match value {
        Value::Str(s) => vec![argv([b"SET", key, s])],
        Value::List(l) => batched(b"RPUSH", key, l.iter().map(|v| vec![copy(v)])),
        Value::Set(s) => batched(b"SADD", key, s.iter().map(|m| vec![copy(m)])),
        Value::Hash(h) => batched(b"HSET", key, h.iter().map(|(f, v)| vec![copy(f), copy(v)])),
        Value::ZSet(z) => batched(
            b"ZADD",
            key,
            z.iter()
                .map(|(m, s)| vec![crate::resp::reply::fmt_double(s).into(), copy(m)]),
        ),
    };
    out.extend(expire_at.map(|at| pexpireat(key, at)));
    out
}

/// `name key` followed by the arguments of [`REBUILD_BATCH`] elements at most, as many
/// commands as it takes.
fn batched(name: &[u8], key: &[u8], elements: impl Iterator<Item = Argv>) -> Vec<Argv> {
    let mut out: Vec<Argv> = Vec::new();
    for (i, parts) in elements.enumerate() {
        if i % REBUILD_BATCH == 0 {
            out.push(argv([name, key]));
        }
        out.last_mut().expect("pushed above").extend(parts);
    }
    out
}

/// The effect `PEXPIREAT key at`.
pub fn pexpireat(key: &[u8], at: u64) -> Argv {
    argv([b"PEXPIREAT", key, itoa::Buffer::new().format(at).as_bytes()])
}
