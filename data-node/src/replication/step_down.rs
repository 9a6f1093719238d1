//! A primary that shuts down (SIGTERM, Ctrl-C, `SHUTDOWN` without `NOW`) hands its shard
//! to its most caught-up streaming replica first, as Redis 7 waits for its replicas at
//! shutdown, but further: through the control plane's zero-loss manual failover
//! (`emberctl failover REPLICA`). Its writes are held, the replica reaches its exact
//! offset, the swap commits, the held writes get `MOVED`, and only then does the node
//! stop serving. So restarting every node of a cluster one by one (a rolling restart)
//! loses no acknowledged write, and clients see redirects, not errors.
//!
//! A replica that shuts down stops streaming at once, so that a primary stopping at the
//! same time (`docker compose down`) does not hand its shard to it. Nothing is handed
//! over when there is nothing to hand (a replica, a primary without slots), nobody to
//! take it (no replica streaming now), or no control plane to decide;
//! a failover that fails or takes longer than [`SHUTDOWN_TIMEOUT`] is given up and the
//! node stops anyway (its replica is then promoted after the node timeout, as after a
//! crash).

use std::time::Duration;

use ember_core::Role;
use ember_proto::pb;

use crate::state::ServerState;

/// Longest a shutdown waits for the hand-over (Redis's `shutdown-timeout`).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// After a hand-over, the node keeps redirecting clients until none sent a command for
/// this long, and at most for [`DRAIN`].
const QUIET: Duration = Duration::from_millis(200);
const DRAIN: Duration = Duration::from_secs(2);

/// After the hand-over, clients still send here what their slot map says (they learn
/// of the new primary from a `MOVED`): keep answering until they have stopped (no
/// command for [`QUIET`]), at most [`DRAIN`], so that they get redirects rather than a
/// closed connection.
async fn redirect_for_a_while(state: &ServerState) {
    let commands = || {
        state
            .stats
            .commands
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let until = tokio::time::Instant::now() + DRAIN;
    let mut seen = commands();
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(QUIET).await;
        let now = commands();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Hands this node's shard over before a shutdown, if it is a primary with slots and a
/// replica streaming from it (see the module).
pub async fn hand_over(state: &ServerState) {
    state.leave();
    let Some(url) = state.cluster.control_plane() else {
        return;
    };
    let Some(applied) = state.cluster.applied() else {
        return;
    };
    let t = &applied.topology;
    let me = state.cluster.me();
    if !t.nodes.get(&me).is_some_and(|n| n.is_primary()) || t.slots.count_of(&me) == 0 {
        return;
    }
    let best = state
        .followers
        .list()
        .into_iter()
        .filter(|f| f.online.load(std::sync::atomic::Ordering::Acquire))
        .filter(|f| {
            t.nodes
                .get(&f.node)
                .is_some_and(|n| n.role == (Role::Replica { of: me }) && !n.failed)
        })
        .max_by_key(|f| f.acked.load(std::sync::atomic::Ordering::Acquire));
    let Some(best) = best else {
        tracing::warn!("shutting down without handing the shard over: no replica is streaming from this node (it is promoted after the node timeout)");
        return;
    };
    tracing::info!(replica = %best.node, "handing the shard over to a replica before shutting down");
    let failover = async {
        let (channel, _) =
            ember_proto::connect_any(&url, 0, |e| e.connect_timeout(Duration::from_secs(2)))
                .await?;
        pb::admin_client::AdminClient::new(channel)
            .failover(pb::FailoverRequest {
                node: best.node.to_string(),
                force: false,
            })
            .await
            .map_err(|s| s.message().to_string())?;
        // The swap is committed: wait until this node applied it (held writes are
        // answered with MOVED then).
        while state.cluster.role() == Role::Primary {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<_, String>(())
    };
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, failover).await {
        Ok(Ok(())) => {
            tracing::info!(replica = %best.node, "the shard is handed over");
            redirect_for_a_while(state).await;
        }
        Ok(Err(e)) => tracing::warn!("shutting down without handing the shard over: {e}"),
        Err(_) => tracing::warn!(
            "shutting down without handing the shard over: no answer within {SHUTDOWN_TIMEOUT:?}"
        ),
    }
}
