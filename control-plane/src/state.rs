//! The control plane's durable state and the pure state machine that changes it.
//!
//! [`ClusterState::apply`] takes an [`Op`] and returns the next state or a [`StateError`];
//! it does no I/O, so it is tested exhaustively (see the property tests) and the service
//! around it only has to persist and publish what it returns.
//!
//! Rules every accepted change obeys (checked by [`ClusterState::consistency_check`]):
//! - `version` increases by exactly one on every change, and not at all on a no-op or a
//!   rejected op;
//! - every slot-ownership change bumps `current_epoch`, and a node that gains slots takes
//!   the new `current_epoch` as its `config_epoch`;
//! - one entry per node: members and pending registrations are disjoint, and names and
//!   client addresses are unique across both.

use std::collections::{BTreeMap, BTreeSet};

use ember_core::functions::{self, FunctionError, Library, RestorePolicy};
use ember_core::registration::{check_addr, check_name, RegistrationError};
use ember_core::slots::{split_evenly, SlotSet, SLOT_COUNT};
use ember_core::topology::{resolve_node, ResolveError};
use ember_core::{Migration, MigrationState, NodeId, NodeInfo, Role, Topology};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::restore::{self, NodeReport};

/// Everything the control plane persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The topology streamed to members. Its `version` versions the whole state.
    pub topology: Topology,
    /// Nodes that said hello but are not members yet (`emberctl bootstrap` / `join`).
    pub pending: BTreeMap<NodeId, NodeInfo>,
}

/// A requested change. NODE arguments are resolved inside [`ClusterState::apply`], so the
/// outcome depends only on the state and the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A node's hello: register it (pending) or update its announced addresses.
    Register {
        id: NodeId,
        name: Option<String>,
        client_addr: String,
        internal_addr: String,
    },
    Bootstrap {
        nodes: Vec<String>,
        /// Replicas per primary (see [`ClusterState::bootstrap`]).
        replicas: usize,
    },
    Join {
        node: String,
        replica_of: Option<String>,
    },
    /// Give free slots to a primary.
    Assign {
        node: String,
        slots: SlotSet,
    },
    Forget {
        node: String,
        force: bool,
    },
    /// Liveness, decided by the heartbeater: `(node, failed)` for every node whose health
    /// changed at once, so that a thousand nodes failing make one new version, not a
    /// thousand.
    SetHealth {
        changes: Vec<(NodeId, bool)>,
    },
    SetConfig {
        require_full_coverage: Option<bool>,
    },
    /// Record a live migration of owned slots to `target` (ownership is unchanged).
    StartMigration {
        id: Uuid,
        target: String,
        slots: SlotSet,
        max_running: usize,
    },
    /// The target has every key and the source holds writes: `target` owns the slots.
    CommitMigration {
        id: Uuid,
    },
    /// Drop the migration record: the source keeps every slot.
    AbortMigration {
        id: Uuid,
        reason: String,
    },
    /// `promote`, a replica of `primary`, takes over its shard: it becomes the primary
    /// (with a new config epoch) and owns the slots; `primary` and the shard's other
    /// replicas become its replicas; migrations of `primary` are dropped.
    Failover {
        primary: NodeId,
        promote: NodeId,
    },
    /// `emberctl failover NODE --force`: the replica NODE takes over its primary's shard
    /// (as [`Op::Failover`]).
    Promote {
        node: String,
    },
    /// `emberctl replicate NODE PRIMARY`: NODE (a replica, or a primary that owns no
    /// slots and has no replicas) becomes a replica of PRIMARY.
    Replicate {
        node: String,
        primary: String,
    },
    /// Pending registrations whose node has been silent too long (decided by the
    /// heartbeater) are dropped.
    ExpirePending {
        ids: Vec<NodeId>,
    },
    /// Function libraries (`FUNCTION LOAD/RESTORE/DELETE/FLUSH`, `emberctl functions`),
    /// checked already (see `ember_core::functions::lua::check`).
    Libraries(LibraryOp),
    /// `emberctl import-state`: replace the state with `backup`, reconciled with what the
    /// nodes report (see `restore.rs`). The only op that sets the version itself.
    Restore {
        backup: Box<ClusterState>,
        reports: Vec<NodeReport>,
    },
}

/// A change of the function libraries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LibraryOp {
    Load {
        library: Library,
        replace: bool,
    },
    Restore {
        libraries: Vec<Library>,
        policy: RestorePolicy,
    },
    Delete {
        name: String,
        missing_ok: bool,
    },
    Flush,
}

/// Most pending registrations kept: a hello beyond this is refused.
pub const MAX_PENDING: usize = 1000;

/// Why an op was refused. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(
        "node {0} is registered but not a member of the cluster: run `emberctl join {0}` first"
    )]
    NotMember(String),
    #[error("node {0} is already a member of the cluster")]
    AlreadyMember(String),
    #[error("the cluster is not bootstrapped yet: run `emberctl bootstrap NODE...` first")]
    NotBootstrapped,
    #[error("the cluster is already bootstrapped with {0}; add nodes with `emberctl join`")]
    AlreadyBootstrapped(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("no migration {0} is running")]
    NoMigration(String),
    #[error("{0}")]
    Registration(#[from] RegistrationError),
    /// As many migrations run as allowed: retry once one ends.
    #[error("{0}")]
    Busy(String),
    /// In Redis's words (a client's `FUNCTION ...` answers `ERR` and this).
    #[error(transparent)]
    Function(#[from] FunctionError),
    #[error("{MAX_PENDING} nodes are already pending: join or forget some (`emberctl pending`)")]
    TooManyPending,
}

/// What an accepted op did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// False when the op was already in effect (the state, and its version, are unchanged).
    pub changed: bool,
    /// One human line, e.g. `assigned 100 slots (0-99) to n1; current epoch 4`.
    pub summary: String,
}

impl ClusterState {
    pub fn new(cluster_id: Uuid) -> Self {
        Self {
            topology: Topology::new(cluster_id),
            pending: BTreeMap::new(),
        }
    }

    pub fn version(&self) -> u64 {
        self.topology.version
    }

    /// Every node the control plane knows: members first, then pending ones.
    pub fn all_nodes(&self) -> impl Iterator<Item = &NodeInfo> + Clone {
        self.topology.nodes.values().chain(self.pending.values())
    }

    fn resolve(&self, query: &str) -> Result<NodeId, StateError> {
        Ok(resolve_node(self.all_nodes(), query)?.id)
    }

    pub fn resolve_member(&self, query: &str) -> Result<NodeId, StateError> {
        let id = self.resolve(query)?;
        if self.topology.nodes.contains_key(&id) {
            Ok(id)
        } else {
            Err(StateError::NotMember(query.to_string()))
        }
    }

    fn label(&self, id: &NodeId) -> String {
        self.all_nodes()
            .find(|n| n.id == *id)
            .map_or_else(|| id.to_string(), NodeInfo::label)
    }

    /// Applies `op`, returning the next state (version bumped if anything changed).
    pub fn apply(&self, op: &Op) -> Result<(ClusterState, Outcome), StateError> {
        if let Op::Restore { backup, reports } = op {
            let (next, summary) = restore::restore(self, backup, reports)?;
            return Ok((
                next,
                Outcome {
                    changed: true,
                    summary,
                },
            ));
        }
        let mut next = self.clone();
        let summary = next.apply_in_place(op)?;
        let changed = next != *self;
        if changed {
            next.topology.version = self.topology.version + 1;
        }
        Ok((next, Outcome { changed, summary }))
    }

    fn apply_in_place(&mut self, op: &Op) -> Result<String, StateError> {
        match op {
            Op::Register {
                id,
                name,
                client_addr,
                internal_addr,
            } => self.register(*id, name, client_addr, internal_addr),
            Op::Bootstrap { nodes, replicas } => self.bootstrap(nodes, *replicas),
            Op::Join { node, replica_of } => self.join(node, replica_of.as_deref()),
            Op::Assign { node, slots } => self.assign(node, slots),
            Op::Forget { node, force } => self.forget(node, *force),
            Op::SetHealth { changes } => {
                let mut summary = Vec::new();
                for (id, failed) in changes {
                    let label = self.label(id);
                    let node =
                        self.topology.nodes.get_mut(id).ok_or_else(|| {
                            StateError::Invalid(format!("node {id} is not a member"))
                        })?;
                    node.failed = *failed;
                    summary.push(format!("{label} {}", if *failed { "failed" } else { "ok" }));
                }
                Ok(format!("health: {}", summary.join(", ")))
            }
            Op::SetConfig {
                require_full_coverage,
            } => {
                if let Some(v) = require_full_coverage {
                    self.topology.require_full_coverage = *v;
                }
                Ok(format!(
                    "require-full-coverage is {}",
                    self.topology.require_full_coverage
                ))
            }
            Op::StartMigration {
                id,
                target,
                slots,
                max_running,
            } => self.start_migration(*id, target, slots, *max_running),
            Op::CommitMigration { id } => self.commit_migration(*id),
            Op::Failover { primary, promote } => self.failover(*primary, *promote),
            Op::Promote { node } => {
                let id = self.resolve_member(node)?;
                match self.topology.nodes[&id].role {
                    Role::Replica { of } => self.failover(of, id),
                    Role::Primary => Err(StateError::Invalid(format!(
                        "{} is a primary already; name one of its replicas",
                        self.label(&id)
                    ))),
                }
            }
            Op::Replicate { node, primary } => self.replicate(node, primary),
            Op::ExpirePending { ids } => {
                let gone: Vec<String> = ids
                    .iter()
                    .filter_map(|id| self.pending.remove(id))
                    .map(|n| n.label())
                    .collect();
                Ok(format!(
                    "expired pending registration(s): {}",
                    gone.join(", ")
                ))
            }
            Op::Restore { .. } => unreachable!("handled in apply"),
            Op::Libraries(op) => self.change_libraries(op),
            Op::AbortMigration { id, reason } => {
                let before = self.topology.migrations.len();
                self.topology.migrations.retain(|m| m.id != *id);
                if self.topology.migrations.len() == before {
                    return Err(StateError::NoMigration(id.to_string()));
                }
                Ok(format!("migration {id} aborted: {reason}"))
            }
        }
    }

    fn change_libraries(&mut self, op: &LibraryOp) -> Result<String, StateError> {
        let libs = &mut self.topology.libraries;
        Ok(match op {
            LibraryOp::Load { library, replace } => {
                functions::load(libs, library.clone(), *replace)?;
                format!("function library {} loaded", library.name)
            }
            LibraryOp::Restore { libraries, policy } => {
                functions::restore(libs, libraries.clone(), *policy)?;
                format!("{} function librar(ies) restored", libraries.len())
            }
            LibraryOp::Delete { name, missing_ok } => match functions::delete(libs, name) {
                Err(FunctionError::NotFound) if *missing_ok => {
                    format!("function library {name} was deleted already")
                }
                r => {
                    r?;
                    format!("function library {name} deleted")
                }
            },
            LibraryOp::Flush => {
                libs.clear();
                "every function library deleted".to_string()
            }
        })
    }

    fn start_migration(
        &mut self,
        id: Uuid,
        target: &str,
        slots: &SlotSet,
        max_running: usize,
    ) -> Result<String, StateError> {
        if slots.is_empty() {
            return Err(StateError::Invalid("no slots given".into()));
        }
        let target = self.resolve_member(target)?;
        let t = &self.topology;
        let node = &t.nodes[&target];
        if !node.is_primary() {
            return Err(StateError::Invalid(format!(
                "{} is a replica; only primaries own slots",
                node.label()
            )));
        }
        if node.failed {
            return Err(StateError::Conflict(format!("{} is failed", node.label())));
        }
        let mut sources: BTreeSet<Option<NodeId>> =
            slots.iter().map(|s| t.slots.owner(s)).collect();
        let source = match (sources.pop_first(), sources.is_empty()) {
            (Some(Some(source)), true) => source,
            (Some(None), _) => {
                return Err(StateError::Invalid(
                    "some of these slots are unassigned: give free slots with `emberctl assign`"
                        .into(),
                ))
            }
            _ => {
                return Err(StateError::Invalid(
                    "these slots have several owners: migrate each owner's slots separately".into(),
                ))
            }
        };
        if source == target {
            return Err(StateError::Invalid(format!(
                "{} already owns these slots",
                node.label()
            )));
        }
        if t.nodes[&source].failed {
            return Err(StateError::Conflict(format!(
                "the source {} is failed",
                t.nodes[&source].label()
            )));
        }
        if let Some(m) = slots.iter().find_map(|s| t.migration_of(s)) {
            return Err(StateError::Conflict(format!(
                "some of these slots are already being migrated by {}",
                m.id
            )));
        }
        if t.migrations.len() >= max_running {
            return Err(StateError::Busy(format!(
                "{} migrations are running, the most allowed (--max-migrations); wait for one to finish",
                t.migrations.len()
            )));
        }
        let summary = format!(
            "migration {id}: {} slot(s) ({slots}) from {} to {}",
            slots.len(),
            self.label(&source),
            self.label(&target)
        );
        self.topology.migrations.push(Migration {
            id,
            slots: slots.ranges(),
            source,
            target,
            state: MigrationState::Streaming,
        });
        Ok(summary)
    }

    fn failover(&mut self, primary: NodeId, promote: NodeId) -> Result<String, StateError> {
        let t = &self.topology;
        let Some(old) = t.nodes.get(&primary) else {
            return Err(StateError::NotMember(primary.to_string()));
        };
        if !old.is_primary() {
            return Err(StateError::Conflict(format!(
                "{} is no longer a primary",
                old.label()
            )));
        }
        match t.nodes.get(&promote) {
            Some(n) if n.role == (Role::Replica { of: primary }) => {}
            Some(n) => {
                return Err(StateError::Conflict(format!(
                    "{} is not a replica of {}",
                    n.label(),
                    old.label()
                )))
            }
            None => return Err(StateError::NotMember(promote.to_string())),
        }
        self.topology.current_epoch += 1;
        let epoch = self.topology.current_epoch;
        let slots = self.topology.slots.slots_of(&primary);
        for s in slots.iter() {
            self.topology.slots.set(s, Some(promote));
        }
        for n in self.topology.nodes.values_mut() {
            if n.id == promote {
                n.role = Role::Primary;
                n.config_epoch = epoch;
            } else if n.id == primary || n.role == (Role::Replica { of: primary }) {
                n.role = Role::Replica { of: promote };
            }
        }
        self.topology
            .migrations
            .retain(|m| m.source != primary && m.target != primary);
        Ok(format!(
            "failover: {} took over {} slot(s) from {}; current epoch {epoch}",
            self.label(&promote),
            slots.len(),
            self.label(&primary)
        ))
    }

    fn replicate(&mut self, node: &str, primary: &str) -> Result<String, StateError> {
        let id = self.resolve_member(node)?;
        let of = self.resolve_member(primary)?;
        let t = &self.topology;
        if id == of {
            return Err(StateError::Invalid("a node cannot replicate itself".into()));
        }
        if !t.nodes[&of].is_primary() {
            return Err(StateError::Invalid(format!(
                "{} is a replica; replicas follow primaries",
                self.label(&of)
            )));
        }
        if t.nodes[&id].role == (Role::Replica { of }) {
            return Ok(format!(
                "{} already replicates {}",
                self.label(&id),
                self.label(&of)
            ));
        }
        if t.nodes[&id].is_primary() {
            if t.slots.count_of(&id) > 0 {
                return Err(StateError::Conflict(format!(
                    "{} owns slots: drain it first (emberctl drain), or fail it over to a replica",
                    self.label(&id)
                )));
            }
            if t.replicas_of(&id).next().is_some() {
                return Err(StateError::Conflict(format!(
                    "{} has replicas: point them elsewhere first",
                    self.label(&id)
                )));
            }
            if t.migrations.iter().any(|m| m.target == id) {
                return Err(StateError::Busy(format!(
                    "{} is the target of a running migration",
                    self.label(&id)
                )));
            }
        }
        let n = self.topology.nodes.get_mut(&id).expect("resolved member");
        n.role = Role::Replica { of };
        Ok(format!(
            "{} now replicates {}",
            self.label(&id),
            self.label(&of)
        ))
    }

    fn commit_migration(&mut self, id: Uuid) -> Result<String, StateError> {
        let idx = self
            .topology
            .migrations
            .iter()
            .position(|m| m.id == id)
            .ok_or_else(|| StateError::NoMigration(id.to_string()))?;
        let m = self.topology.migrations.remove(idx);
        let slots = SlotSet::from_ranges(&m.slots);
        if let Some(s) = slots
            .iter()
            .find(|s| self.topology.slots.owner(*s) != Some(m.source))
        {
            return Err(StateError::Conflict(format!(
                "slot {s} is no longer owned by the migration's source"
            )));
        }
        self.topology.current_epoch += 1;
        let epoch = self.topology.current_epoch;
        slots
            .iter()
            .for_each(|s| self.topology.slots.set(s, Some(m.target)));
        self.topology
            .nodes
            .get_mut(&m.target)
            .expect("migration target is a member")
            .config_epoch = epoch;
        Ok(format!(
            "migration {id} committed: {} slot(s) ({slots}) now owned by {}; current epoch {epoch}",
            slots.len(),
            self.label(&m.target)
        ))
    }

    fn register(
        &mut self,
        id: NodeId,
        name: &Option<String>,
        client_addr: &str,
        internal_addr: &str,
    ) -> Result<String, StateError> {
        if let Some(name) = name {
            check_name(name)?;
        }
        check_addr(client_addr)?;
        check_addr(internal_addr)?;
        let known = self.topology.nodes.contains_key(&id) || self.pending.contains_key(&id);
        let replaces_stale = self
            .pending
            .values()
            .any(|n| n.id != id && n.client_addr == client_addr);
        if !known && !replaces_stale && self.pending.len() >= MAX_PENDING {
            return Err(StateError::TooManyPending);
        }
        for other in self.all_nodes().filter(|n| n.id != id) {
            let is_member = self.topology.nodes.contains_key(&other.id);
            if other.client_addr == client_addr {
                if !is_member {
                    continue; // stale pending registration, replaced below
                }
                return Err(StateError::Duplicate(format!(
                    "address {client_addr} belongs to member {}; if that node is gone for good, \
                     run `emberctl forget --force {}` and then join this one",
                    other.label(),
                    other.id
                )));
            }
            if name.is_some() && other.name == *name {
                return Err(StateError::Duplicate(format!(
                    "name '{}' is already taken by node {}",
                    name.as_deref().unwrap_or_default(),
                    other.label()
                )));
            }
        }
        // A pending registration at the same address is a stale earlier incarnation
        // (e.g. restarted with an empty data dir before it was joined): replace it.
        let stale: Vec<NodeId> = self
            .pending
            .values()
            .filter(|n| n.id != id && n.client_addr == client_addr)
            .map(|n| n.id)
            .collect();
        stale.iter().for_each(|s| {
            self.pending.remove(s);
        });
        let entry = self
            .topology
            .nodes
            .get_mut(&id)
            .or_else(|| self.pending.get_mut(&id));
        match entry {
            Some(n) => {
                n.name = name.clone();
                n.client_addr = client_addr.to_string();
                n.internal_addr = internal_addr.to_string();
                Ok(format!("node {} re-registered", n.label()))
            }
            None => {
                let node = NodeInfo {
                    id,
                    name: name.clone(),
                    client_addr: client_addr.to_string(),
                    internal_addr: internal_addr.to_string(),
                    role: Role::Primary,
                    failed: false,
                    config_epoch: 0,
                };
                let summary = format!("node {} registered (pending)", node.label());
                self.pending.insert(id, node);
                Ok(summary)
            }
        }
    }

    /// Forms the cluster: the first `len / (replicas + 1)` nodes are primaries sharing
    /// the slots evenly, the others their replicas, each given to the primary with the
    /// fewest replicas on another host than its own (any primary if every one shares its
    /// host), as `redis-cli --cluster create --cluster-replicas` does.
    fn bootstrap(&mut self, queries: &[String], replicas: usize) -> Result<String, StateError> {
        if queries.is_empty() {
            return Err(StateError::Invalid(
                "bootstrap needs at least one node".into(),
            ));
        }
        let ids: Vec<NodeId> = queries
            .iter()
            .map(|q| self.resolve(q))
            .collect::<Result<_, _>>()?;
        let unique: BTreeSet<NodeId> = ids.iter().copied().collect();
        if unique.len() != ids.len() {
            return Err(StateError::Invalid("the same node is named twice".into()));
        }
        if self.topology.is_bootstrapped() {
            let members: BTreeSet<NodeId> = self.topology.nodes.keys().copied().collect();
            if members == unique {
                return Ok("already bootstrapped with these nodes; nothing to do".into());
            }
            let names: Vec<String> = self.topology.nodes.values().map(NodeInfo::label).collect();
            return Err(StateError::AlreadyBootstrapped(format!(
                "{} node(s): {}",
                names.len(),
                names.join(", ")
            )));
        }
        let primaries = ids.len() / (replicas + 1);
        if primaries == 0 {
            return Err(StateError::Invalid(format!(
                "{} node(s) cannot form primaries with {replicas} replica(s) each: give at least {}",
                ids.len(),
                replicas + 1
            )));
        }
        if primaries > usize::from(SLOT_COUNT) {
            return Err(StateError::Invalid("more nodes than slots".into()));
        }
        let (primary_ids, replica_ids) = ids.split_at(primaries);
        for (id, range) in primary_ids.iter().zip(split_evenly(primaries)) {
            let mut node = self
                .pending
                .remove(id)
                .expect("resolved, not a member, so pending");
            self.topology.current_epoch += 1;
            node.config_epoch = self.topology.current_epoch;
            node.role = Role::Primary;
            range
                .iter()
                .for_each(|s| self.topology.slots.set(s, Some(*id)));
            self.topology.nodes.insert(*id, node);
        }
        let host = |n: &NodeInfo| {
            n.client_addr
                .rsplit_once(':')
                .map_or(n.client_addr.clone(), |(h, _)| h.to_string())
        };
        // Round robin over the primaries (balanced counts), starting at the shift that
        // puts the fewest replicas on their primary's host.
        let hosts = |ids: &[NodeId]| -> Vec<String> {
            ids.iter().map(|id| host(&self.pending[id])).collect()
        };
        let (primary_hosts, replica_hosts) = (
            primary_ids
                .iter()
                .map(|id| host(&self.topology.nodes[id]))
                .collect::<Vec<_>>(),
            hosts(replica_ids),
        );
        let collisions = |shift: usize| {
            (0..replica_ids.len())
                .filter(|j| replica_hosts[*j] == primary_hosts[(j + shift) % primaries])
                .count()
        };
        let shift = (0..primaries).min_by_key(|s| collisions(*s)).unwrap_or(0);
        for (j, id) in replica_ids.iter().enumerate() {
            let mut node = self
                .pending
                .remove(id)
                .expect("resolved, not a member, so pending");
            node.role = Role::Replica {
                of: primary_ids[(j + shift) % primaries],
            };
            node.config_epoch = 0;
            self.topology.nodes.insert(*id, node);
        }
        Ok(format!(
            "bootstrapped cluster {} with {primaries} primary(ies) and {} replica(s); current epoch {}",
            self.topology.cluster_id,
            replica_ids.len(),
            self.topology.current_epoch
        ))
    }

    fn join(&mut self, query: &str, replica_of: Option<&str>) -> Result<String, StateError> {
        let id = self.resolve(query)?;
        let role = match replica_of {
            None => Role::Primary,
            Some(p) => {
                let primary = self.resolve_member(p)?;
                if primary == id {
                    return Err(StateError::Invalid("a node cannot replicate itself".into()));
                }
                if !self.topology.nodes[&primary].is_primary() {
                    return Err(StateError::Invalid(format!(
                        "{} is a replica; a replica must follow a primary",
                        self.label(&primary)
                    )));
                }
                Role::Replica { of: primary }
            }
        };
        if let Some(member) = self.topology.nodes.get(&id) {
            if member.role == role {
                return Ok(format!(
                    "node {} is already a member; nothing to do",
                    member.label()
                ));
            }
            return Err(StateError::AlreadyMember(member.label()));
        }
        if !self.topology.is_bootstrapped() {
            return Err(StateError::NotBootstrapped);
        }
        let mut node = self
            .pending
            .remove(&id)
            .expect("resolved, not a member, so pending");
        node.role = role;
        node.config_epoch = 0;
        let summary = match role {
            Role::Primary => format!("node {} joined as an empty primary", node.label()),
            Role::Replica { of } => format!(
                "node {} joined as a replica of {}",
                node.label(),
                self.label(&of)
            ),
        };
        self.topology.nodes.insert(id, node);
        Ok(summary)
    }

    fn assign(&mut self, query: &str, slots: &SlotSet) -> Result<String, StateError> {
        if slots.is_empty() {
            return Err(StateError::Invalid("no slots given".into()));
        }
        let id = self.resolve_member(query)?;
        let node = &self.topology.nodes[&id];
        if !node.is_primary() {
            return Err(StateError::Invalid(format!(
                "{} is a replica; only primaries own slots",
                node.label()
            )));
        }
        let mut owned_elsewhere: BTreeMap<NodeId, SlotSet> = BTreeMap::new();
        let mut gained = SlotSet::new();
        for s in slots.iter() {
            match self.topology.slots.owner(s) {
                Some(o) if o == id => {}
                Some(o) => owned_elsewhere.entry(o).or_default().insert(s),
                None => gained.insert(s),
            }
        }
        if let Some((owner, set)) = owned_elsewhere.iter().next() {
            return Err(StateError::Conflict(format!(
                "slots {set} are owned by {}; moving owned slots needs a live migration, \
                 which this control plane does not support yet",
                self.label(owner)
            )));
        }
        if let Some(m) = slots.iter().find_map(|s| self.topology.migration_of(s)) {
            return Err(StateError::Conflict(format!(
                "slots {:?} are being migrated",
                m.slots
            )));
        }
        if gained.is_empty() {
            return Ok(format!(
                "{} already owns these slots; nothing to do",
                self.label(&id)
            ));
        }
        self.topology.current_epoch += 1;
        let epoch = self.topology.current_epoch;
        gained
            .iter()
            .for_each(|s| self.topology.slots.set(s, Some(id)));
        self.topology
            .nodes
            .get_mut(&id)
            .expect("member")
            .config_epoch = epoch;
        Ok(format!(
            "assigned {} slot(s) ({gained}) to {}; current epoch {epoch}",
            gained.len(),
            self.label(&id)
        ))
    }

    fn forget(&mut self, query: &str, force: bool) -> Result<String, StateError> {
        let id = self.resolve(query)?;
        let label = self.label(&id);
        if self.pending.remove(&id).is_some() {
            return Ok(format!("forgot pending node {label}"));
        }
        if self.topology.replicas_of(&id).next().is_some() {
            return Err(StateError::Conflict(format!(
                "{label} has replicas; forget them (or join them elsewhere) first"
            )));
        }
        if self
            .topology
            .migrations
            .iter()
            .any(|m| m.source == id || m.target == id)
        {
            return Err(StateError::Conflict(format!(
                "{label} takes part in a migration"
            )));
        }
        let owned = self.topology.slots.slots_of(&id);
        if !owned.is_empty() && !force {
            return Err(StateError::Conflict(format!(
                "{label} still owns {} slot(s) ({owned}); move them away first, or use \
                 --force to drop them (their keys are lost)",
                owned.len()
            )));
        }
        if !owned.is_empty() {
            owned.iter().for_each(|s| self.topology.slots.set(s, None));
            self.topology.current_epoch += 1;
        }
        self.topology.nodes.remove(&id);
        Ok(if owned.is_empty() {
            format!("forgot {label}")
        } else {
            format!(
                "forgot {label}; {} slot(s) ({owned}) are now unassigned",
                owned.len()
            )
        })
    }

    /// Checks the invariants that hold after every accepted op. `Err` names the first
    /// violation found.
    pub fn consistency_check(&self) -> Result<(), String> {
        let t = &self.topology;
        for (range, owner) in t.slots.ranges() {
            let node = t
                .nodes
                .get(&owner)
                .ok_or(format!("slots {range} owned by non-member {owner}"))?;
            if !node.is_primary() {
                return Err(format!("slots {range} owned by replica {owner}"));
            }
        }
        let mut epochs = BTreeSet::new();
        for n in t.nodes.values() {
            if n.config_epoch > t.current_epoch {
                return Err(format!(
                    "{} has config epoch {} > current {}",
                    n.id, n.config_epoch, t.current_epoch
                ));
            }
            if n.is_primary() && n.config_epoch > 0 && !epochs.insert(n.config_epoch) {
                return Err(format!("config epoch {} is not unique", n.config_epoch));
            }
            if let Role::Replica { of } = n.role {
                if !t.nodes.get(&of).is_some_and(NodeInfo::is_primary) {
                    return Err(format!(
                        "replica {} follows {of}, which is not a primary member",
                        n.id
                    ));
                }
            }
        }
        let mut migrating = SlotSet::new();
        for m in &t.migrations {
            for s in m.slots.iter().flat_map(|r| r.iter()) {
                if t.slots.owner(s) != Some(m.source) {
                    return Err(format!(
                        "migration {} moves slot {s}, which its source does not own",
                        m.id
                    ));
                }
                if migrating.contains(s) {
                    return Err(format!("slot {s} is in two migrations"));
                }
                migrating.insert(s);
            }
            if !t.nodes.get(&m.target).is_some_and(NodeInfo::is_primary) {
                return Err(format!("migration {} targets a non-primary", m.id));
            }
        }
        if let Some(id) = self.pending.keys().find(|id| t.nodes.contains_key(id)) {
            return Err(format!("node {id} is both a member and pending"));
        }
        let mut addrs = BTreeSet::new();
        let mut names = BTreeSet::new();
        for n in self.all_nodes() {
            if !addrs.insert(&n.client_addr) {
                return Err(format!("address {} appears twice", n.client_addr));
            }
            if let Some(name) = &n.name {
                if !names.insert(name) {
                    return Err(format!("name {name} appears twice"));
                }
            }
        }
        Ok(())
    }
}
