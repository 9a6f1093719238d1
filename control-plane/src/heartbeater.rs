//! Liveness: turns observed heartbeats into `SetHealth` ops.
//!
//! A member silent for longer than the node timeout (no hello or heartbeat) is marked
//! failed, in a new topology version; a failed member that is heard from again is marked
//! ok. Migrations whose source or target failed, or whose target reported no progress
//! for the migration timeout, are aborted. Members never seen since this process started are timed from its start, which is
//! the grace period that lets nodes reconnect after a control-plane restart.
//! Pending registrations silent for [`PENDING_EXPIRY_FACTOR`] node timeouts are dropped,
//! and after a persistence failure each tick retries a save until one succeeds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_core::NodeId;

use crate::authority::{Ask, Authority, Observed};
use crate::lease;
use crate::state::Op;

/// Default `--replica-validity-factor`: a replica whose link to its primary has been
/// down longer than this many node timeouts is too stale to be promoted (as Redis's
/// `cluster-replica-validity-factor`).
pub const REPLICA_VALIDITY_FACTOR: u32 = 10;

/// Which replicas may be promoted.
#[derive(Debug, Clone, Copy)]
pub struct Promotion {
    pub node_timeout: Duration,
    /// Longest a replica's link may have been down (`None`: no bound, factor 0).
    pub validity: Option<Duration>,
}

impl Promotion {
    pub fn new(node_timeout: Duration, validity_factor: u32) -> Promotion {
        Promotion {
            node_timeout,
            validity: (validity_factor > 0).then(|| node_timeout * validity_factor),
        }
    }

    /// Why a replica could not be promoted now, as its last heartbeat tells (`None`: it
    /// could, once its primary's leases ran out).
    pub fn refusal(&self, o: &Observed, r: &ember_proto::pb::ReplicationStatus) -> Option<String> {
        let down = Duration::from_millis(r.link_down_millis);
        if o.last_seen.elapsed() > self.node_timeout {
            return Some("it is silent".into());
        }
        if !r.synced {
            return Some("it has not completed a sync since it started".into());
        }
        if r.syncing {
            return Some("its full sync is running".into());
        }
        self.validity.filter(|v| !r.link_up && down > *v).map(|v| {
            format!(
                "its link to the primary has been down {:.1} s, longer than {:.1} s (--replica-validity-factor)",
                down.as_secs_f64(),
                v.as_secs_f64()
            )
        })
    }
}

/// Promotes a replica of every failed primary that owns slots, unless more than half
/// of the primaries failed (safe mode: that looks like the control plane's own network
/// problem). Per failed primary, in order (ARCHITECTURE "Write leases", "Failover"):
/// 1. fence it (no more grants) and wait until this control plane's promise ran out;
/// 2. wait until enough of its replicas stopped granting it leases that no majority of
///    them can still keep it writing: from then on it acknowledges no write;
/// 3. collect every eligible replica's offset (a heartbeat asked for now, so it is
///    final) and promote the highest. Eligible: healthy, a complete dataset synced by
///    this process, not granting, and a link to the primary lost within the validity
///    bound (or still open, to a primary that went silent).
async fn fail_over(authority: &Authority, node_timeout: Duration) {
    let promotion = authority.promotion;
    let state = authority.current().state;
    let t = &state.topology;
    let owners: Vec<&ember_core::NodeInfo> = t
        .nodes
        .values()
        .filter(|n| n.is_primary() && t.slots.count_of(&n.id) > 0)
        .collect();
    let failed: Vec<&&ember_core::NodeInfo> = owners.iter().filter(|n| n.failed).collect();
    if failed.is_empty() {
        return;
    }
    if failed.len() * 2 > owners.len() {
        tracing::warn!(
            failed = failed.len(),
            primaries = owners.len(),
            "safe mode: more than half of the primaries are failed; no automatic failover (a network problem on the control plane's side looks like this)"
        );
        return;
    }
    let promise = lease::promise(authority.leases.length);
    let eligible = |o: &Observed, r: &ember_proto::pb::ReplicationStatus| {
        promotion.refusal(o, r).is_none() && not_granting(o, r, promise)
    };
    for primary in failed {
        if let Err(why) = lease_released(authority, t, primary.id) {
            tracing::debug!(primary = %primary.label(), "{why}");
            continue;
        }
        let observed = authority.observed();
        let replicas: Vec<NodeId> = t.replicas_of(&primary.id).map(|n| n.id).collect();
        let candidates: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|id| {
                observed
                    .get(id)
                    .and_then(|o| Some(eligible(o, o.repl.as_ref()?)))
                    .unwrap_or(false)
            })
            .collect();
        if candidates.is_empty() {
            tracing::debug!(primary = %primary.label(), "failed primary has no eligible replica (yet)");
            continue;
        }
        let wait = (node_timeout / 2).min(Duration::from_secs(1));
        let (asked, observed) = fresh_reports(authority, &candidates, wait).await;
        let reported = |o: &Observed| o.last_seen > asked;
        let best = freshest_replica(t, &observed, primary.id, |o, r| {
            reported(o) && eligible(o, r)
        });
        let Some((offset, promote)) = best else {
            tracing::debug!(primary = %primary.label(), "no eligible replica reported its final offset in time");
            continue;
        };
        tracing::info!(primary = %primary.label(), %promote, offset, collected_ms = asked.elapsed().as_millis() as u64, "failing over");
        let op = Op::Failover {
            primary: primary.id,
            promote,
        };
        match authority.submit(op).await {
            // A replica now: it is granted nothing as one, and may be promoted again later.
            Ok(_) => authority.leases.unfence(primary.id),
            Err(e) => tracing::warn!(primary = %primary.label(), "failover not committed: {e}"),
        }
    }
}

/// Asks `nodes` for a heartbeat now and waits (at most `wait`) until each has sent one.
/// Returns when it asked, and what is observed then (a report is fresh if its
/// `last_seen` is later).
pub async fn fresh_reports(
    authority: &Authority,
    nodes: &[NodeId],
    wait: Duration,
) -> (Instant, HashMap<NodeId, Observed>) {
    let asked = Instant::now();
    for &n in nodes {
        authority.ask(n, Ask::Report);
    }
    let deadline = asked + wait;
    loop {
        let observed = authority.observed();
        let all = nodes
            .iter()
            .all(|n| observed.get(n).is_some_and(|o| o.last_seen > asked));
        if all || Instant::now() >= deadline {
            return (asked, observed);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether a replica, as its last heartbeat tells (aged on this clock at the slowest
/// rate allowed), has granted its primary no lease for a whole `promise`.
fn not_granting(o: &Observed, r: &ember_proto::pb::ReplicationStatus, promise: Duration) -> bool {
    Duration::from_millis(r.lease_granted_millis_ago)
        + lease::elapsed_elsewhere(o.last_seen.elapsed())
        >= promise
}

/// Fences `primary` (this control plane grants it no more leases), then says whether
/// every lease it could still hold has run out: this control plane's, and those of
/// enough of its replicas that no majority of them can keep it writing. `Err` says
/// what it still waits for.
pub fn lease_released(
    authority: &Authority,
    t: &ember_core::Topology,
    primary: NodeId,
) -> Result<(), String> {
    let left = authority.leases.fence(primary);
    if !left.is_zero() {
        return Err(format!(
            "waiting {left:?} for the control plane's lease to run out"
        ));
    }
    let promise = lease::promise(authority.leases.length);
    let observed = authority.observed();
    let replicas: Vec<NodeId> = t.replicas_of(&primary).map(|n| n.id).collect();
    let stopped = replicas
        .iter()
        .filter(|id| {
            observed
                .get(id)
                .and_then(|o| Some(not_granting(o, o.repl.as_ref()?, promise)))
                .unwrap_or(false)
        })
        .count();
    match stopped >= replicas.len().div_ceil(2) {
        true => Ok(()),
        false => Err(format!(
            "{stopped} of its {} replica(s) stopped granting it leases; a majority of them may still keep it writing",
            replicas.len()
        )),
    }
}

/// The healthy replica of `primary` with the highest reported offset among those whose
/// last report passes `eligible` (ties: the lowest id), and that offset.
fn freshest_replica(
    t: &ember_core::Topology,
    observed: &HashMap<NodeId, Observed>,
    primary: NodeId,
    eligible: impl Fn(&Observed, &ember_proto::pb::ReplicationStatus) -> bool,
) -> Option<(u64, NodeId)> {
    t.replicas_of(&primary)
        .filter(|n| !n.failed)
        .filter_map(|n| {
            let o = observed.get(&n.id)?;
            let r = o.repl.as_ref()?;
            eligible(o, r).then_some((r.offset, n.id))
        })
        .max_by_key(|(offset, id)| (*offset, std::cmp::Reverse(*id)))
}

/// The restart-empty rule: a primary whose process restarted (its hello says it has
/// applied no topology) while it has a replica with a complete dataset must not become
/// the source of that replica (a full sync from it would wipe the shard's only copy, or
/// replace it with older data). Its freshest such replica takes over before the
/// restarted node is sent any topology; the node then comes back as a replica. Unless
/// the node loaded data from its append-only file (`loaded`: its replication id and
/// offset) at least as fresh as that replica's, in the same history: then it keeps the
/// shard, and its replica resumes from it.
pub async fn hand_over_if_restarted_empty(
    authority: &Authority,
    id: NodeId,
    recent: Duration,
    loaded: Option<(String, u64)>,
) {
    let state = authority.current().state;
    let t = &state.topology;
    if t.slots.count_of(&id) == 0 || t.nodes.get(&id).is_none_or(|n| !n.is_primary()) {
        return;
    }
    // What the replicas said last may be a heartbeat old (a link that came up since):
    // ask them now.
    let replicas: Vec<NodeId> = t.replicas_of(&id).map(|n| n.id).collect();
    let (_, observed) =
        fresh_reports(authority, &replicas, recent.min(Duration::from_secs(1))).await;
    let best = freshest_replica(t, &observed, id, |o, r| {
        o.last_seen.elapsed() <= recent && r.synced && !r.syncing
    });
    let Some((offset, promote)) = best else {
        return;
    };
    let replica_history = observed
        .get(&promote)
        .and_then(|o| o.repl.as_ref())
        .map(|r| r.replid.as_str());
    if let Some((replid, at)) = &loaded {
        if replica_history == Some(replid.as_str()) && *at >= offset {
            tracing::info!(node = %id, offset = at, replica_offset = offset, "a primary restarted with data at least as fresh as its replica's: it keeps the shard");
            return;
        }
    }
    tracing::warn!(node = %id, %promote, offset, ?loaded, "a primary restarted without its data (or with older data): its replica takes over the shard, and it rejoins as a replica");
    if let Err(e) = authority
        .submit(Op::Failover {
            primary: id,
            promote,
        })
        .await
    {
        tracing::warn!(node = %id, "hand-over not committed: {e}");
    }
}

/// A pending registration silent for this many node timeouts expires.
pub const PENDING_EXPIRY_FACTOR: u32 = 10;

/// How often liveness is evaluated: a fiftieth of the timeout, 5-20 ms, so a silent
/// node is judged failed within 20 ms of its timeout (failover within node-timeout +
/// 100 ms; bench/failover.sh).
pub fn tick(node_timeout: Duration) -> Duration {
    (node_timeout / 50).clamp(Duration::from_millis(5), Duration::from_millis(20))
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
            // A primary heard from again may hold leases again (a failover of it was
            // not committed, or it would not be a primary).
            for (id, failed) in &changes {
                if !failed {
                    authority.leases.unfence(*id);
                }
            }
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
        if judging {
            fail_over(&authority, node_timeout).await;
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
