//! The target side of a migration: pull the slots from the source into staging tables,
//! report progress, and report `ready` once the source says the handoff is complete.
//! Any error reports `failed`, and the control plane aborts the migration.
//!
//! The target keeps the handoff's decision ([`handoff::Cell`]): the control plane asks
//! for its promise ([`Migrations::promise`], answered `promised`) before it commits, and
//! the source, whose hold timed out, asks it to abort ([`Migrations::abort_handoff`]). A
//! target that agreed to abort discards its staging, reports `failed`, and never pulls
//! that migration again (its record stays in `incoming` while the migration is in the
//! topology).
//!
//! With replicas, every staged piece also goes into the replication log
//! ([`Effect::Staged`]): the replicas stage it too, and this node reports `ready` only
//! once they acknowledged everything (bounded by [`REPLICAS_WAIT`]), so a replica
//! promoted right after the commit already holds the imported keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::{key_slot, NodeId, SlotSet};
use ember_proto::pb::{self, internal_client::InternalClient, migration_report::Kind};
use uuid::Uuid;

use super::codec;
use super::Migrations;
use crate::db::{now_ms, Consumer, Effect};
use crate::handoff::{self, Answer};

/// Largest message accepted from the source (parts are far smaller).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How long the handoff waits for this node's replicas to acknowledge the import (the
/// source holds writes meanwhile; past this the commit goes on, and a replica gets the
/// keys from the stream after it).
const REPLICAS_WAIT: Duration = Duration::from_millis(300);
/// HTTP/2 receive window of the pull stream (bytes the source may send ahead).
const RECEIVE_WINDOW: u32 = 64 * 1024;

pub async fn pull(
    m: Arc<Migrations>,
    id: Uuid,
    slots: SlotSet,
    decision: Arc<handoff::Cell>,
    source_addr: String,
    cluster_id: Uuid,
    min_version: u64,
) {
    let started = Instant::now();
    let result = run(
        &m,
        id,
        &slots,
        &decision,
        &source_addr,
        cluster_id,
        min_version,
    )
    .await
    .and_then(|done| {
        decision
            .ready()
            .map(|()| done)
            .map_err(|_| anyhow::anyhow!("the handoff was aborted at the source's request"))
    });
    match result {
        Ok((keys, bytes, total)) => {
            tracing::info!(migration = %id, keys, bytes, took = ?started.elapsed(), "caught up; ready to commit");
            // Ordering: checked under the reports lock, and an abort reports `failed`
            // (under it) only after the cell says aborted: a `ready` never replaces the
            // `failed` of an abort.
            let mut reports = m.reports.lock();
            if decision.phase() != handoff::Phase::Aborted {
                reports.insert(
                    id,
                    report(id, Kind::Ready, keys, bytes, total, String::new()),
                );
                drop(reports);
                m.report_now.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(migration = %id, "pulling from {source_addr} failed: {e:#}");
            m.report(
                report(id, Kind::Failed, 0, 0, 0, format!("target: {e:#}")),
                true,
            );
        }
    }
}

fn report(
    id: Uuid,
    kind: Kind,
    keys: u64,
    bytes: u64,
    keys_total: u64,
    error: String,
) -> pb::MigrationReport {
    pb::MigrationReport {
        id: id.to_string(),
        kind: kind.into(),
        keys,
        bytes,
        keys_total,
        error,
    }
}

async fn run(
    m: &Migrations,
    id: Uuid,
    slots: &SlotSet,
    decision: &handoff::Cell,
    source_addr: &str,
    cluster_id: Uuid,
    min_version: u64,
) -> anyhow::Result<(u64, u64, u64)> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{source_addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(4))
        // A small receive window keeps the source from running ahead of what this node
        // has applied: when the source begins the handoff, little is still in flight, so
        // the hold does not include applying a backlog (hyper's default, 2 MiB, held a
        // whole small migration). Applying, not the network, is what limits the pace.
        .initial_stream_window_size(Some(RECEIVE_WINDOW))
        .initial_connection_window_size(Some(2 * RECEIVE_WINDOW));
    let channel = endpoint.connect().await?;
    let mut client = InternalClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let request = pb::PullRequest {
        cluster_id: cluster_id.to_string(),
        migration_id: id.to_string(),
        target_id: m.me().to_string(),
        min_version,
    };
    let mut stream = client.pull(request).await?.into_inner();
    let (mut keys, mut bytes, mut total) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    while let Some(chunk) = stream.message().await? {
        total = total.max(chunk.keys_total);
        let now = now_ms();
        for part in chunk.parts {
            let slot = key_slot(&part.key);
            anyhow::ensure!(
                slots.contains(slot),
                "the source sent a key of slot {slot}, outside the migration"
            );
            anyhow::ensure!(m.importing(id, slot), "the migration ended while pulling");
            if part.first {
                keys += 1;
            }
            bytes += codec::part_bytes(&part) as u64;
            let log = &m.state.repl;
            let replicated = log
                .is_attached()
                .then(|| bytes::Bytes::from(prost::Message::encode_to_vec(&part)));
            m.with_staging(slot, decision, |t| codec::apply(t, part, now))??;
            if let Some(part) = replicated {
                log.observe(slot, &Arc::from([Effect::Staged(part)]));
            }
        }
        if let Err(e) = check_room(&m.state, bytes) {
            // Say why while the stream is still open: otherwise the source's "the target
            // went away" may reach the control plane first and become the reason given.
            m.report(
                report(
                    id,
                    Kind::Failed,
                    keys,
                    bytes,
                    total,
                    format!("target: {e:#}"),
                ),
                true,
            );
            let until = Instant::now() + Duration::from_secs(2);
            let any_slot = slots.iter().next().unwrap_or_default();
            while m.importing(id, any_slot) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            return Err(e);
        }
        if chunk.handoff_done {
            replicas_caught_up(m, id).await;
            return Ok((keys, bytes, total));
        }
        if last_report.elapsed() > Duration::from_millis(250) {
            last_report = Instant::now();
            m.report(
                report(id, Kind::Progress, keys, bytes, total, String::new()),
                false,
            );
        }
    }
    anyhow::bail!("the source closed the stream before the handoff")
}

/// Whether this node has room for what it imported so far (`staged` bytes): a
/// migration never pushes its target over `maxmemory` by evicting to make room for the
/// keys it moves (or, without an `allkeys-*` policy, by leaving writes to fail with OOM).
/// With `allkeys-*` the target's other keys make room as usual (a cache), unless the
/// imported keys alone exceed the limit. An error aborts the migration, with every key
/// still at the source.
fn check_room(state: &crate::state::ServerState, staged: u64) -> anyhow::Result<()> {
    let max = state.config.memory.maxmemory();
    if max == 0 {
        return Ok(());
    }
    let policy = state.config.memory.policy();
    let used = state.used_memory() as u64;
    let over = match policy.evicts_any_key() {
        true => staged > max,
        false => used > max,
    };
    anyhow::ensure!(
        !over,
        "the target would exceed its maxmemory ({used} bytes used with {staged} bytes imported, maxmemory {max}, maxmemory-policy {}): raise its maxmemory (CONFIG SET maxmemory) or move fewer slots",
        policy.name()
    );
    Ok(())
}

/// Waits (at most [`REPLICAS_WAIT`]) until every replica streaming from this node has
/// acknowledged the log's end: the whole import.
async fn replicas_caught_up(m: &Migrations, id: Uuid) {
    let state = &m.state;
    if !state.repl.is_attached() {
        return;
    }
    let end = state.repl.end();
    state.repl.wake();
    let replicas = state
        .followers
        .list()
        .iter()
        .filter(|f| f.online.load(std::sync::atomic::Ordering::Acquire))
        .count();
    let acked = state
        .followers
        .wait(replicas, end, Some(REPLICAS_WAIT))
        .await;
    if acked < replicas {
        tracing::warn!(migration = %id, acked, replicas, "not every replica acknowledged the import in time; committing anyway (it gets the keys from the stream after the commit)");
    }
}

impl Migrations {
    /// The control plane asks for this node's promise to take the slots of migration
    /// `id` (it reported `ready`). Returns whether the reports changed and should go out
    /// now: `promised` (Ready -> Promised, or already promised) or `failed` (this node
    /// agreed to abort already). A request for a migration not ready yet, or unknown, is
    /// ignored: the control plane asks again on the next `ready`.
    pub fn promise(&self, id: &str) -> bool {
        let Ok(id) = id.parse::<Uuid>() else {
            return false;
        };
        let Some(decision) = self.incoming.lock().get(&id).map(|i| i.decision.clone()) else {
            tracing::debug!(migration = %id, "promise requested for a migration this node does not import");
            return false;
        };
        match decision.promise() {
            Ok(()) => {
                let mut reports = self.reports.lock();
                let r = reports.entry(id).or_insert_with(|| pb::MigrationReport {
                    id: id.to_string(),
                    ..Default::default()
                });
                if r.kind() != Kind::Promised {
                    tracing::debug!(migration = %id, "promised the handoff to the control plane");
                }
                r.set_kind(Kind::Promised);
                r.error.clear();
                true
            }
            Err(handoff::PromiseError::Aborted) => {
                self.reports.lock().insert(id, aborted_report(id));
                true
            }
            Err(handoff::PromiseError::NotReady) => false,
        }
    }

    /// The source of migration `id`, whose handoff hold timed out, asks this node (the
    /// target) to abort. Agreed unless this node promised: then the staging is discarded
    /// (never to be installed: a commit cannot come, since the control plane commits only
    /// after a promise), the pull stops and `failed` is reported.
    pub fn abort_handoff(&self, id: Uuid, source: NodeId) -> Result<Answer, AbortRefused> {
        let (slots, decision, task) = {
            let incoming = self.incoming.lock();
            let Some(i) = incoming.get(&id) else {
                return Ok(Answer::Unknown);
            };
            if i.source != source {
                return Err(AbortRefused::NotTheSource);
            }
            (i.slots.clone(), i.decision.clone(), i.task.clone())
        };
        let dropped = {
            // Ordering: staging lock, then the cell's (as in `with_staging`).
            let mut staging = self.staging.lock();
            match decision.abort() {
                Err(handoff::AlreadyPromised) => return Ok(Answer::Promised),
                Ok(false) => return Ok(Answer::Aborted),
                Ok(true) => slots
                    .iter()
                    .filter_map(|s| staging.remove(&s))
                    .collect::<Vec<_>>(),
            }
        };
        task.abort();
        tracing::warn!(
            migration = %id, slots = slots.len(), staged_slots = dropped.len(),
            "agreed to abort the handoff at the source's request (its hold timed out): import discarded"
        );
        super::drop_in_background(dropped);
        self.report(aborted_report(id), true);
        Ok(Answer::Aborted)
    }
}

/// The report of a target that agreed to abort the handoff.
fn aborted_report(id: Uuid) -> pb::MigrationReport {
    report(
        id,
        Kind::Failed,
        0,
        0,
        0,
        "target: agreed to abort the handoff at the source's request (no commit in time)".into(),
    )
}

/// Why an abort request was refused outright (the source keeps holding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbortRefused {
    #[error("the asking node is not the source of that migration")]
    NotTheSource,
}
