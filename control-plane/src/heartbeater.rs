//! Liveness: turns observed heartbeats into `SetHealth` ops.
//!
//! A member silent for longer than the node timeout (no hello or heartbeat) is marked
//! failed, in a new topology version; a failed member that is heard from again is marked
//! ok. Migrations whose source or target failed, or whose target reported no progress
//! for the migration timeout, are aborted. Members never seen since this process started are timed from its start, which is
//! the grace period that lets nodes reconnect after a control-plane restart.
//! Pending registrations silent for [`PENDING_EXPIRY_FACTOR`] node timeouts are dropped,
//! and after a persistence failure each tick retries a save until one succeeds.

use std::sync::Arc;
use std::time::Duration;

use ember_core::NodeId;

use crate::authority::Authority;
use crate::state::Op;

/// A pending registration silent for this many node timeouts expires.
pub const PENDING_EXPIRY_FACTOR: u32 = 10;

/// How often liveness is evaluated: a tenth of the timeout, at most 100 ms.
pub fn tick(node_timeout: Duration) -> Duration {
    (node_timeout / 10).min(Duration::from_millis(100))
}

pub async fn run(authority: Arc<Authority>, node_timeout: Duration, migration_timeout: Duration) {
    let mut interval = tokio::time::interval(tick(node_timeout));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = tokio::time::Instant::now();
    let mut grace_until = last_tick;
    loop {
        interval.tick().await;
        // A tick far later than due means this process was paused (SIGSTOP, a stalled VM):
        // the nodes' heartbeats queued meanwhile have not been read yet, so judge nobody
        // failed until the sessions have caught up.
        let now = tokio::time::Instant::now();
        if now - last_tick > (tick(node_timeout) * 4).max(node_timeout / 2) {
            tracing::warn!(gap = ?(now - last_tick), "the heartbeater was paused; not judging failures for a moment");
            grace_until = now + node_timeout / 2;
        }
        last_tick = now;
        let judging = now >= grace_until;
        let state = authority.current().state;
        let observed = authority.observed();
        let changes: Vec<(NodeId, bool)> = state
            .topology
            .nodes
            .values()
            .filter_map(|node| {
                let last_seen = observed
                    .get(&node.id)
                    .map_or(authority.started(), |o| o.last_seen);
                let alive = last_seen.elapsed() <= node_timeout;
                // After a pause only recoveries are recorded.
                (alive == node.failed && (alive || judging)).then_some((node.id, !alive))
            })
            .collect();
        if !changes.is_empty() {
            if let Err(e) = authority.submit(Op::SetHealth { changes }).await {
                tracing::warn!("could not record health changes: {e}");
            }
        }
        // Anyone can register; a registration nobody has heard from in a long while goes.
        let expired: Vec<NodeId> = state
            .pending
            .keys()
            .filter(|id| {
                observed
                    .get(id)
                    .map_or(authority.started(), |o| o.last_seen)
                    .elapsed()
                    > node_timeout * PENDING_EXPIRY_FACTOR
            })
            .copied()
            .collect();
        if !expired.is_empty() {
            if let Err(e) = authority.submit(Op::ExpirePending { ids: expired }).await {
                tracing::debug!("could not expire pending registrations: {e}");
            }
        }
        authority.retry_persistence().await;
        // A migration cannot finish without both nodes, nor if its target went quiet.
        let state = authority.current().state;
        let progress = authority.progress();
        for m in &state.topology.migrations {
            let failed = [m.source, m.target]
                .into_iter()
                .find(|id| state.topology.nodes.get(id).is_none_or(|n| n.failed));
            let stalled = progress
                .get(&m.id)
                .is_some_and(|p| p.last_report.elapsed() > migration_timeout);
            let reason = match (failed, stalled) {
                (Some(id), _) => format!("node {id} failed"),
                (None, true) => format!("no progress for {migration_timeout:?}"),
                _ => continue,
            };
            let op = Op::AbortMigration { id: m.id, reason };
            if let Err(e) = authority.submit(op).await {
                tracing::debug!(migration = %m.id, "abort raced with another outcome: {e}");
            }
        }
    }
}
