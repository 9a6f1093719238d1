//! The primary's side of replication: the `Internal.Replicate` stream to each replica
//! (a partial resync from the backlog, or a full sync), the replicas' acknowledgements,
//! and `WAIT`.
//!
//! A full sync is one ordered sequence of frames and snapshot records. Slot after slot,
//! under the slot's lock, the sync notes the log's end `X`, reads the frames not sent yet
//! (up to `X`) and encodes up to [`KEYS_PER_LOCK`] keys; it then sends those frames and
//! right after them the records, which hold the keys as they are at `X`. The first
//! record of every slot empties it on the replica (what frames did to it before is
//! void); every key a frame of the slot touches while the slot is being recorded is
//! recorded again under the next lock. So when a slot's last record is applied, every
//! one of its keys holds the primary's state at that point of the log, and the frames
//! that follow apply to exactly what they applied to on the primary.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::{NodeId, Role};
use ember_proto::convert::parse_id;
use ember_proto::pb::{self, repl_item::Item};
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::log::{FullSync, ReplId};
use super::wire::{self, FORMAT};
use crate::db::{now_ms, Effect, Key, SlotTable};
use crate::migration::codec;
use crate::state::ServerState;

/// A chunk is sent once it holds this many bytes of items.
const CHUNK_BYTES: usize = 64 * 1024;
/// Keys encoded per slot-lock acquisition in a full sync.
const KEYS_PER_LOCK: usize = 64;
/// Frames read from the log at once while streaming.
const FRAMES_PER_READ: usize = 1024;
/// After this many restarts of one big value (a write touched it between two pieces),
/// it is sent whole under one lock.
const BIG_RESTARTS: u32 = 3;

/// A replica streaming from this node.
#[derive(Debug)]
pub struct Follower {
    pub node: NodeId,
    /// Its client address (`INFO replication` shows it).
    pub addr: String,
    /// The offset it acknowledged last.
    pub acked: AtomicU64,
    /// Its full sync is over (or it resumed partially): `state=online`.
    pub online: AtomicBool,
    pub last_ack: Mutex<Instant>,
}

/// The replicas streaming from this node, and `WAIT`'s wake-ups.
#[derive(Default)]
pub struct Followers {
    list: Mutex<Vec<Arc<Follower>>>,
    /// Woken on every acknowledgement.
    acked: tokio::sync::Notify,
}

impl Followers {
    pub fn list(&self) -> Vec<Arc<Follower>> {
        self.list.lock().clone()
    }

    /// Replicas online that acknowledged `offset` or more.
    pub fn count_at(&self, offset: u64) -> usize {
        self.list
            .lock()
            .iter()
            .filter(|f| {
                f.online.load(Ordering::Acquire) && f.acked.load(Ordering::Acquire) >= offset
            })
            .count()
    }

    /// Replicas online whose last acknowledgement is at most `max_lag` old
    /// (`min-replicas-max-lag`; acknowledgements come at least with every lease request).
    pub fn good(&self, max_lag: Duration) -> usize {
        self.list
            .lock()
            .iter()
            .filter(|f| f.online.load(Ordering::Acquire) && f.last_ack.lock().elapsed() <= max_lag)
            .count()
    }

    /// `WAIT`: until `n` replicas acknowledged `offset`, or `timeout` passed (`None`:
    /// forever). Returns how many did.
    pub async fn wait(&self, n: usize, offset: u64, timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let acked = self.acked.notified();
            let count = self.count_at(offset);
            if count >= n {
                return count;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, acked).await.is_err() {
                        return self.count_at(offset);
                    }
                }
                None => acked.await,
            }
        }
    }

    /// Until replica `node` acknowledged `offset` (true), or `deadline` passed.
    pub async fn wait_node(
        &self,
        node: NodeId,
        offset: u64,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            let acked = self.acked.notified();
            let done = self.list.lock().iter().any(|f| {
                f.node == node
                    && f.online.load(Ordering::Acquire)
                    && f.acked.load(Ordering::Acquire) >= offset
            });
            if done {
                return true;
            }
            if tokio::time::timeout_at(deadline, acked).await.is_err() {
                return false;
            }
        }
    }

    fn add(&self, f: Arc<Follower>) {
        let mut list = self.list.lock();
        list.retain(|o| o.node != f.node);
        list.push(f);
    }

    fn remove(&self, f: &Arc<Follower>) {
        self.list.lock().retain(|o| !Arc::ptr_eq(o, f));
        self.acked.notify_waiters();
    }

    fn ack(&self, f: &Follower, offset: u64) {
        f.acked.fetch_max(offset, Ordering::AcqRel);
        *f.last_ack.lock() = Instant::now();
        self.acked.notify_waiters();
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ReplicationChunk, Status>> + Send>>;
type Tx = mpsc::Sender<Result<pb::ReplicationChunk, Status>>;

/// Serves one `Internal.Replicate` call: checks that the caller is a replica of this
/// node, then streams to it until it goes away or stops being one.
pub async fn serve(
    state: Arc<ServerState>,
    mut inbound: tonic::Streaming<pb::ReplicaMessage>,
) -> Result<ChunkStream, Status> {
    let hello = tokio::time::timeout(Duration::from_secs(5), inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no hello from the replica"))??
        .ok_or_else(|| Status::cancelled("the replica went away"))?;
    let node = parse_id("replica id", &hello.replica_id)?;
    let applied = state
        .cluster
        .applied()
        .ok_or_else(|| Status::unavailable("this node has no topology yet"))?;
    let t = &applied.topology;
    if t.cluster_id.to_string() != hello.cluster_id {
        return Err(Status::failed_precondition(
            "the replica belongs to another cluster",
        ));
    }
    let addr = follower_addr(t, state.cluster.me(), node).ok_or_else(|| {
        Status::failed_precondition(format!(
            "node {node} is not a replica of this primary in topology version {}",
            t.version
        ))
    })?;
    drop(applied);
    state.repl.attach(&state.db);
    let start = match ReplId::parse(&hello.replid) {
        Some(id) => state.repl.check_resume(id, hello.offset),
        None => Err(FullSync::OtherHistory),
    };
    let stats = &state.stats;
    match &start {
        Ok(()) => &stats.sync_partial_ok,
        Err(_) if !hello.replid.is_empty() => {
            stats.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            &stats.sync_full
        }
        Err(_) => &stats.sync_full,
    }
    .fetch_add(1, Ordering::Relaxed);
    let follower = Arc::new(Follower {
        node,
        addr,
        acked: AtomicU64::new(0),
        online: AtomicBool::new(false),
        last_ack: Mutex::new(Instant::now()),
    });
    state.followers.add(follower.clone());
    let (tx, rx) = mpsc::channel(8);
    {
        let (state, follower) = (state.clone(), follower.clone());
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if m.lease_grant != 0 {
                    state.lease.granted_by_replica(follower.node, m.lease_grant);
                }
                state.followers.ack(&follower, m.ack);
            }
        });
    }

    tokio::spawn(async move {
        let leases = tokio::spawn(request_leases(state.clone(), tx.clone()));
        let result = stream(&state, &follower, start.map(|()| hello.offset), &tx).await;
        leases.abort();
        state.followers.remove(&follower);
        match result {
            Ok(()) => tracing::info!(replica = %follower.node, "replication stream ended"),
            Err(e) => {
                tracing::warn!(replica = %follower.node, "replication stream ended: {e}");
                let _ = tx.try_send(Err(Status::aborted(e)));
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Asks the replica for a write lease four times per lease length, with lease-only
/// chunks between the stream's own (each is whole, so they interleave safely), until
/// the stream closes.
async fn request_leases(state: Arc<ServerState>, tx: Tx) {
    loop {
        let every = (state.lease.length() / 4).max(Duration::from_millis(10));
        let chunk = pb::ReplicationChunk {
            lease_request: state.lease.now(),
            ..Default::default()
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// The stream to one replica: a partial resync from `Ok(offset)`, or a full sync, then
/// the frames as they come, until the replica goes away or is no longer this node's.
async fn stream(
    state: &ServerState,
    follower: &Follower,
    start: Result<u64, FullSync>,
    tx: &Tx,
) -> Result<(), String> {
    let (id, end) = state.repl.position();
    let mut out = Out::new(tx.clone());
    match start {
        Ok(offset) => {
            tracing::info!(replica = %follower.node, offset, "partial resync");
            out.chunk.format = FORMAT;
            out.chunk.replid = id.to_string();
            out.chunk.offset = offset;
            out.cursor = offset;
            follower.acked.store(offset, Ordering::Release);
            follower.online.store(true, Ordering::Release);
        }
        Err(why) => {
            let keys = state.db.dbsize();
            tracing::info!(replica = %follower.node, ?why, keys, "full sync");
            let began = Instant::now();
            out.chunk.format = FORMAT;
            out.chunk.full_sync = true;
            out.chunk.replid = id.to_string();
            out.chunk.offset = end;
            out.chunk.keys_total = keys as u64;
            out.cursor = end;
            for slot in 0..ember_core::SLOT_COUNT {
                sync_slot(state, &mut out, slot).await?;
            }
            out.chunk.sync_done = true;
            out.flush().await?;
            follower.online.store(true, Ordering::Release);
            tracing::info!(replica = %follower.node, keys, secs = began.elapsed().as_secs_f64(), "full sync sent");
        }
    }
    out.flush().await?;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        let appended = state.repl.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let frames = state
            .repl
            .read(out.cursor, u64::MAX, FRAMES_PER_READ)
            .map_err(|e| format!("the replica fell out of the backlog ({e:?})"))?;
        if !frames.is_empty() {
            out.frames(frames).await?;
            if out.bytes > 0 {
                // Send what is there now: latency matters more than fuller chunks.
                out.flush().await?;
            }
            continue;
        }
        tokio::select! {
            _ = &mut appended => {}
            _ = tx.closed() => return Ok(()),
            _ = check.tick() => {
                if !still_mine(state, follower.node) {
                    return Err("it is no longer a replica of this node".into());
                }
            }
        }
    }
}

fn still_mine(state: &ServerState, node: NodeId) -> bool {
    let me = state.cluster.me();
    state
        .cluster
        .applied()
        .is_some_and(|a| follower_addr(&a.topology, me, node).is_some())
}

/// The client address of `node` if, in `t`, it is a replica of `me` and `me` a primary.
fn follower_addr(t: &ember_core::Topology, me: NodeId, node: NodeId) -> Option<String> {
    let n = t.nodes.get(&node)?;
    let primary = t.nodes.get(&me).is_some_and(|m| m.is_primary());
    (primary && n.role == (Role::Replica { of: me })).then(|| n.client_addr.clone())
}

/// A chunk being filled, and the offset of the last frame queued.
struct Out {
    tx: Tx,
    chunk: pb::ReplicationChunk,
    bytes: usize,
    cursor: u64,
}

impl Out {
    fn new(tx: Tx) -> Out {
        Out {
            tx,
            chunk: pb::ReplicationChunk::default(),
            bytes: 0,
            cursor: 0,
        }
    }

    async fn push(&mut self, item: Item, bytes: usize) -> Result<(), String> {
        self.chunk.items.push(pb::ReplItem { item: Some(item) });
        self.bytes += bytes;
        if self.bytes >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn frames(&mut self, frames: Vec<super::log::Frame>) -> Result<(), String> {
        for f in frames {
            let bytes = (f.end - self.cursor) as usize;
            self.cursor = f.end;
            self.push(Item::Frame(wire::frame_to_pb(&f)), bytes).await?;
        }
        Ok(())
    }

    async fn record(&mut self, slot: u16, record: Record) -> Result<(), String> {
        let (part, clear) = match record {
            Record::Clear => (None, true),
            Record::Part(p) => (Some(p), false),
        };
        let bytes = part.as_ref().map_or(8, codec::part_bytes);
        let record = pb::SnapshotRecord {
            slot: u32::from(slot),
            part,
            clear,
        };
        self.push(Item::Record(record), bytes).await
    }

    async fn flush(&mut self) -> Result<(), String> {
        let chunk = std::mem::take(&mut self.chunk);
        self.bytes = 0;
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| "the replica went away".to_string())
    }
}

enum Record {
    Clear,
    Part(pb::KeyPart),
}

/// A big value being sent piece by piece.
struct Big {
    key: Key,
    next: usize,
    restarts: u32,
}

/// Sends the records of one slot (see the module's description).
async fn sync_slot(state: &ServerState, out: &mut Out, slot: u16) -> Result<(), String> {
    let mut queue: Option<VecDeque<Key>> = None;
    let mut big: Option<Big> = None;
    loop {
        let mut records = Vec::new();
        let frames = {
            let now = now_ms();
            let mut t = state.db.lock(slot);
            let x = state.repl.end();
            let frames = state.repl.read(out.cursor, x, usize::MAX).map_err(|e| {
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
fn touched(slot: u16, frames: &[super::log::Frame]) -> Vec<Key> {
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
