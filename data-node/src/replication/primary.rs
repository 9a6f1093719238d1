//! The primary's side of replication: the `Internal.Replicate` stream to each replica
//! (a partial resync from the backlog, or a full sync), the replicas' acknowledgements,
//! and `WAIT`. A full sync is [`super::fullsync`]'s engine with the gRPC stream as its
//! sink.

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

use super::fullsync::{self, Record, Sink};
use super::log::{FullSync, ReplId};
use super::wire::{self, FORMAT};

use crate::state::ServerState;

/// A chunk is sent once it holds this many bytes of items.
const CHUNK_BYTES: usize = 64 * 1024;
/// Frames read from the log at once while streaming.
const FRAMES_PER_READ: usize = 1024;

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
            fullsync::sync_all(state, &mut out).await?;
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

impl Sink for Out {
    fn cursor(&self) -> u64 {
        self.cursor
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
        let (record, bytes) = record.into_pb(slot);
        self.push(Item::Record(record), bytes).await
    }
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

    async fn flush(&mut self) -> Result<(), String> {
        let chunk = std::mem::take(&mut self.chunk);
        self.bytes = 0;
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| "the replica went away".to_string())
    }
}
