//! `maxmemory` and eviction, as Redis does them.
//!
//! - **What counts**: the bytes the process has allocated ([`crate::alloc`]), less the
//!   replication backlog (as Redis leaves replication buffers out). Before every
//!   command, [`make_room`] compares that with `maxmemory` (one atomic load while it is
//!   0, and while the approximate count is under it).
//! - **Which key goes**: approximated LRU/LFU/TTL with Redis's sampling and pool: each
//!   round samples `maxmemory-samples` keys of random non-empty slots (for `volatile-*`,
//!   keys with a TTL), keeps the [`POOL`] best candidates seen so far (longest idle,
//!   least frequent, nearest deadline) and evicts the best one still there. The random
//!   policies take a random key of a random slot. No list per key: each key keeps 32
//!   bits ([`crate::db::access`]).
//! - **An eviction is a write**: it publishes a `DEL` on its slot (replicas and every
//!   other consumer see it), sends the `evicted` keyspace event and invalidates the key
//!   for tracking clients. Replicas never evict on their own (their primary's `DEL`s
//!   do it), as Redis's `replica-ignore-maxmemory yes`.
//! - **Bounded work**: one call evicts for at most [`ROUND`]; if memory is still over
//!   after that but keys went, the command runs (the periodic task goes on evicting, as
//!   Redis's eviction time proc); if nothing could go (`noeviction`, or no key with a
//!   TTL under a `volatile-*` policy), commands that may grow memory are refused with
//!   [`OOM`].

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::db::{self, access, observe, Effect};
use crate::state::ServerState;

/// The reply to a command that may grow memory when nothing can be evicted.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Candidates the pool keeps between rounds (Redis's `EVPOOL_SIZE`).
const POOL: usize = 16;

/// Most time one [`make_room`] call spends evicting.
const ROUND: Duration = Duration::from_micros(500);

/// `maxmemory-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

const POLICIES: [(Policy, &str); 8] = [
    (Policy::VolatileLru, "volatile-lru"),
    (Policy::VolatileLfu, "volatile-lfu"),
    (Policy::VolatileRandom, "volatile-random"),
    (Policy::VolatileTtl, "volatile-ttl"),
    (Policy::AllkeysLru, "allkeys-lru"),
    (Policy::AllkeysLfu, "allkeys-lfu"),
    (Policy::AllkeysRandom, "allkeys-random"),
    (Policy::NoEviction, "noeviction"),
];

impl Policy {
    pub fn parse(s: &[u8]) -> Option<Policy> {
        POLICIES
            .iter()
            .find(|(_, n)| s.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(p, _)| *p)
    }

    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("noeviction", |(_, n)| n)
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// An `allkeys-*` policy: any key may go to make room.
    pub fn evicts_any_key(self) -> bool {
        matches!(
            self,
            Policy::AllkeysLru | Policy::AllkeysLfu | Policy::AllkeysRandom
        )
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn random(self) -> bool {
        matches!(self, Policy::AllkeysRandom | Policy::VolatileRandom)
    }

    fn from_u8(v: u8) -> Policy {
        POLICIES
            .iter()
            .map(|(p, _)| *p)
            .find(|p| *p as u8 == v)
            .unwrap_or(Policy::NoEviction)
    }
}

/// `maxmemory-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientsLimit {
    Bytes(u64),
    /// Of `maxmemory`.
    Percent(u64),
}

impl std::fmt::Display for ClientsLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientsLimit::Bytes(b) => write!(f, "{b}"),
            ClientsLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The settings (`CONFIG SET maxmemory ...`), read on every command.
#[derive(Debug)]
pub struct Settings {
    maxmemory: AtomicU64,
    clients: Mutex<ClientsLimit>,
    policy: AtomicU8,
    samples: AtomicU32,
    lfu_log_factor: AtomicU32,
    lfu_decay_time: AtomicU32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            maxmemory: AtomicU64::new(0),
            clients: Mutex::new(ClientsLimit::Bytes(0)),
            policy: AtomicU8::new(Policy::NoEviction as u8),
            samples: AtomicU32::new(5),
            lfu_log_factor: AtomicU32::new(10),
            lfu_decay_time: AtomicU32::new(1),
        }
    }
}

impl Settings {
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    pub fn samples(&self) -> u32 {
        self.samples.load(Ordering::Relaxed)
    }

    pub fn lfu(&self) -> (u32, u32) {
        (
            self.lfu_log_factor.load(Ordering::Relaxed),
            self.lfu_decay_time.load(Ordering::Relaxed),
        )
    }

    pub fn clients(&self) -> ClientsLimit {
        *self.clients.lock()
    }

    pub fn set_clients(&self, l: ClientsLimit) {
        *self.clients.lock() = l;
    }

    /// `maxmemory-clients` in bytes now (0: no limit).
    pub fn clients_bytes(&self) -> u64 {
        match self.clients() {
            ClientsLimit::Bytes(b) => b,
            ClientsLimit::Percent(p) => self.maxmemory() / 100 * p,
        }
    }

    pub fn set_maxmemory(&self, v: u64) {
        self.maxmemory.store(v, Ordering::Relaxed);
    }

    pub fn set_policy(&self, p: Policy) {
        self.policy.store(p as u8, Ordering::Relaxed);
        self.apply();
    }

    pub fn set_samples(&self, n: u32) {
        self.samples.store(n, Ordering::Relaxed);
    }

    pub fn set_lfu(&self, log_factor: Option<u32>, decay_time: Option<u32>) {
        if let Some(v) = log_factor {
            self.lfu_log_factor.store(v, Ordering::Relaxed);
        }
        if let Some(v) = decay_time {
            self.lfu_decay_time.store(v, Ordering::Relaxed);
        }
        self.apply();
    }

    /// Tells the keyspace what keys must remember ([`access::configure`]).
    fn apply(&self) {
        let (log_factor, decay) = self.lfu();
        access::configure(self.policy().is_lfu(), log_factor, decay);
    }
}

/// One candidate of the pool.
struct Candidate {
    /// Higher: evicted first.
    badness: u64,
    slot: u16,
    key: Bytes,
}

/// The eviction pool and what eviction has done.
#[derive(Default)]
pub struct Evictor {
    pool: Mutex<Vec<Candidate>>,
    /// Keys evicted (`INFO stats` `evicted_keys`).
    pub evicted: AtomicU64,
    /// The last check found memory full ([`out_of_memory`]).
    full: std::sync::atomic::AtomicBool,
    /// Clients disconnected over `maxmemory-clients` (`INFO stats` `evicted_clients`).
    pub evicted_clients: AtomicU64,
}

/// `maxmemory-clients`: while the clients' buffers (their read buffers' capacity and
/// their unsent replies) take more than the limit, the biggest client is disconnected,
/// as Redis 7 evicts clients; clients with `CLIENT NO-EVICT on` are spared. Run by the
/// server's 100 ms tick.
pub fn evict_clients(state: &ServerState) {
    let limit = state.config.memory.clients_bytes();
    if limit == 0 {
        return;
    }
    let size = |c: &crate::state::ClientInfo| {
        (c.qbuf_cap.load(Ordering::Relaxed) + c.omem.load(Ordering::Relaxed)) as u64
    };
    // Clients already closing are going: they do not count.
    let mut clients = state.clients.list();
    clients.retain(|c| !c.killed.load(Ordering::Relaxed));
    let mut total: u64 = clients.iter().map(|c| size(c)).sum();
    if total <= limit {
        return;
    }
    clients.sort_by_key(|c| std::cmp::Reverse(size(c)));
    for c in clients {
        if total <= limit {
            break;
        }
        if c.no_evict.load(Ordering::Relaxed) {
            continue;
        }
        let bytes = size(&c);
        tracing::warn!(
            client = c.id,
            addr = %c.addr,
            bytes,
            limit,
            "maxmemory-clients: disconnecting the biggest client"
        );
        c.kill();
        total = total.saturating_sub(bytes);
        state
            .evictor
            .evicted_clients
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// What [`make_room`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Memory is within `maxmemory` (or there is no limit).
    Enough,
    /// Still over, but keys are going: commands run meanwhile.
    Evicting,
    /// Over, and nothing can be evicted: commands that may grow memory are refused.
    Full,
}

/// Before command `spec` of `client` runs: makes room, and answers `OOM` if it must be
/// refused, as Redis: a command that may grow memory when nothing can be evicted, and
/// inside `MULTI` any command but `EXEC`, `DISCARD`, `QUIT` and `RESET` (the queue
/// grows too; the transaction is then discarded at `EXEC`). `EXEC` itself checks its
/// queued commands ([`out_of_memory`]). The primary's link is never refused.
pub fn refuse(
    state: &ServerState,
    client: &mut crate::cmd::Client,
    spec: &crate::cmd::table::CommandSpec,
) -> Option<crate::resp::Reply> {
    if state.config.memory.maxmemory() == 0 || client.primary_link {
        return None;
    }
    let full = make_room(state) == Room::Full;
    // Written only when it changes: this runs before every command, on every thread.
    if state.evictor.full.load(Ordering::Relaxed) != full {
        state.evictor.full.store(full, Ordering::Relaxed);
    }
    if !full {
        return None;
    }
    let denyoom = spec.flags & crate::cmd::flags::DENYOOM != 0;
    let queued =
        client.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
    if !denyoom && !queued {
        return None;
    }
    if let Some(ms) = client.multi.as_mut() {
        ms.dirty = true;
    }
    Some(crate::resp::Reply::err(OOM))
}

/// Whether the last command's check found memory full (nothing could be evicted): a
/// script's writes and an `EXEC` of writes are refused then.
pub fn out_of_memory(state: &ServerState) -> bool {
    state.config.memory.maxmemory() != 0 && state.evictor.full.load(Ordering::Relaxed)
}

/// The bytes that count against `maxmemory`.
pub fn counted(state: &ServerState) -> u64 {
    let backlog = state.repl.backlog().1;
    (state.used_memory() as u64).saturating_sub(backlog)
}

/// Evicts keys until memory is within `maxmemory`, for at most [`ROUND`].
pub fn make_room(state: &ServerState) -> Room {
    let settings = &state.config.memory;
    let max = settings.maxmemory();
    if max == 0 || db::is_replica() {
        return Room::Enough;
    }
    // The cheap estimate first (one load): within the limit, nothing to do. Eviction
    // goes down to the limit less the estimate's error, so that at the limit the
    // estimate is under it and commands do not each pay for the exact count.
    let approx = (crate::alloc::approximate() as u64).saturating_sub(state.repl.backlog().1);
    if approx != 0 && approx <= max {
        return Room::Enough;
    }
    let target = max - crate::alloc::approximation().min(max / 64);
    if counted(state) <= max {
        return Room::Enough;
    }
    let policy = settings.policy();
    if policy == Policy::NoEviction {
        return Room::Full;
    }
    let began = Instant::now();
    let mut evicted = 0u64;
    loop {
        let Some((slot, key)) = pick(state, policy, settings.samples()) else {
            return match evicted {
                0 => Room::Full,
                _ => Room::Evicting,
            };
        };
        if evict(state, slot, &key, policy) {
            evicted += 1;
        }
        // The exact count (a sum over the allocator's shards) every few keys.
        if counted(state) <= target {
            return Room::Enough;
        }
        if began.elapsed() >= ROUND {
            return match counted(state) <= max {
                true => Room::Enough,
                false => Room::Evicting,
            };
        }
    }
}

/// The next key to evict under `policy`.
fn pick(state: &ServerState, policy: Policy, samples: u32) -> Option<(u16, Bytes)> {
    let now = db::now_ms();
    let sample_slot =
        |slot: u16, want: usize| state.db.with_slot(slot, |t| sample(t, policy, want, now));
    if policy.random() {
        // A random key of a random slot: no pool.
        for attempt in 0..64 {
            let slot = match (policy.volatile(), attempt) {
                (true, 63) => slot_with_ttl_keys(state)?,
                _ => state.db.random_nonempty()?,
            };
            if let Some((key, _)) = sample_slot(slot, 1).pop() {
                return Some((slot, key));
            }
        }
        return None;
    }
    let mut pool = state.evictor.pool.lock();
    let into_pool = |pool: &mut Vec<Candidate>, slot: u16, want: usize| {
        let found = sample_slot(slot, want);
        let n = found.len();
        for (key, badness) in found {
            insert(pool, Candidate { badness, slot, key });
        }
        n
    };
    // Sample from random non-empty slots until `samples` keys were looked at.
    let samples = samples.max(1) as usize;
    let mut seen = 0;
    for _ in 0..64 {
        if seen >= samples {
            break;
        }
        let Some(slot) = state.db.random_nonempty() else {
            break;
        };
        seen += into_pool(&mut pool, slot, samples - seen);
    }
    if pool.is_empty() && policy.volatile() {
        // Keys with a TTL are few and far between: look for them slot by slot.
        if let Some(slot) = slot_with_ttl_keys(state) {
            into_pool(&mut pool, slot, samples);
        }
    }
    pool.pop().map(|c| (c.slot, c.key))
}

/// A non-empty slot holding keys with a TTL, from a random place on.
fn slot_with_ttl_keys(state: &ServerState) -> Option<u16> {
    let start = state.db.random_nonempty()?;
    let has = |s: &u16| state.db.with_slot(*s, |t| t.expires_len() > 0);
    let after = state.db.nonempty_slots().filter(|s| *s >= start).find(has);
    after.or_else(|| state.db.nonempty_slots().filter(|s| *s < start).find(has))
}

/// Up to `n` keys of table `t` that `policy` may evict, with their badness.
fn sample(t: &mut db::SlotTable, policy: Policy, n: usize, now: u64) -> Vec<(Bytes, u64)> {
    use rand::Rng;
    let mut rng = rand::rng();
    if policy.volatile() {
        let start = rng.random_range(0..t.expires_len().max(1));
        return t
            .sample_expiring(n, start)
            .into_iter()
            .filter_map(|(key, at)| {
                let badness = match policy {
                    Policy::VolatileTtl => u64::MAX - at,
                    _ => access::badness(t.access(&key, now)?),
                };
                Some((Bytes::from(key.into_vec()), badness))
            })
            .collect();
    }
    let len = t.len();
    if len == 0 {
        return Vec::new();
    }
    (0..n.min(len))
        .filter_map(|_| t.access_at(rng.random_range(0..len)))
        .map(|(key, bits)| (Bytes::copy_from_slice(key), access::badness(bits)))
        .collect()
}

/// Puts `c` in the pool (sorted by badness, ascending: the best is last), dropping the
/// least bad when full, and any older entry of the same key.
fn insert(pool: &mut Vec<Candidate>, c: Candidate) {
    pool.retain(|p| !(p.slot == c.slot && p.key == c.key));
    if pool.len() >= POOL {
        if pool[0].badness >= c.badness {
            return;
        }
        pool.remove(0);
    }
    let at = pool.partition_point(|p| p.badness <= c.badness);
    pool.insert(at, c);
}

/// Removes `key` from `slot` as an eviction (if it is still there and, under a
/// `volatile-*` policy, still has a TTL).
fn evict(state: &ServerState, slot: u16, key: &Bytes, policy: Policy) -> bool {
    let mut g = state.db.lock(slot);
    let now = db::now_ms();
    if policy.volatile() && g.expire_at(key).is_none() {
        return false;
    }
    if g.remove(key, now).is_none() {
        return false;
    }
    state.db.bump_version(slot);
    g.publish(vec![Effect::Command(observe::argv([
        b"DEL".as_slice(),
        key,
    ]))]);
    drop(g);
    state.evictor.evicted.fetch_add(1, Ordering::Relaxed);
    state.persist.changed(1);
    state
        .config
        .notify
        .send(&state.pubsub, crate::notify::EVICTED, "evicted", key);
    state.tracker.changed(&[key.as_ref()], None, &state.clients);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_have_redis_names() {
        for (p, n) in POLICIES {
            assert_eq!(Policy::parse(n.to_uppercase().as_bytes()), Some(p));
            assert_eq!(p.name(), n);
            assert_eq!(Policy::from_u8(p as u8), p);
        }
        assert_eq!(Policy::parse(b"lru"), None);
    }

    #[test]
    fn the_pool_keeps_the_worst_keys_best_last() {
        let mut pool = Vec::new();
        for b in [
            5u64, 1, 9, 3, 7, 2, 8, 4, 6, 0, 15, 11, 13, 12, 14, 10, 16, 17,
        ] {
            insert(
                &mut pool,
                Candidate {
                    badness: b,
                    slot: 0,
                    key: Bytes::from(b.to_string()),
                },
            );
        }
        let kept: Vec<u64> = pool.iter().map(|c| c.badness).collect();
        assert_eq!(kept, (2..18).collect::<Vec<_>>());
        insert(
            &mut pool,
            Candidate {
                badness: 30,
                slot: 0,
                key: Bytes::from("5"),
            },
        );
        assert_eq!(pool.last().map(|c| c.badness), Some(30));
        assert_eq!(pool.iter().filter(|c| c.key == "5").count(), 1);
    }
}
