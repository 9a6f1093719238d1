//! The snapshot+stream engine: a consistent copy of the whole keyspace while writes go
//! on, as one ordered sequence of log frames and per-slot snapshot records. It serves a
//! replica's full sync ([`super::primary`], over gRPC) and the append-only file's
//! rewrite ([`crate::persist::aof`], to a file) alike: each gives its own [`Sink`].
//!
//! Slot after slot, under the slot's lock, the sync notes the log's end `X`, reads the
//! frames not sent yet (up to `X`) and encodes up to [`KEYS_PER_LOCK`] keys; it then
//! sends those frames and right after them the records, which hold the keys as they are
//! at `X`. The first record of every slot empties it on the other side (what frames did
//! to it before is void); every key a frame of the slot touches while the slot is being
//! recorded is recorded again under the next lock. So when a slot's last record is
//! applied, every one of its keys holds the source's state at that point of the log, and
//! the frames that follow apply to exactly what they applied to on the source.
//!
//! The log must record every change of the keyspace while this runs (it is attached,
//! or it is a replica's log that its applier fills, see [`super::log::Log::applying`]).

use std::collections::{HashSet, VecDeque};

use ember_proto::pb;

use super::log::Frame;
use crate::db::{now_ms, Effect, Key, SlotTable};
use crate::migration::codec;
use crate::state::ServerState;

/// Keys encoded per slot-lock acquisition.
const KEYS_PER_LOCK: usize = 64;
/// After this many restarts of one big value (a write touched it between two pieces),
/// it is sent whole under one lock.
const BIG_RESTARTS: u32 = 3;

/// One snapshot record of a slot.
pub(crate) enum Record {
    /// Empty the slot (its first record).
    Clear,
    /// A key, or a piece of a big one (or its deletion).
    Part(pb::KeyPart),
}

impl Record {
    /// The record as the stream carries it, with the bytes it counts for in a chunk.
    pub(crate) fn into_pb(self, slot: u16) -> (pb::SnapshotRecord, usize) {
        let (part, clear) = match self {
            Record::Clear => (None, true),
            Record::Part(p) => (Some(p), false),
        };
        let bytes = part.as_ref().map_or(8, codec::part_bytes);
        let record = pb::SnapshotRecord {
            slot: u32::from(slot),
            part,
            clear,
        };
        (record, bytes)
    }
}

/// Where a sync goes.
pub(crate) trait Sink {
    /// The log offset after the last frame taken.
    fn cursor(&self) -> u64;
    /// The next frames of the log, in order.
    async fn frames(&mut self, frames: Vec<Frame>) -> Result<(), String>;
    /// A record of `slot`, after the frames before it.
    async fn record(&mut self, slot: u16, record: Record) -> Result<(), String>;
}

/// Sends every slot, from the log position `sink.cursor()` on (see the module).
pub(crate) async fn sync_all(state: &ServerState, sink: &mut impl Sink) -> Result<(), String> {
    for slot in 0..ember_core::SLOT_COUNT {
        sync_slot(state, sink, slot).await?;
    }
    Ok(())
}

/// A big value being sent piece by piece.
struct Big {
    key: Key,
    next: usize,
    restarts: u32,
}

/// Sends the records of one slot (see the module's description).
async fn sync_slot(state: &ServerState, out: &mut impl Sink, slot: u16) -> Result<(), String> {
    let mut queue: Option<VecDeque<Key>> = None;
    let mut big: Option<Big> = None;
    loop {
        let mut records = Vec::new();
        let frames = {
            let now = now_ms();
            let mut t = state.db.lock(slot);
            if state.repl.is_applying() {
                // A replica's frame is in the keyspace but not in the log yet: the
                // slot's content and the log's end would not match.
                drop(t);
                tokio::task::yield_now().await;
                continue;
            }
            let x = state.repl.end();
            let frames = state.repl.read(out.cursor(), x, usize::MAX).map_err(|e| {
                format!("the sync fell out of the backlog ({e:?}); raise repl-backlog-size")
            })?;
            let mut group: Vec<Key> = touched(slot, &frames);
            if big.is_some()
                && frames
                    .iter()
                    .any(|f| f.slot == slot && f.effects.contains(&Effect::Clear))
            {
                restart(&mut big);
            }
            let queue = queue.get_or_insert_with(|| {
                records.push(Record::Clear);
                t.keys().map(Key::from).collect()
            });
            while group.len() < KEYS_PER_LOCK {
                match queue.pop_front() {
                    Some(k) => group.push(k),
                    None => break,
                }
            }
            for key in group {
                encode_key(&mut t, key, now, &mut records, &mut big, queue);
            }
            if let Some(b) = big.as_mut() {
                let done = encode_big(&mut t, b, now, &mut records);
                if done {
                    big = None;
                }
            }
            frames
        };
        out.frames(frames).await?;
        for r in records {
            out.record(slot, r).await?;
        }
        if big.is_none() && queue.as_ref().is_none_or(VecDeque::is_empty) {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

/// The keys of `slot` that `frames` touch (each once).
fn touched(slot: u16, frames: &[Frame]) -> Vec<Key> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for f in frames.iter().filter(|f| f.slot == slot) {
        for e in f.effects.iter() {
            if let Effect::Command(argv) = e {
                for k in crate::cmd::keys_of(argv) {
                    if seen.insert(k.clone()) {
                        keys.push(Key::from(&k[..]));
                    }
                }
            }
        }
    }
    keys
}

fn restart(big: &mut Option<Big>) {
    if let Some(b) = big {
        b.next = 0;
        b.restarts += 1;
    }
}

/// Records `key` as it is now: deleted, whole, or (a big value) started piece by piece.
fn encode_key(
    t: &mut SlotTable,
    key: Key,
    now: u64,
    records: &mut Vec<Record>,
    big: &mut Option<Big>,
    queue: &mut VecDeque<Key>,
) {
    let ttl = t.expire_at(&key);
    match t.get(&key, now) {
        None => records.push(Record::Part(codec::deleted(&key))),
        Some(v) if codec::is_big(v) => match big {
            Some(b) if b.key == key => restart(big),
            Some(_) => queue.push_back(key),
            None => {
                *big = Some(Big {
                    key,
                    next: 0,
                    restarts: 0,
                })
            }
        },
        Some(v) => records.push(Record::Part(codec::encode_piece(&key, v, ttl, 0))),
    }
}

/// Records the next piece of a big value (every piece left, once it was restarted too
/// often). Returns whether the value is complete.
fn encode_big(t: &mut SlotTable, b: &mut Big, now: u64, records: &mut Vec<Record>) -> bool {
    let ttl = t.expire_at(&b.key);
    let Some(v) = t.get(&b.key, now) else {
        records.push(Record::Part(codec::deleted(&b.key)));
        return true;
    };
    let count = codec::piece_count(v);
    let until = if b.restarts >= BIG_RESTARTS {
        count
    } else {
        b.next + 1
    };
    while b.next < until.min(count) {
        records.push(Record::Part(codec::encode_piece(&b.key, v, ttl, b.next)));
        b.next += 1;
    }
    b.next >= count
}
