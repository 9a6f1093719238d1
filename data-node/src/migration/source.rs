//! The source side of a migration: the `Internal.Pull` service.
//!
//! 1. Track: every write to the slots marks its keys dirty (from now on).
//! 2. Snapshot: send every key of the slots, a batch of keys per lock.
//! 3. Tail: send the keys dirtied meanwhile, until few remain.
//! 4. Handoff: hold writes to the slots (a write waits instead of running), send the last
//!    dirty keys and `handoff_done`. The hold ends when this node applies a snapshot in
//!    which the migration is gone: committed (held writes get `MOVED`) or aborted (they
//!    run here). If no outcome arrives in [`HOLD_TIMEOUT`], the source asks for an abort.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::SlotSet;
use ember_proto::pb;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::codec::{self, PART_BYTES};
use super::{Migrations, Outgoing};
use crate::db::{now_ms, Key};

/// How long the source waits for the control plane's decision while holding writes
/// before asking it to abort.
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(5);
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

    async fn pull(&self, req: Request<pb::PullRequest>) -> Result<Response<ChunkStream>, Status> {
        let req = req.into_inner();
        let m = &self.migrations;
        let id: Uuid = req
            .migration_id
            .parse()
            .map_err(|_| Status::invalid_argument("bad migration id"))?;
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
        let task = tokio::spawn(async move {
            let result = serve(&migrations, id, &stream_slots, &tx).await;
            if let Err(e) = result {
                tracing::warn!(migration = %id, "pull stream ended: {e}");
                fail_or_wait(&migrations, id, &e).await;
            } else {
                wait_for_outcome(&migrations, id).await;
            }
        });
        // A second pull of the same migration (the target restarted) replaces the first;
        // holds, if any, stay in place.
        let previous = m.outgoing.lock().insert(
            id,
            Outgoing {
                slots,
                task: task.abort_handle(),
                hold_since: None,
            },
        );
        if let Some(p) = previous {
            p.task.abort();
            let mut out = m.outgoing.lock();
            if let Some(o) = out.get_mut(&id) {
                o.hold_since = p.hold_since;
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Tx = mpsc::Sender<Result<pb::PullChunk, Status>>;

/// A chunk being filled; sent when it reaches [`PART_BYTES`].
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
        if self.bytes >= PART_BYTES {
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

async fn serve(m: &Migrations, id: Uuid, slots: &SlotSet, tx: &Tx) -> Result<(), String> {
    let db = &m.state.db;
    // 1. Track.
    let mut keys_total = 0;
    for slot in slots.iter() {
        let mut t = db.lock(slot);
        t.start_tracking();
        keys_total += t.len() as u64;
    }
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

    // 3. Tail.
    let mut rounds = 0;
    loop {
        let dirty: Vec<(u16, Vec<Key>)> =
            slots.iter().map(|s| (s, db.lock(s).take_dirty())).collect();
        let count: usize = dirty.iter().map(|(_, k)| k.len()).sum();
        if count < HANDOFF_BELOW || rounds >= MAX_TAIL_ROUNDS {
            // Put them back: they go out under the hold.
            for (slot, keys) in &dirty {
                let mut t = db.lock(*slot);
                keys.iter().for_each(|k| t.mark_dirty(k));
            }
            break;
        }
        for (slot, keys) in &dirty {
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
        last.push((slot, t.take_dirty()));
    }
    if let Some(o) = m.outgoing.lock().get_mut(&id) {
        o.hold_since.get_or_insert(since);
    }
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

/// After a failure: before the hold, tracking just stops and the control plane is asked
/// to abort; during the hold, writes stay held until the control plane decides (the
/// target may have reported ready already).
async fn fail_or_wait(m: &Migrations, id: Uuid, error: &str) {
    m.report(
        pb::MigrationReport {
            id: id.to_string(),
            kind: pb::migration_report::Kind::Failed.into(),
            error: format!("source: {error}"),
            ..Default::default()
        },
        true,
    );
    let holding = m
        .outgoing
        .lock()
        .get(&id)
        .is_some_and(|o| o.hold_since.is_some());
    if !holding {
        let slots = m.outgoing.lock().get(&id).map(|o| o.slots.clone());
        if let Some(slots) = slots {
            m.end_outgoing(&slots);
        }
    }
}

/// While holding, ask for an abort if the control plane does not decide in time.
async fn wait_for_outcome(m: &Migrations, id: Uuid) {
    tokio::time::sleep(HOLD_TIMEOUT).await;
    if m.outgoing.lock().contains_key(&id) {
        tracing::warn!(migration = %id, "no decision {HOLD_TIMEOUT:?} into the handoff: asking to abort");
        fail_or_wait(m, id, "no commit in time").await;
    }
}
