//! The session stream to the control plane, from the node's side.
//!
//! Connect, say hello (id, cluster id, addresses, applied version), then apply every
//! snapshot that arrives and send heartbeats (applied version, key count), and answer the
//! control plane's promise requests for migrations this node imports. On any error
//! the node keeps serving its last applied topology (static stability) and reconnects with
//! jittered exponential backoff, resyncing from its applied version.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ember_proto::pb::{self, control_message, node_message, session_client::SessionClient};
use ember_proto::{convert, snapshot};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::applier::Applier;
use super::identity::Identity;
use super::{ApplyError, Cluster};
use crate::migration::Migrations;
use crate::replication::handover::Handover;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub control_plane: String,
    pub name: Option<String>,
    pub client_addr: String,
    pub internal_addr: String,
    /// `(replid, offset)` of the data loaded from the append-only file at start.
    pub loaded: Option<(String, u64)>,
}

/// Jittered exponential backoff: 50 ms doubling up to `max`, each wait drawn from
/// [d/2, d]. `max` is 2 s, or twice the heartbeat interval once the control plane told
/// it (a fifth of its node timeout), so that a reconnecting node is back well within the
/// node timeout after a control-plane restart and is not marked failed for nothing.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(50);

    fn new() -> Self {
        Self {
            next: Self::MIN,
            max: Duration::from_secs(2),
        }
    }

    fn reset(&mut self, heartbeat: Duration) {
        self.next = Self::MIN;
        self.max = (heartbeat * 2).clamp(Self::MIN * 2, Duration::from_secs(2));
    }

    fn wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        rand::rng().random_range(d / 2..=d)
    }
}

/// Runs the session forever. Snapshots are applied by `applier` (see
/// [`super::applier`]); the migrations' promises and reports go out with the heartbeats.
pub async fn run(
    applier: Applier,
    mut identity: Identity,
    config: SessionConfig,
    migrations: Arc<Migrations>,
) {
    let cluster = applier.cluster().clone();
    let mut backoff = Backoff::new();
    // Which control plane of the list to try first: the next one after a failure.
    let mut first = 0;
    loop {
        let mut welcomed = None;
        let result = session_once(
            &applier,
            &mut identity,
            &config,
            &migrations,
            &mut welcomed,
            first,
        )
        .await;
        if result.is_err() {
            first += 1;
        }
        if let Some(heartbeat) = welcomed {
            backoff.reset(heartbeat);
        }
        let wait = backoff.wait();
        match result {
            Ok(()) => tracing::warn!("control plane closed the session; reconnecting in {wait:?}"),
            Err(e) => tracing::warn!(
                control_plane = %config.control_plane,
                "session with the control plane failed: {e:#}; serving the last applied topology \
                 (version {}) and reconnecting in {wait:?}",
                cluster.applied_version()
            ),
        }
        tokio::time::sleep(wait).await;
    }
}

async fn session_once(
    applier: &Applier,
    identity: &mut Identity,
    config: &SessionConfig,
    migrations: &Arc<Migrations>,
    welcomed: &mut Option<Duration>,
    first: usize,
) -> anyhow::Result<()> {
    let cluster: &Cluster = applier.cluster();
    let (channel, url) =
        ember_proto::connect_any(&config.control_plane, first, ember_proto::session_endpoint)
            .await
            .map_err(|e| anyhow::anyhow!("no control plane reachable ({e})"))?;
    tracing::debug!(control_plane = %url, "connected to the control plane");
    let mut client = SessionClient::new(channel);

    let (tx, rx) = mpsc::channel(64);
    let applied = cluster.applied();
    let me = applied
        .as_ref()
        .and_then(|a| a.topology.nodes.get(&cluster.me()));
    let hello = pb::Hello {
        applied_incarnation: applied.as_ref().map_or(0, |a| a.topology.incarnation()),
        current_epoch: applied.as_ref().map_or(0, |a| a.topology.current_epoch),
        config_epoch: me.map_or(0, |n| n.config_epoch),
        owned: applied.as_ref().map_or_else(Vec::new, |a| {
            a.topology
                .slots
                .ranges_of(&cluster.me())
                .iter()
                .map(convert::range_to_pb)
                .collect()
        }),
        node_id: identity.node_id.to_string(),
        cluster_id: identity
            .cluster_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        name: config.name.clone().unwrap_or_default(),
        client_addr: config.client_addr.clone(),
        internal_addr: config.internal_addr.clone(),
        applied_version: cluster.applied_version(),
        loaded_replid: config
            .loaded
            .as_ref()
            .map_or_else(String::new, |l| l.0.clone()),
        loaded_offset: config.loaded.as_ref().map_or(0, |l| l.1),
    };
    tx.send(pb::NodeMessage {
        msg: Some(node_message::Msg::Hello(hello)),
    })
    .await?;
    let mut inbound = client.open(ReceiverStream::new(rx)).await?.into_inner();

    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut snapshots = snapshot::Receiver::default();
    // Why the newest snapshot was refused (reported with every heartbeat until one applies).
    let refused = &mut String::new();
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let Some(msg) = msg? else { return Ok(()) };
                cluster.messages_received.fetch_add(1, Ordering::Relaxed);
                match msg.msg {
                    Some(control_message::Msg::Welcome(w)) => {
                        let every = Duration::from_millis(w.heartbeat_millis.max(10));
                        migrations.state().lease.set_length(Duration::from_millis(w.lease_millis));
                        *welcomed = Some(every);
                        heartbeat = tokio::time::interval(every);
                        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        tracing::info!(cluster_id = %w.cluster_id, member = w.member, "session established");
                        if !w.member && cluster.applied().is_some() {
                            tracing::warn!("the control plane says this node is not a member: dropping the applied topology");
                            cluster.clear();
                        }
                    }
                    // The control plane commits on the answer: send it at once. (A
                    // request not acted on falls through and is ignored below.)
                    Some(control_message::Msg::PromiseRequest(p))
                        if migrations.promise(&p.migration_id) =>
                    {
                        send_reports(&tx, cluster, migrations)?;
                    }
                    Some(control_message::Msg::LeaseGrant(g)) => {
                        migrations.state().lease.granted_by_control_plane(g.request);
                    }
                    Some(control_message::Msg::ReportNow(_)) => heartbeat.reset_immediately(),
                    Some(control_message::Msg::PauseWrites(p)) => {
                        Handover::pause(&migrations.state_arc(), p);
                    }
                    Some(control_message::Msg::ResumeWrites(r)) => {
                        Handover::resume(migrations.state(), &r.id);
                    }
                    Some(control_message::Msg::StopGranting(s)) => {
                        migrations.state().lease.stop_granting(Duration::from_millis(s.millis));
                        heartbeat.reset_immediately();
                    }
                    Some(msg) => {
                        let Some(topology) = snapshots.receive(&msg) else { continue };
                        match topology {
                            Ok(t) => {
                                let (version, cluster_id) = (t.version, t.cluster_id);
                                if identity.cluster_id.is_some_and(|c| c != cluster_id) {
                                    tracing::error!(%cluster_id, "refusing a snapshot of another cluster");
                                    continue;
                                }
                                let (previous, restored_at) = (cluster.applied_version(), t.restored_at);
                                match applier.apply(t) {
                                    Ok(()) => {
                                        if restored_at > previous && previous > 0 {
                                            tracing::warn!(version, restored_at, "the control plane's state was restored (emberctl import-state); applied the restored topology");
                                        }
                                        tracing::debug!(version, "applied topology");
                                        refused.clear();
                                        identity.set_cluster(cluster_id)?;
                                    }
                                    Err(ApplyError::Stale { .. }) => {
                                        tracing::debug!(version, "ignored a snapshot not newer than the applied one");
                                        continue;
                                    }
                                    Err(e) => {
                                        tracing::error!("{e}; keeping the applied topology (version {})", cluster.applied_version());
                                        *refused = e.to_string();
                                        heartbeat.reset_immediately();
                                        continue;
                                    }
                                }
                            }
                            // The stream's delta base is lost: a new stream resyncs.
                            Err(e @ snapshot::ReceiveError::BadBase { .. }) => return Err(e.into()),
                            Err(e) => tracing::error!("malformed snapshot from the control plane: {e:#}"),
                        }
                        // Acknowledge at once so the control plane sees the new version.
                        heartbeat.reset_immediately();
                    }
                    None => {}
                }
            }
            _ = heartbeat.tick() => {
                let key_count = migrations.state().db.dbsize() as u64;
                let orphaned_keys = crate::persist::orphaned_keys(migrations.state());
                let repl = Some(crate::replication::report::status(migrations.state()));
                let lease_request = migrations.state().lease.now();
                let hb = pb::Heartbeat { applied_version: cluster.applied_version(), key_count, refused: refused.clone(), repl, lease_request, orphaned_keys };
                send(&tx, cluster, node_message::Msg::Heartbeat(hb))?;
                send_reports(&tx, cluster, migrations)?;
            }
            _ = migrations.report_now.notified() => send_reports(&tx, cluster, migrations)?,
            _ = migrations.state().handover.report_now.notified() => send_reports(&tx, cluster, migrations)?,
        }
    }
}

/// Queues a message for the control plane without waiting: a full queue means the
/// control plane is not reading right now, and waiting would stop this loop from reading
/// snapshots (both sides blocked on sending). Heartbeats and reports are re-sent
/// periodically anyway, so one dropped is harmless.
fn send(
    tx: &mpsc::Sender<pb::NodeMessage>,
    cluster: &Cluster,
    msg: node_message::Msg,
) -> anyhow::Result<()> {
    match tx.try_send(pb::NodeMessage { msg: Some(msg) }) {
        Ok(()) => {
            cluster.messages_sent.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => anyhow::bail!("the session stream closed"),
    }
}

/// Sends the current migration reports (each is re-sent until its migration ends, so a
/// control-plane restart cannot lose a `ready`).
fn send_reports(
    tx: &mpsc::Sender<pb::NodeMessage>,
    cluster: &Cluster,
    migrations: &Migrations,
) -> anyhow::Result<()> {
    for report in migrations.reports() {
        send(tx, cluster, node_message::Msg::Migration(report))?;
    }
    if let Some(report) = migrations.state().handover.report() {
        send(tx, cluster, node_message::Msg::Handover(report))?;
    }
    Ok(())
}
