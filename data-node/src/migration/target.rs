//! The target side of a migration: pull the slots from the source into staging tables,
//! report progress, and report `ready` once the source says the handoff is complete.
//! Any error reports `failed`, and the control plane aborts the migration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::{key_slot, SlotSet};
use ember_proto::pb::{self, internal_client::InternalClient, migration_report::Kind};
use uuid::Uuid;

use super::codec;
use super::Migrations;
use crate::db::now_ms;

/// Largest message accepted from the source (parts are far smaller).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

pub async fn pull(
    m: Arc<Migrations>,
    id: Uuid,
    slots: SlotSet,
    source_addr: String,
    cluster_id: Uuid,
    min_version: u64,
) {
    let started = Instant::now();
    let result = run(&m, id, &slots, &source_addr, cluster_id, min_version).await;
    match result {
        Ok((keys, bytes, total)) => {
            tracing::info!(migration = %id, keys, bytes, took = ?started.elapsed(), "caught up; ready to commit");
            m.report(
                report(id, Kind::Ready, keys, bytes, total, String::new()),
                true,
            );
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
    source_addr: &str,
    cluster_id: Uuid,
    min_version: u64,
) -> anyhow::Result<(u64, u64, u64)> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{source_addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(4));
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
            m.with_staging(slot, |t| codec::apply(t, part, now))?;
        }
        if chunk.handoff_done {
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
