//! The authority: the one place that changes, persists and publishes cluster state.
//!
//! Every change goes through [`Authority::submit`], which serialises changes, applies the
//! pure state machine, persists the result and only then publishes it. Observed liveness
//! (sessions, heartbeats, applied versions) is kept here too, in memory: it is not state
//! but evidence that the heartbeater turns into `SetHealth` ops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ember_core::lineage::Lineage;
use ember_core::NodeId;
use ember_proto::{convert, pb, snapshot};
use tokio::sync::watch;
use uuid::Uuid;

use crate::leadership::Role;
use crate::restore::NodeReport;
use crate::state::{ClusterState, Op, Outcome, StateError};
use crate::store::{StateStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("could not persist the change, so it was not made: {0}")]
    Store(#[from] StoreError),
    /// The state is behind what the nodes have seen: nothing is published until an
    /// operator recovers it (`emberctl import-state`).
    #[error("{0}")]
    Frozen(String),
    /// A node of a cluster this control plane does not run.
    #[error("{0}")]
    ForeignCluster(String),
    /// Only the leader changes the state (followers forward to it; this one knows none,
    /// or lost its term while committing).
    #[error("{0}")]
    NotLeader(Role),
}

/// Most node reports kept (anyone can say hello; the oldest is dropped beyond this).
const MAX_REPORTS: usize = 4096;

/// A committed (durable) state, with its topology encoded once for all sessions.
#[derive(Clone)]
pub struct Published {
    pub state: Arc<ClusterState>,
    /// `state.topology` as session messages: self-contained, and as a delta against the
    /// previously published version.
    pub snapshot: Arc<snapshot::Encoded>,
}

impl Published {
    fn new(state: ClusterState, previous: Option<&Published>) -> Self {
        let snapshot = snapshot::Encoded::new(&state.topology, previous.map(|p| &*p.snapshot));
        Self {
            state: Arc::new(state),
            snapshot: Arc::new(snapshot),
        }
    }
}

/// What the control plane has observed of a node since it started.
#[derive(Clone, Debug)]
pub struct Observed {
    pub sessions: usize,
    pub last_seen: Instant,
    pub applied_version: u64,
    pub key_count: u64,
    /// Keys in slots the topology does not give it (see `pb::Heartbeat`).
    pub orphaned_keys: u64,
    /// Why the node refused the last snapshot it received (empty: it did not).
    pub refused: String,
    /// Its replication position as of its last heartbeat.
    pub repl: Option<pb::ReplicationStatus>,
}

/// Progress of a running migration, as reported by its target.
#[derive(Clone, Debug)]
pub struct Progress {
    pub keys: u64,
    pub bytes: u64,
    pub keys_total: u64,
    pub started: Instant,
    /// Last report (or start): a migration silent too long is aborted.
    pub last_report: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            keys: 0,
            bytes: 0,
            keys_total: 0,
            started: now,
            last_report: now,
        }
    }
}

pub struct Authority {
    /// Serialises changes: held across apply, persist and publish.
    committing: tokio::sync::Mutex<()>,
    store: Arc<dyn StateStore>,
    /// Whether this process leads (always, with the file store).
    role: watch::Sender<Role>,
    published: watch::Sender<Published>,
    observed: Mutex<HashMap<NodeId, Observed>>,
    progress: Mutex<HashMap<Uuid, Progress>>,
    /// The last migrations that ended, newest last (bounded).
    finished: Mutex<std::collections::VecDeque<pb::FinishedMigration>>,
    /// When this process started leading: the grace period of nodes not seen since.
    started: Mutex<Instant>,
    /// Drawn at start: stamps the versions this process commits (`ember_core::lineage`).
    incarnation: u64,
    /// Why nothing may be published (the state is behind the nodes), until a restore.
    alarm: Mutex<Option<String>>,
    /// What each node said in its last hello (also nodes of other clusters), with when.
    reports: Mutex<HashMap<NodeId, (Instant, NodeReport)>>,
    /// The last persistence failure, until a save succeeds again.
    persistence: watch::Sender<Option<String>>,
    /// Write leases granted to primaries (see [`crate::lease`]).
    pub leases: crate::lease::Leases,
    /// Requests for nodes, which their sessions forward.
    asks: tokio::sync::broadcast::Sender<(NodeId, Ask)>,
    /// Manual failovers under way.
    pub handovers: crate::handover::Handovers,
    /// Which replicas may be promoted.
    pub promotion: crate::heartbeater::Promotion,
}

/// A request the control plane makes of a node through its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Send a heartbeat now.
    Report,
    /// Grant your primary no write lease for this long (then send a heartbeat).
    StopGranting(Duration),
    /// A primary: hold every write for manual failover `id` to `replica`.
    Pause { id: Uuid, replica: NodeId },
    /// A primary: failover `id` was abandoned; serve the held writes.
    Resume { id: Uuid },
}

impl Authority {
    /// An authority over `store`, publishing an empty placeholder state until it leads
    /// ([`Authority::take_over`]) or follows ([`Authority::adopt`]).
    pub fn new(
        store: Arc<dyn StateStore>,
        role: Role,
        lease_length: Duration,
        promotion: crate::heartbeater::Promotion,
    ) -> Arc<Self> {
        let placeholder = ClusterState::new(Uuid::nil());
        let (published, _) = watch::channel(Published::new(placeholder, None));
        Arc::new(Self {
            committing: tokio::sync::Mutex::new(()),
            store,
            role: watch::channel(role).0,
            published,
            observed: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            finished: Mutex::new(Default::default()),
            started: Mutex::new(Instant::now()),
            incarnation: Uuid::new_v4().as_u64_pair().0 | 1,
            alarm: Mutex::new(None),
            reports: Mutex::new(HashMap::new()),
            persistence: watch::channel(None).0,
            leases: crate::lease::Leases::new(lease_length),
            asks: tokio::sync::broadcast::channel(256).0,
            handovers: Default::default(),
            promotion,
        })
    }

    /// Starts leading from the store's state, read linearizably after winning (so every
    /// commit of an earlier leader is in it), or, on an empty store, from a new cluster
    /// id committed first (conditioned on the store still being empty). What was
    /// observed of the nodes is forgotten: each gets a grace period from now, as after a
    /// restart.
    pub async fn take_over(&self) -> Result<(), AuthorityError> {
        let _guard = self.committing.lock().await;
        let state = match self.store.load().await? {
            Some(state) => state,
            None => {
                let state = ClusterState::new(Uuid::new_v4());
                tracing::info!(
                    store = %self.store.describe(),
                    "no state in the store: starting a new, empty control plane \
                     (`emberctl bootstrap` forms the cluster; `emberctl import-state` restores one)"
                );
                self.store.commit(None, &state).await?;
                state
            }
        };
        tracing::info!(
            cluster_id = %state.topology.cluster_id,
            version = state.version(),
            members = state.topology.nodes.len(),
            pending = state.pending.len(),
            store = %self.store.describe(),
            "state loaded"
        );
        self.observed.lock().unwrap().clear();
        *self.started.lock().unwrap() = Instant::now();
        let published = Published::new(state, Some(&self.current()));
        self.published.send_replace(published);
        Ok(())
    }

    /// A follower's copy: publishes a state read from the store, if newer than its own.
    pub fn adopt(&self, state: ClusterState) {
        let current = self.current();
        if state.version() <= current.state.version()
            && state.topology.cluster_id == current.state.topology.cluster_id
        {
            return;
        }
        let published = Published::new(state, Some(&current));
        self.published.send_replace(published);
    }

    /// Whether this process leads, follows, or knows no leader.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    pub fn set_role(&self, role: Role) {
        self.role.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        });
    }

    /// Why the control plane refuses to publish, if it does.
    pub fn alarm(&self) -> Option<String> {
        self.alarm.lock().unwrap().clone()
    }

    fn raise_alarm(&self, why: String) -> String {
        let mut alarm = self.alarm.lock().unwrap();
        if alarm.is_none() {
            tracing::error!("{why}");
            *alarm = Some(why);
        }
        alarm.clone().expect("set")
    }

    /// The last persistence failure, while saves fail; watch it to follow health.
    pub fn persistence(&self) -> watch::Receiver<Option<String>> {
        self.persistence.subscribe()
    }

    fn persisted(&self, result: &Result<(), StoreError>) {
        let error = result.as_ref().err().map(ToString::to_string);
        self.persistence.send_if_modified(|current| {
            if *current == error {
                return false;
            }
            match &error {
                Some(e) => tracing::error!("cannot persist the state, publishing nothing new: {e}"),
                None => tracing::info!("persisting works again"),
            }
            *current = error;
            true
        });
    }

    /// After a persistence failure, saves the committed state again (the same content,
    /// so harmless) to find out whether persisting works again.
    pub async fn retry_persistence(&self) {
        if self.persistence.borrow().is_none() {
            return;
        }
        let _guard = self.committing.lock().await;
        let state = self.current().state;
        let result = self.store.commit(Some(state.version()), &state).await;
        self.persisted(&result);
    }

    /// Records a node's hello and judges it: a node of another cluster, or one that has
    /// seen a history this control plane never had (its state is older than the
    /// cluster's), is refused; the latter also freezes the control plane.
    /// Ordering: judged against the latest committed state, read here, so a normal
    /// restart never raises the alarm.
    pub fn judge_hello(&self, report: &NodeReport) -> Result<(), AuthorityError> {
        {
            let mut reports = self.reports.lock().unwrap();
            if reports.len() >= MAX_REPORTS && !reports.contains_key(&report.id) {
                let oldest = reports
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(id, _)| *id);
                oldest.map(|id| reports.remove(&id));
            }
            reports.insert(report.id, (Instant::now(), report.clone()));
        }
        let state = self.current().state;
        let t = &state.topology;
        if let Some(theirs) = report.cluster_id.filter(|c| *c != t.cluster_id) {
            return Err(AuthorityError::ForeignCluster(if t.is_bootstrapped() {
                format!(
                    "node {} belongs to cluster {theirs}, but this control plane runs cluster {};                      start the node with an empty --data-dir to move it to this cluster",
                    report.id, t.cluster_id
                )
            } else {
                format!(
                    "node {} belongs to cluster {theirs}, which this control plane does not know:                      its state is lost or --data-dir points elsewhere. Keep the node as it is (it                      keeps serving); restore the control plane with `emberctl import-state BACKUP`                      (a file from `emberctl export-state` or a copy of state.json), or rebuild                      the cluster from its nodes' reports with `emberctl import-state`",
                    report.id
                )
            }));
        }
        if let Some(alarm) = self.alarm() {
            return Err(AuthorityError::Frozen(alarm));
        }
        let why = match t
            .history
            .judge(t.version, report.applied_version, report.incarnation)
        {
            Lineage::Consistent | Lineage::Unknown => return Ok(()),
            Lineage::Ahead { seen, latest } => format!(
                "node {} has applied topology version {seen}, but this control plane's latest                  is {latest}",
                report.id
            ),
            Lineage::Forked {
                version,
                theirs,
                ours,
            } => format!(
                "node {} applied version {version} from control-plane incarnation {theirs:016x},                  but this state's version {version} was committed by {ours:016x}",
                report.id
            ),
        };
        Err(AuthorityError::Frozen(self.raise_alarm(format!(
            "{why}: this control plane's state is older than the cluster's (restored from an              old copy, or changes were lost), so it publishes nothing until an operator              recovers it: run `emberctl import-state` to re-adopt this state with every slot              given to the node that reports owning it with the highest config epoch, or              `emberctl import-state BACKUP`"
        ))))
    }

    /// What the nodes said in their last hellos.
    pub fn reports(&self) -> Vec<NodeReport> {
        self.reports
            .lock()
            .unwrap()
            .values()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The last committed state.
    pub fn current(&self) -> Published {
        self.published.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// Asks `node` something through its session, if it has one.
    pub fn ask(&self, node: NodeId, ask: Ask) {
        let _ = self.asks.send((node, ask));
    }

    /// The requests of [`Authority::ask`], for a session to forward.
    pub fn asks(&self) -> tokio::sync::broadcast::Receiver<(NodeId, Ask)> {
        self.asks.subscribe()
    }

    /// Answers a heartbeat's lease request: a healthy primary gets a grant.
    pub fn grant_lease(&self, node: NodeId) -> bool {
        self.leases.grant(node, || {
            self.current()
                .state
                .topology
                .nodes
                .get(&node)
                .is_some_and(|n| n.is_primary() && !n.failed)
        })
    }

    /// Applies `op`; on success the new state is durable and published.
    pub async fn submit(&self, op: Op) -> Result<(Arc<ClusterState>, Outcome), AuthorityError> {
        let _guard = self.committing.lock().await;
        let role = self.role.borrow().clone();
        if !matches!(role, Role::Leader { .. }) {
            return Err(AuthorityError::NotLeader(role));
        }
        let restore = matches!(op, Op::Restore { .. });
        if let Some(alarm) = self.alarm().filter(|_| !restore) {
            return Err(AuthorityError::Frozen(alarm));
        }
        let previous = self.current();
        let current = previous.state.clone();
        let (mut next, outcome) = current.apply(&op)?;
        if !outcome.changed {
            return Ok((current, outcome));
        }
        let version = next.version();
        next.topology.history.record(version, self.incarnation);
        debug_assert_eq!(next.consistency_check(), Ok(()));
        // Ordering: persist before publishing, so that nothing a node or client ever sees
        // can be lost by a crash, and versions never go backwards.
        let saved = self.store.commit(Some(current.version()), &next).await;
        if let Err(StoreError::NotLeader) = saved {
            // The term ended under this commit: nothing was written.
            let role = Role::NoLeader {
                why: "this control plane's term ended".into(),
            };
            self.set_role(role.clone());
            return Err(AuthorityError::NotLeader(role));
        }
        if let Err(StoreError::Conflict { .. }) = saved {
            // The store holds another version than this copy: a commit whose reply was
            // lost. The stored one is the truth: publish it, and let the client retry.
            if let Ok(Some(stored)) = self.store.load().await {
                self.published
                    .send_replace(Published::new(stored, Some(&previous)));
            }
        }
        self.persisted(&saved);
        saved?;
        if restore {
            *self.alarm.lock().unwrap() = None;
        }
        tracing::info!(version = next.version(), "{}", outcome.summary);
        self.record_finished(&op, &current, &outcome);
        let published = Published::new(next, Some(&previous));
        let state = published.state.clone();
        self.published.send_replace(published);
        Ok((state, outcome))
    }

    pub fn session_opened(&self, id: NodeId, applied_version: u64) {
        let mut obs = self.observed.lock().unwrap();
        let o = obs.entry(id).or_insert(Observed {
            sessions: 0,
            last_seen: Instant::now(),
            applied_version,
            key_count: 0,
            orphaned_keys: 0,
            refused: String::new(),
            repl: None,
        });
        o.sessions += 1;
        o.last_seen = Instant::now();
        o.applied_version = applied_version;
    }

    pub fn heartbeat(&self, id: NodeId, hb: pb::Heartbeat) {
        let (applied_version, refused) = (hb.applied_version, hb.refused.as_str());
        if let Some(o) = self.observed.lock().unwrap().get_mut(&id) {
            o.last_seen = Instant::now();
            o.applied_version = applied_version;
            o.key_count = hb.key_count;
            o.orphaned_keys = hb.orphaned_keys;
            o.refused = refused.to_string();
            o.repl = hb.repl.clone();
        }
        if !refused.is_empty() {
            self.raise_alarm(format!(
                "node {id} refused this control plane's topology (it keeps its applied version                  {applied_version}): {refused}. The control plane publishes nothing until an                  operator recovers it with `emberctl import-state`"
            ));
        }
    }

    pub fn session_closed(&self, id: NodeId) {
        if let Some(o) = self.observed.lock().unwrap().get_mut(&id) {
            o.sessions = o.sessions.saturating_sub(1);
        }
    }

    /// Remembers how a migration ended, for `emberctl migrations` and waiting clients.
    fn record_finished(&self, op: &Op, before: &ClusterState, outcome: &Outcome) {
        let (id, committed, reason) = match op {
            Op::CommitMigration { id } => (*id, true, String::new()),
            Op::AbortMigration { id, reason } => (*id, false, reason.clone()),
            _ => return,
        };
        let Some(m) = before.topology.migrations.iter().find(|m| m.id == id) else {
            return;
        };
        let p = self.progress.lock().unwrap().remove(&id);
        let migration = Some(convert::migration_to_pb(m));
        let mut finished = self.finished.lock().unwrap();
        finished.push_back(pb::FinishedMigration {
            migration,
            committed,
            reason,
            keys: p.as_ref().map_or(0, |p| p.keys),
            bytes: p.as_ref().map_or(0, |p| p.bytes),
            millis: p
                .as_ref()
                .map_or(0, |p| p.started.elapsed().as_millis() as u64),
        });
        if finished.len() > 100 {
            finished.pop_front();
        }
        tracing::info!(migration = %id, committed, "{}", outcome.summary);
    }

    /// Records a progress report (or, with zeros, the start) of migration `id`.
    pub fn migration_progress(&self, id: Uuid, keys: u64, bytes: u64, keys_total: u64) {
        let mut all = self.progress.lock().unwrap();
        let p = all.entry(id).or_insert_with(Progress::new);
        p.keys = p.keys.max(keys);
        p.bytes = p.bytes.max(bytes);
        p.keys_total = p.keys_total.max(keys_total);
        p.last_report = Instant::now();
    }

    /// Progress of the running migrations (those not yet reported start now), dropping
    /// entries of migrations that ended.
    pub fn progress(&self) -> HashMap<Uuid, Progress> {
        let running: Vec<Uuid> = self
            .current()
            .state
            .topology
            .migrations
            .iter()
            .map(|m| m.id)
            .collect();
        let mut all = self.progress.lock().unwrap();
        all.retain(|id, _| running.contains(id));
        for id in running {
            all.entry(id).or_insert_with(Progress::new);
        }
        all.clone()
    }

    /// Observations of every node seen since start.
    pub fn observed(&self) -> HashMap<NodeId, Observed> {
        self.observed.lock().unwrap().clone()
    }

    /// When this process started leading: nodes never seen since are timed from here
    /// (grace period).
    pub fn started(&self) -> Instant {
        *self.started.lock().unwrap()
    }

    /// Convenience for GetState.
    pub fn state_pb(&self) -> pb::ClusterState {
        let current = self.current().state;
        let observed = self.observed();
        let status = current
            .all_nodes()
            .map(|n| {
                let o = observed.get(&n.id);
                pb::NodeStatus {
                    node_id: n.id.to_string(),
                    connected: o.is_some_and(|o| o.sessions > 0),
                    applied_version: o.map_or(0, |o| o.applied_version),
                    key_count: o.map_or(0, |o| o.key_count),
                    orphaned_keys: o.map_or(0, |o| o.orphaned_keys),
                    millis_since_heartbeat: o
                        .map_or(0, |o| o.last_seen.elapsed().as_millis() as u64),
                    refused: o.map_or_else(String::new, |o| o.refused.clone()),
                    repl: o.and_then(|o| o.repl.clone()),
                    not_promotable: match (n.role, o.and_then(|o| Some((o, o.repl.as_ref()?)))) {
                        (ember_core::Role::Replica { .. }, Some((o, r))) => {
                            self.promotion.refusal(o, r).unwrap_or_default()
                        }
                        _ => String::new(),
                    },
                }
            })
            .collect();
        let progress = self
            .progress()
            .into_iter()
            .map(|(id, p)| pb::MigrationProgress {
                id: id.to_string(),
                keys: p.keys,
                bytes: p.bytes,
                keys_total: p.keys_total,
                millis: p.started.elapsed().as_millis() as u64,
            })
            .collect();
        let (leader, term) = match &*self.role.borrow() {
            Role::Leader { url, term } => (url.clone(), *term),
            Role::Follower { leader } => (leader.clone(), 0),
            Role::NoLeader { .. } => (String::new(), 0),
        };
        pb::ClusterState {
            leader,
            term,
            store: self.store.describe(),
            topology: Some(convert::topology_to_pb(&current.topology)),
            pending: current.pending.values().map(convert::node_to_pb).collect(),
            status,
            progress,
            finished: self.finished.lock().unwrap().iter().cloned().collect(),
            alarm: self.alarm().unwrap_or_default(),
            persistence_error: self.persistence.borrow().clone().unwrap_or_default(),
            foreign: self
                .reports
                .lock()
                .unwrap()
                .values()
                .filter(|(at, r)| {
                    at.elapsed() < Duration::from_secs(60)
                        && r.cluster_id
                            .is_some_and(|c| c != current.topology.cluster_id)
                })
                .map(|(_, r)| pb::ForeignNode {
                    node_id: r.id.to_string(),
                    cluster_id: r.cluster_id.map(|c| c.to_string()).unwrap_or_default(),
                    client_addr: r.client_addr.clone(),
                    applied_version: r.applied_version,
                })
                .collect(),
        }
    }
}
