//! The source side of a migration: the `Internal.Pull` service.
//!
//! 1. Track: every write to the slots marks its keys dirty (from now on).
//! 2. Snapshot: send every key of the slots, a batch of keys per lock.
//! 3. Tail: send the keys dirtied meanwhile, until few remain.
//! 4. Handoff: hold writes to the slots (a write waits instead of running), send the last
//!    dirty keys and `handoff_done`. The hold ends when this node applies a snapshot in
//!    which the migration is gone: committed (held writes get `MOVED`) or aborted (they
//!    run here).
//! 5. Bounded hold: if no outcome arrived [`HOLD_TIMEOUT`] into the hold, the source asks
//!    the target, which keeps the decision ([`crate::handoff`]), to abort
//!    (`Internal.AbortHandoff`). If it agrees, the source releases its holds, keeps the
//!    slots and reports `failed`; if it promised already (the control plane may have
//!    committed), or cannot be reached, the hold lasts until the control plane's
//!    decision arrives, and the source asks again every [`REASK`] while that can help.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::SlotSet;
use ember_proto::convert::parse_id;
use ember_proto::pb::{self, abort_handoff_reply::Outcome, internal_client::InternalClient};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::codec;
use super::dirty::DirtyKeys;
use super::{Migrations, Outgoing};
use crate::db::{now_ms, Key};
use crate::handoff::{self, Answer};

/// How long the source holds writes waiting for the control plane's decision before it
/// asks the target to abort. With the ask's own bound ([`ASK_TIMEOUT`]) a hold that the
/// target agrees to end lasts at most 1 s. A normal handoff (one session round trip to
/// the control plane and an fsync) takes tens of milliseconds.
pub const HOLD_TIMEOUT: Duration = Duration::from_millis(800);
/// How long one `AbortHandoff` call may take (the target is one loopback or LAN hop).
const ASK_TIMEOUT: Duration = Duration::from_millis(150);
/// How often the source asks again while the target is unreachable or knows nothing.
pub const REASK: Duration = Duration::from_millis(250);
/// A chunk is sent once it holds this many bytes of parts (a big value's piece, up to
/// `codec::PART_BYTES`, may make it larger). Small, so that little is in flight when
/// the handoff begins.
const CHUNK_BYTES: usize = 32 * 1024;
/// Tail rounds stop when fewer keys than this are dirty (they go in the handoff).
const HANDOFF_BELOW: usize = 256;
const MAX_TAIL_ROUNDS: usize = 50;
/// Keys encoded per slot-lock acquisition in the snapshot.
const KEYS_PER_LOCK: usize = 64;

pub struct InternalService {
    pub migrations: Arc<Migrations>,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::PullChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::internal_server::Internal for InternalService {
    type PullStream = ChunkStream;
    type ReplicateStream = crate::replication::primary::ChunkStream;

    async fn replicate(
        &self,
        req: Request<tonic::Streaming<pb::ReplicaMessage>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        crate::replication::primary::serve(self.migrations.state_arc(), req.into_inner())
            .await
            .map(Response::new)
    }

    async fn publish(
        &self,
        req: Request<tonic::Streaming<pb::PubSubMessage>>,
    ) -> Result<Response<pb::PubSubAck>, Status> {
        crate::pubsub::fanout::receive(&self.migrations.state, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn pull(&self, req: Request<pb::PullRequest>) -> Result<Response<ChunkStream>, Status> {
        let req = req.into_inner();
        let m = &self.migrations;
        let id = parse_id("migration id", &req.migration_id)?;
        let target = parse_id("target id", &req.target_id)?;
        // The target may have applied the migration's snapshot before this node did.
        let deadline = Instant::now() + Duration::from_secs(5);
        let slots = loop {
            if let Some(applied) = m.state.cluster.applied() {
                let t = &applied.topology;
                if t.cluster_id.to_string() != req.cluster_id {
                    return Err(Status::failed_precondition(
                        "the puller belongs to another cluster",
                    ));
                }
                if let Some(mig) = t.migrations.iter().find(|x| x.id == id) {
                    if mig.source != m.me() || mig.target.to_string() != req.target_id {
                        return Err(Status::failed_precondition(
                            "this node is not the source of that migration",
                        ));
                    }
                    break SlotSet::from_ranges(&mig.slots);
                }
                if t.version >= req.min_version {
                    return Err(Status::not_found(format!("migration {id} is not running")));
                }
            }
            if Instant::now() > deadline {
                return Err(Status::unavailable(
                    "this node has not seen the migration yet",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (tx, rx) = mpsc::channel(4);
        let migrations = m.clone();
        let stream_slots = slots.clone();
        // Ordering: refused or recorded under the `outgoing` lock, atomically with
        // respect to `release_aborted`, which records the abort under the same lock.
        let mut outgoing = m.outgoing.lock();
        if m.aborted_out.lock().contains(&id) {
            return Err(Status::failed_precondition(format!(
                "the handoff of migration {id} was aborted; this node keeps its slots"
            )));
        }
        let dirty = Arc::new(DirtyKeys::new(slots.clone()));
        let tracked = dirty.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = serve(&migrations, id, &stream_slots, &tracked, &tx).await {
                tracing::warn!(migration = %id, "pull stream ended: {e}");
                fail(&migrations, id, &e);
            }
            bounded_hold(&migrations, id).await;
        });
        // A second pull of the same migration (the target restarted) replaces the first;
        // holds, if any, stay in place, and a hold that had begun can then be ended only
        // by the control plane (the earlier target process may have promised).
        let previous = outgoing.insert(
            id,
            Outgoing {
                dirty,
                target,
                task: task.abort_handle(),
                hold_since: None,
                only_control_plane: false,
            },
        );
        if let Some(p) = previous {
            p.task.abort();
            m.stop_tracking(&p.dirty);
            if let Some(o) = outgoing.get_mut(&id) {
                o.hold_since = p.hold_since;
                o.only_control_plane = p.only_control_plane || p.hold_since.is_some();
            }
        }
        drop(outgoing);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// The target's side of a bounded hold (see [`crate::handoff`]): the source of a
    /// migration whose hold timed out asks this node, its target, to abort.
    async fn abort_handoff(
        &self,
        req: Request<pb::AbortHandoffRequest>,
    ) -> Result<Response<pb::AbortHandoffReply>, Status> {
        let req = req.into_inner();
        let m = &self.migrations;
        let id = parse_id("migration id", &req.migration_id)?;
        let source = parse_id("source id", &req.source_id)?;
        let mine = m.state.cluster.applied().map(|a| a.topology.cluster_id);
        if mine.is_none_or(|c| c.to_string() != req.cluster_id) {
            return Err(Status::failed_precondition(
                "the asking node belongs to another cluster",
            ));
        }
        let outcome = match m.abort_handoff(id, source) {
            Ok(Answer::Aborted) => Outcome::Aborted,
            Ok(Answer::Promised) => Outcome::Promised,
            Ok(Answer::Unknown | Answer::Unreachable) => Outcome::Unknown,
            Err(e @ super::target::AbortRefused::NotTheSource) => {
                return Err(Status::failed_precondition(e.to_string()))
            }
        };
        Ok(Response::new(pb::AbortHandoffReply {
            outcome: outcome.into(),
        }))
    }
}

type Tx = mpsc::Sender<Result<pb::PullChunk, Status>>;

/// Waits until the gRPC stream has taken every chunk queued so far. What is then still
/// on its way to the target is bounded by the stream's own buffering (a chunk or two of
/// [`CHUNK_BYTES`]) and the target's HTTP/2 receive window, not by this queue.
async fn drained(tx: &Tx) -> Result<(), String> {
    let all = tx
        .reserve_many(tx.max_capacity())
        .await
        .map_err(|_| "the target went away")?;
    drop(all);
    Ok(())
}

/// A chunk being filled; sent when it reaches [`CHUNK_BYTES`].
struct Batch {
    chunk: pb::PullChunk,
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Self {
            chunk: pb::PullChunk::default(),
            bytes: 0,
        }
    }

    async fn push(&mut self, part: pb::KeyPart, tx: &Tx) -> Result<(), String> {
        self.bytes += codec::part_bytes(&part);
        self.chunk.parts.push(part);
        if self.bytes >= CHUNK_BYTES {
            self.flush(tx).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &Tx) -> Result<(), String> {
        let chunk = std::mem::take(&mut self.chunk);
        self.bytes = 0;
        tx.send(Ok(chunk))
            .await
            .map_err(|_| "the target went away".to_string())
    }
}

async fn serve(
    m: &Migrations,
    id: Uuid,
    slots: &SlotSet,
    dirty: &Arc<DirtyKeys>,
    tx: &Tx,
) -> Result<(), String> {
    let db = &m.state.db;
    // 1. Track. Every write that locks a slot after this sees the subscription; one
    // that locked it before finishes before the snapshot below lists the slot's keys.
    db.observers.subscribe(dirty.clone());
    let keys_total: u64 = slots.iter().map(|slot| db.lock(slot).len() as u64).sum();
    tx.send(Ok(pb::PullChunk {
        keys_total,
        ..Default::default()
    }))
    .await
    .map_err(|_| "the target went away")?;
    tracing::info!(migration = %id, slots = slots.len(), keys_total, "streaming slots");

    // 2. Snapshot.
    let mut batch = Batch::new();
    for slot in slots.iter() {
        let keys: Vec<Key> = db.lock(slot).keys().map(Key::from).collect();
        send_keys(m, slot, &keys, &mut batch, tx).await?;
    }
    batch.chunk.snapshot_done = true;
    batch.flush(tx).await?;

    // 3. Tail. Each round starts once the stream has taken everything queued, so the
    // handoff does not begin with a backlog the target has yet to apply (the hold, and
    // its timeout, would include it).
    let mut rounds = 0;
    loop {
        drained(tx).await?;
        if dirty.count() < HANDOFF_BELOW || rounds >= MAX_TAIL_ROUNDS {
            break; // They go out under the hold.
        }
        let written: Vec<(u16, Vec<Key>)> = slots.iter().map(|s| (s, dirty.take(s))).collect();
        for (slot, keys) in &written {
            send_keys(m, *slot, keys, &mut batch, tx).await?;
        }
        batch.flush(tx).await?;
        rounds += 1;
    }

    // 4. Handoff: from here on writes to these slots wait.
    let since = Instant::now();
    let mut last: Vec<(u16, Vec<Key>)> = Vec::new();
    for slot in slots.iter() {
        let mut t = db.lock(slot);
        t.set_held(true);
        last.push((slot, dirty.take(slot)));
        drop(t);
    }
    if let Some(o) = m.outgoing.lock().get_mut(&id) {
        o.hold_since.get_or_insert(since);
    }
    m.state.cluster.holds.lock().started += 1;
    for (slot, keys) in &last {
        send_keys(m, *slot, keys, &mut batch, tx).await?;
    }
    batch.chunk.handoff_done = true;
    batch.flush(tx).await?;
    tracing::debug!(migration = %id, "handoff sent; holding writes until the control plane decides");
    Ok(())
}

/// Sends the current state of `keys` (or their deletion).
async fn send_keys(
    m: &Migrations,
    slot: u16,
    keys: &[Key],
    batch: &mut Batch,
    tx: &Tx,
) -> Result<(), String> {
    for group in keys.chunks(KEYS_PER_LOCK) {
        let mut parts = Vec::with_capacity(group.len());
        let mut big: Vec<Key> = Vec::new();
        {
            let now = now_ms();
            let mut t = m.state.db.lock(slot);
            for key in group {
                let ttl = t.expire_at(key);
                match t.get(key, now) {
                    None => parts.push(codec::deleted(key)),
                    Some(v) if codec::is_big(v) => big.push(key.clone()),
                    Some(v) => parts.push(codec::encode_piece(key, v, ttl, 0)),
                }
            }
        }
        for part in parts {
            batch.push(part, tx).await?;
        }
        for key in big {
            send_big(m, slot, &key, batch, tx).await?;
        }
    }
    Ok(())
}

/// Sends a big value piece by piece, taking the slot lock once per piece so other
/// clients of the slot wait at most one piece.
async fn send_big(
    m: &Migrations,
    slot: u16,
    key: &[u8],
    batch: &mut Batch,
    tx: &Tx,
) -> Result<(), String> {
    let mut index = 0;
    loop {
        let part = {
            let now = now_ms();
            let mut t = m.state.db.lock(slot);
            let ttl = t.expire_at(key);
            match t.get(key, now) {
                None => Some(codec::deleted(key)).filter(|_| index == 0),
                // A write between pieces marks the key dirty: it is sent again whole.
                Some(v) if index < codec::piece_count(v) => {
                    Some(codec::encode_piece(key, v, ttl, index))
                }
                Some(_) => None,
            }
        };
        let Some(part) = part else { return Ok(()) };
        batch.push(part, tx).await?;
        index += 1;
        tokio::task::yield_now().await;
    }
}

/// After a failure: the control plane is asked to abort; before the hold, tracking just
/// stops; during the hold, writes stay held ([`bounded_hold`] decides when they may go).
fn fail(m: &Migrations, id: Uuid, error: &str) {
    m.report(
        pb::MigrationReport {
            id: id.to_string(),
            kind: pb::migration_report::Kind::Failed.into(),
            error: format!("source: {error}"),
            ..Default::default()
        },
        true,
    );
    let dirty = m
        .outgoing
        .lock()
        .get(&id)
        .filter(|o| o.hold_since.is_none())
        .map(|o| o.dirty.clone());
    if let Some(dirty) = dirty {
        m.end_outgoing(&dirty);
    }
}

/// While holding: once [`HOLD_TIMEOUT`] has passed since the hold began, ask the target
/// to abort, and release the holds if it agrees. Returns at once if there is no hold.
/// Otherwise it returns only after the target agreed; the task running it is aborted
/// when the control plane's decision is applied (`Migrations::after_apply`).
async fn bounded_hold(m: &Arc<Migrations>, id: Uuid) {
    let Some((since, target, only_control_plane)) = m
        .outgoing
        .lock()
        .get(&id)
        .and_then(|o| Some((o.hold_since?, o.target, o.only_control_plane)))
    else {
        return;
    };
    if only_control_plane {
        tracing::info!(migration = %id, "the target restarted during the handoff: holding writes until the control plane decides");
        return;
    }
    let Some(applied) = m.state.cluster.applied() else {
        return;
    };
    let cluster_id = applied.topology.cluster_id;
    let Some(addr) = applied
        .topology
        .nodes
        .get(&target)
        .map(|n| n.internal_addr.clone())
    else {
        tracing::warn!(migration = %id, %target, "the target is not in the topology: holding writes until the control plane decides");
        return;
    };
    drop(applied);
    let client = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => InternalClient::new(
            e.connect_timeout(ASK_TIMEOUT)
                .timeout(ASK_TIMEOUT)
                .connect_lazy(),
        ),
        Err(e) => {
            tracing::warn!(migration = %id, "bad internal address {addr} of the target: {e}");
            return;
        }
    };
    let request = pb::AbortHandoffRequest {
        cluster_id: cluster_id.to_string(),
        migration_id: id.to_string(),
        source_id: m.me().to_string(),
    };
    let deadline = tokio::time::Instant::from_std(since) + HOLD_TIMEOUT;
    handoff::ask_until_aborted(deadline, REASK, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            let answer = match client.abort_handoff(request).await {
                Ok(reply) => match reply.into_inner().outcome() {
                    Outcome::Aborted => Answer::Aborted,
                    Outcome::Promised => Answer::Promised,
                    Outcome::Unknown | Outcome::Unspecified => Answer::Unknown,
                },
                Err(status) => {
                    tracing::debug!(migration = %id, "asking the target to abort the handoff failed: {status}");
                    Answer::Unreachable
                }
            };
            if answer != Answer::Aborted {
                tracing::warn!(migration = %id, ?answer, "the hold timed out and the target did not agree to abort: holding writes until the control plane decides");
            }
            answer
        }
    })
    .await;
    m.release_aborted(id);
}

impl Migrations {
    /// The target agreed to abort migration `id`'s handoff: release the holds (held
    /// writes run here, this node still owns the slots), stop tracking, refuse further
    /// pulls of it, and report `failed` so that the control plane drops the record.
    fn release_aborted(&self, id: Uuid) {
        let o = {
            let mut outgoing = self.outgoing.lock();
            let Some(o) = outgoing.remove(&id) else {
                return; // The control plane's decision was applied first.
            };
            self.aborted_out.lock().insert(id);
            o
        };
        self.end_outgoing(&o.dirty);
        let held = o.hold_since.map(|s| s.elapsed()).unwrap_or_default();
        {
            let mut stats = self.state.cluster.holds.lock();
            stats.record(held);
            stats.aborted += 1;
        }
        tracing::warn!(
            migration = %id, held_ms = held.as_secs_f64() * 1000.0,
            "no decision from the control plane in time; the target agreed to abort the handoff: writes resume here"
        );
        self.report(
            pb::MigrationReport {
                id: id.to_string(),
                kind: pb::migration_report::Kind::Failed.into(),
                error: "source: no commit within the hold timeout; the target agreed to abort"
                    .into(),
                ..Default::default()
            },
            true,
        );
    }
}
