//! The replica's side of replication: follow the primary the topology names, apply its
//! stream, acknowledge every chunk at once; and the role changes the topology makes
//! (a replica promoted, a primary demoted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ember_core::{NodeId, Role, Topology};
use ember_proto::pb::{self, internal_client::InternalClient, repl_item::Item};
use futures::StreamExt;
use parking_lot::Mutex;

use super::log::ReplId;
use super::wire::{self, FORMAT};
use crate::cluster::applier::TopologyListener;
use crate::cmd::{self, Client};
use crate::db::Effect;
use crate::migration::{codec, Migrations};
use crate::state::{ClientInfo, ServerState};

/// Largest chunk a primary sends (chunks are ~64 KiB; a big value's piece may add 256 KiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Wait between two attempts to reach the primary: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(1);

/// The link to the primary, as `INFO replication` and `ROLE` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Not connected (connecting, or waiting to retry).
    Down,
    /// Receiving a full sync.
    Syncing,
    /// Streaming.
    Up,
}

#[derive(Debug)]
struct LinkState {
    status: LinkStatus,
    /// When the link last received something.
    last_io: Option<Instant>,
    /// When the link went down (`master_link_down_since_seconds`).
    down_since: Instant,
    /// The link has been up at least once since this process started: it holds a
    /// dataset it synced (a restarted replica has none until then).
    synced: bool,
}

/// This node's link to its primary (when it is a replica).
#[derive(Debug)]
pub struct Link {
    state: Mutex<LinkState>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            state: Mutex::new(LinkState {
                status: LinkStatus::Down,
                last_io: None,
                down_since: Instant::now(),
                synced: false,
            }),
        }
    }
}

impl Link {
    pub fn status(&self) -> LinkStatus {
        self.state.lock().status
    }

    /// Seconds since the link last received something (None: never).
    pub fn last_io_secs(&self) -> Option<u64> {
        self.state.lock().last_io.map(|t| t.elapsed().as_secs())
    }

    pub fn down_secs(&self) -> u64 {
        self.down_millis() / 1000
    }

    pub fn down_millis(&self) -> u64 {
        self.state.lock().down_since.elapsed().as_millis() as u64
    }

    fn set(&self, status: LinkStatus) {
        let mut s = self.state.lock();
        if status == LinkStatus::Down && s.status != LinkStatus::Down {
            s.down_since = Instant::now();
        }
        s.status = status;
        s.synced |= status == LinkStatus::Up;
    }

    /// Whether this process has ever completed a sync (see `LinkState::synced`).
    pub fn synced(&self) -> bool {
        self.state.lock().synced
    }

    fn touch(&self) {
        self.state.lock().last_io = Some(Instant::now());
    }
}

/// Follows the topology: streams from this node's primary while it is a replica.
pub struct Replication {
    state: Arc<ServerState>,
    /// Where a migration into the primary is staged here too.
    migrations: Arc<Migrations>,
    /// The primary followed and the task doing it.
    following: Mutex<Option<(NodeId, tokio::task::AbortHandle)>>,
}

impl Replication {
    pub fn new(state: Arc<ServerState>, migrations: Arc<Migrations>) -> Arc<Replication> {
        Arc::new(Replication {
            state,
            migrations,
            following: Mutex::new(None),
        })
    }

    fn my_role(&self, t: &Topology) -> Option<Role> {
        t.nodes.get(&self.state.cluster.me()).map(|n| n.role)
    }
}

impl TopologyListener for Replication {
    /// Before routing sends writes here, a promoted replica starts logging its own
    /// writes as a new history; a demoted primary stops.
    fn before_apply(&self, next: &Topology) {
        let log = &self.state.repl;
        let role = self.my_role(next);
        let me = self.state.cluster.me();
        let replicas = next.replicas_of(&me).map(|n| n.id).collect();
        self.state
            .lease
            .set_shard(role == Some(Role::Primary), replicas);
        if let Some(role) = role {
            crate::db::set_replica(role != Role::Primary);
        }
        match role {
            Some(Role::Primary) => {
                if let Some((_, task)) = self.following.lock().take() {
                    task.abort();
                    link(&self.state, LinkStatus::Down);
                    log.promote(&self.state.db);
                    tracing::info!(position = ?log.position(), "promoted: this node is a primary now");
                }
            }
            Some(Role::Replica { .. }) => log.detach(&self.state.db),
            None => {}
        }
    }

    fn after_apply(self: Arc<Self>, t: &Topology) {
        let role = self.my_role(t);
        super::handover::Handover::after_apply(&self.state, role == Some(Role::Primary));
        let Some(Role::Replica { of }) = role else {
            return;
        };
        let mut following = self.following.lock();
        if following.as_ref().is_some_and(|(p, _)| *p == of) {
            return;
        }
        if let Some((_, task)) = following.take() {
            task.abort();
        }
        link(&self.state, LinkStatus::Down);
        let task = tokio::spawn(follow(
            self.state.clone(),
            self.migrations.clone(),
            of,
            t.cluster_id.to_string(),
        ));
        *following = Some((of, task.abort_handle()));
        tracing::info!(primary = %of, "replicating");
    }
}

/// Sets the link's status, which routing also reads (`replica-serve-stale-data no`).
fn link(state: &ServerState, status: LinkStatus) {
    state.link.set(status);
    state.cluster.set_link_up(status == LinkStatus::Up);
}

/// Streams from `primary` for as long as the task lives, reconnecting after failures.
async fn follow(
    state: Arc<ServerState>,
    migrations: Arc<Migrations>,
    primary: NodeId,
    cluster_id: String,
) {
    let mut wait = RETRY_FIRST;
    loop {
        let leaving = state.leaving.notified();
        tokio::pin!(leaving);
        leaving.as_mut().enable();
        if state.is_leaving() {
            // A replica that is shutting down stops streaming at once: its primary then
            // hands its shard to nobody that is going away too.
            link(&state, LinkStatus::Down);
            return;
        }
        let addr = state.cluster.applied().and_then(|a| {
            a.topology
                .nodes
                .get(&primary)
                .map(|n| n.internal_addr.clone())
        });
        if let Some(addr) = addr {
            let began = Instant::now();
            let streamed = tokio::select! {
                r = stream_once(&state, &migrations, &addr, &cluster_id) => r,
                _ = &mut leaving => continue,
            };
            match streamed {
                Ok(()) => tracing::info!(%primary, "the primary ended the replication stream"),
                Err(e) => tracing::warn!(%primary, %addr, "replication link down: {e}"),
            }
            if began.elapsed() > RETRY_LAST {
                wait = RETRY_FIRST;
            }
        }
        link(&state, LinkStatus::Down);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_LAST);
    }
}

/// One connection to the primary: hello with this node's position, then apply and
/// acknowledge until the stream ends.
async fn stream_once(
    state: &ServerState,
    migrations: &Migrations,
    addr: &str,
    cluster_id: &str,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad internal address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let mut client = InternalClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let (replid, offset) = match state.cluster.is_partial() {
        true => (String::new(), 0),
        false => {
            let (id, offset) = state.repl.resume_position();
            (id.to_string(), offset)
        }
    };
    let hello = pb::ReplicaMessage {
        cluster_id: cluster_id.to_string(),
        replica_id: state.cluster.me().to_string(),
        replid,
        offset,
        ack: 0,
        lease_grant: 0,
    };
    // Only the latest acknowledgement (and lease grant) matters: a watch never queues
    // stale ones, and never drops the last.
    let (acks, rx) = tokio::sync::watch::channel((offset, 0));
    let outbound = futures::stream::once(async { hello }).chain(
        tokio_stream::wrappers::WatchStream::from_changes(rx).map(|(ack, lease_grant)| {
            pb::ReplicaMessage {
                ack,
                lease_grant,
                ..Default::default()
            }
        }),
    );
    let mut inbound = client
        .replicate(outbound)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let mut applier = Applier::new(state, Some(migrations));
    loop {
        let chunk = inbound
            .message()
            .await
            .map_err(|s| s.message().to_string())?
            .ok_or("the stream ended")?;
        state.link.touch();
        if chunk.lease_request != 0 {
            // Granted from now: this node promises not to be promoted for L * (1 + RHO).
            if state.lease.grant_to_primary() {
                acks.send_modify(|(_, grant)| *grant = chunk.lease_request);
            }
            continue;
        }
        if applier.first {
            applier.start(&chunk)?;
        }
        applier.apply(chunk)?;
        let end = state.repl.end();
        acks.send_modify(|(ack, _)| *ack = end);
    }
}

/// Applies one stream's chunks in order (also those of an append-only file, read back).
pub(crate) struct Applier<'a> {
    state: &'a ServerState,
    /// Where a primary's imports are staged (`None`: staged keys are skipped, as when
    /// loading a file: an import in progress at a restart starts over).
    migrations: Option<&'a Migrations>,
    client: Client,
    first: bool,
    /// Effects that failed on this side (expected only during a full sync, where
    /// frames may reach keys whose records come later).
    errors: u64,
    full_sync: bool,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(state: &'a ServerState, migrations: Option<&'a Migrations>) -> Applier<'a> {
        let info = Arc::new(ClientInfo::new(0, "primary".into(), String::new()));
        let mut client = Client::new(info);
        client.primary_link = true;
        Applier {
            state,
            migrations,
            client,
            first: true,
            errors: 0,
            full_sync: false,
        }
    }

    fn start(&mut self, chunk: &pb::ReplicationChunk) -> Result<(), String> {
        self.first = false;
        if chunk.format != FORMAT {
            return Err(format!(
                "the primary streams format {}, this node reads {FORMAT}: upgrade both to the same version",
                chunk.format
            ));
        }
        let id = ReplId::parse(&chunk.replid).ok_or("bad replication id from the primary")?;
        if chunk.full_sync {
            tracing::info!(
                keys = chunk.keys_total,
                offset = chunk.offset,
                "full sync from the primary"
            );
            self.full_sync = true;
            self.state.cluster.set_partial(true);
            link(self.state, LinkStatus::Syncing);
            self.state.db.flush();
        } else {
            tracing::info!(offset = chunk.offset, "partial resync from the primary");
            link(self.state, LinkStatus::Up);
        }
        self.state.repl.follow(id, chunk.offset, chunk.full_sync);
        Ok(())
    }

    fn apply(&mut self, chunk: pb::ReplicationChunk) -> Result<(), String> {
        self.apply_items(chunk.items)?;
        if chunk.sync_done {
            self.full_sync = false;
            self.state.cluster.set_partial(false);
            link(self.state, LinkStatus::Up);
            tracing::info!(
                keys = self.state.db.dbsize(),
                errors = self.errors,
                offset = self.state.repl.end(),
                "full sync done"
            );
            self.errors = 0;
        }
        Ok(())
    }

    /// Applies frames and snapshot records in order; every frame must continue the log.
    pub(crate) fn apply_items(&mut self, items: Vec<pb::ReplItem>) -> Result<(), String> {
        for item in items {
            match item.item {
                Some(Item::Frame(f)) => {
                    let frame = wire::frame_from_pb(f).map_err(|e| e.to_string())?;
                    let _in_flight = self.state.repl.applying();
                    // Several commands (an EXEC's): one transaction here too, so that a
                    // READONLY reader sees all of them or none.
                    let atomic = frame.effects.len() > 1
                        && frame
                            .effects
                            .iter()
                            .all(|e| matches!(e, Effect::Command(_)));
                    if atomic {
                        self.command(&[Bytes::from_static(b"MULTI")]);
                    }
                    for e in frame.effects.iter() {
                        self.effect(frame.slot, e);
                    }
                    if atomic {
                        self.command(&[Bytes::from_static(b"EXEC")]);
                    }
                    self.state.repl.push(frame).map_err(|e| e.to_string())?;
                }
                Some(Item::Record(r)) => {
                    let slot = wire::slot(r.slot).map_err(|e| e.to_string())?;
                    if r.clear {
                        self.state.db.drop_slot(slot);
                    } else if let Some(part) = r.part {
                        let mut t = self.state.db.lock(slot);
                        codec::apply(&mut t, part, 0).map_err(|e| e.to_string())?;
                    }
                }
                None => return Err("an empty item".into()),
            }
        }
        Ok(())
    }

    /// A snapshot is being applied: commands failing meanwhile are expected (frames may
    /// reach keys whose records come later) and not logged one by one.
    pub(crate) fn set_syncing(&mut self, on: bool) {
        self.full_sync = on;
    }

    /// Commands that failed here so far.
    pub(crate) fn errors(&self) -> u64 {
        self.errors
    }

    fn effect(&mut self, slot: u16, e: &Effect) {
        match e {
            Effect::Clear => {
                // Also what the primary's own copy of an import becomes: it installed
                // the slot and sends it whole (Clear, then the keys).
                if let Some(m) = self.migrations {
                    m.drop_staged(slot);
                }
                self.state.db.drop_slot(slot);
            }
            Effect::Staged(part) => {
                let Some(m) = self.migrations else {
                    return;
                };
                if let Err(e) = m.stage_from_primary(slot, part) {
                    self.errors += 1;
                    tracing::warn!(
                        slot,
                        "a staged key from the primary could not be applied: {e}"
                    );
                }
            }
            Effect::Command(argv) => self.command(argv),
        }
    }

    fn command(&mut self, argv: &[Bytes]) {
        let r = cmd::apply_effect(self.state, &mut self.client, argv);
        // EXEC's reply is an array of the commands' replies: an error among them counts.
        let failed = match &r {
            crate::resp::Reply::Array(items) => items.iter().any(|i| i.is_error()),
            r => r.is_error(),
        };
        if failed {
            self.errors += 1;
            if !self.full_sync {
                tracing::warn!(command = %String::from_utf8_lossy(&argv[0]), "a replicated command failed here: {r:?}");
            }
        }
    }
}
