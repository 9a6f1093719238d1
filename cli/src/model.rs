//! emberctl's view of the cluster in domain types: the replies of the Admin API converted
//! once (with `ember_proto::convert`), so commands and output never touch prost types.

use std::collections::BTreeMap;

use ember_core::{Migration, NodeId, NodeInfo, SlotRange, Topology};
use ember_proto::convert::{node_from_pb, parse_id, range_from_pb, topology_from_pb};
use ember_proto::{pb, ConvertError};
use uuid::Uuid;

/// A topology snapshot, which may come from a control plane that has no cluster yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` until the control plane has a cluster id (the domain type needs one, so
    /// `topology.cluster_id` is then the nil uuid).
    pub cluster_id: Option<Uuid>,
    pub topology: Topology,
}

impl Snapshot {
    pub fn from_pb(t: Option<&pb::Topology>) -> Result<Self, ConvertError> {
        let Some(t) = t else {
            return Ok(Self {
                cluster_id: None,
                topology: Topology::new(Uuid::nil()),
            });
        };
        if t.cluster_id.is_empty() {
            let t = pb::Topology {
                cluster_id: Uuid::nil().to_string(),
                ..t.clone()
            };
            return Ok(Self {
                cluster_id: None,
                topology: topology_from_pb(&t)?,
            });
        }
        let topology = topology_from_pb(t)?;
        Ok(Self {
            cluster_id: Some(topology.cluster_id),
            topology,
        })
    }

    /// `ok` or `fail`, as Redis's `cluster_state`.
    pub fn state(&self) -> &'static str {
        if self.topology.state_ok() {
            "ok"
        } else {
            "fail"
        }
    }

    /// Slots whose owner is a live member.
    pub fn slots_ok(&self) -> usize {
        (0..ember_core::SLOT_COUNT)
            .filter(|s| self.topology.slot_ok(*s))
            .count()
    }
}

/// What the control plane observes of a node's session (not part of the topology).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub connected: bool,
    /// The last topology version the node reported as applied.
    pub applied_version: u64,
    /// The node's last reported key count.
    pub key_count: u64,
    /// Of those, keys in slots the topology does not give it (loaded from a snapshot
    /// after the slot moved on).
    pub orphaned_keys: u64,
    /// 0 when the node was never heard from since the control plane started.
    pub millis_since_heartbeat: u64,
    /// Its replication position as of its last heartbeat.
    pub repl: Option<Replication>,
    /// A replica: why it could not be promoted now (None: it could).
    pub not_promotable: Option<String>,
}

/// A node's replication position (`ReplicationStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    pub offset: u64,
    /// A replica: its link to the primary is up, or how long it has been down.
    pub link_up: bool,
    pub link_down_millis: u64,
    /// A replica whose full sync is running.
    pub syncing: bool,
    /// A primary: replicas streaming from it.
    pub replicas: u32,
}

/// Progress of a running migration, as last reported by its target node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Keys copied so far.
    pub keys: u64,
    /// Bytes copied so far.
    pub bytes: u64,
    /// Keys in the slots when the snapshot started; 0 while unknown.
    pub keys_total: u64,
    /// Since the migration started.
    pub millis: u64,
}

/// A migration that ended (the control plane keeps the last 100 since it started).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub migration: Migration,
    /// False: aborted, and the source kept every slot and key.
    pub committed: bool,
    /// Why it was aborted (empty when committed).
    pub reason: String,
    pub keys: u64,
    pub bytes: u64,
    /// From start to end.
    pub millis: u64,
}

/// The full answer of `GetState`.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub snapshot: Snapshot,
    /// Registered nodes that are not members yet.
    pub pending: Vec<NodeInfo>,
    pub observed: BTreeMap<NodeId, Observed>,
    /// Running migrations' last reported progress, by migration id.
    pub progress: BTreeMap<Uuid, Progress>,
    /// Recently finished migrations, oldest first.
    pub finished: Vec<Finished>,
    /// Why the control plane refuses to publish (its state is behind the nodes').
    pub alarm: Option<String>,
    /// Why changes cannot be persisted right now.
    pub persistence_error: Option<String>,
    /// Nodes of other clusters trying to connect.
    pub foreign: Vec<Foreign>,
    /// Where the state is kept, and which control-plane process leads.
    pub control_plane: ControlPlane,
}

/// The control plane's store and leader, as `GetState` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlPlane {
    pub store: String,
    /// The leader's URL ("": the one process of a file store).
    pub leader: String,
    pub term: i64,
}

/// A node of a cluster the control plane does not run, that tried to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    pub node_id: String,
    pub cluster_id: String,
    pub client_addr: String,
    pub applied_version: u64,
}

/// Converts one migration record with the shared conversion (the proto crate only
/// exposes it as part of a topology, so wrap it in an otherwise empty one).
fn migration_from_pb(m: &pb::Migration) -> Result<Migration, ConvertError> {
    let t = pb::Topology {
        cluster_id: Uuid::nil().to_string(),
        migrations: vec![m.clone()],
        ..Default::default()
    };
    Ok(topology_from_pb(&t)?
        .migrations
        .pop()
        .expect("one migration in, one out"))
}

impl ClusterView {
    pub fn from_pb(s: &pb::ClusterState) -> Result<Self, ConvertError> {
        let snapshot = Snapshot::from_pb(s.topology.as_ref())?;
        let pending = s
            .pending
            .iter()
            .map(node_from_pb)
            .collect::<Result<_, _>>()?;
        let observed = s
            .status
            .iter()
            .map(|st| {
                Ok((
                    parse_id("node id", &st.node_id)?,
                    Observed {
                        connected: st.connected,
                        applied_version: st.applied_version,
                        key_count: st.key_count,
                        orphaned_keys: st.orphaned_keys,
                        millis_since_heartbeat: st.millis_since_heartbeat,
                        repl: st.repl.as_ref().map(|r| Replication {
                            offset: r.offset,
                            link_up: r.link_up,
                            link_down_millis: r.link_down_millis,
                            syncing: r.syncing,
                            replicas: r.replicas,
                        }),
                        not_promotable: (!st.not_promotable.is_empty())
                            .then(|| st.not_promotable.clone()),
                    },
                ))
            })
            .collect::<Result<_, ConvertError>>()?;
        let progress = s
            .progress
            .iter()
            .map(|p| {
                Ok((
                    parse_id("migration id", &p.id)?,
                    Progress {
                        keys: p.keys,
                        bytes: p.bytes,
                        keys_total: p.keys_total,
                        millis: p.millis,
                    },
                ))
            })
            .collect::<Result<_, ConvertError>>()?;
        let finished = s
            .finished
            .iter()
            .filter_map(|f| f.migration.as_ref().map(|m| (f, m)))
            .map(|(f, m)| {
                Ok(Finished {
                    migration: migration_from_pb(m)?,
                    committed: f.committed,
                    reason: f.reason.clone(),
                    keys: f.keys,
                    bytes: f.bytes,
                    millis: f.millis,
                })
            })
            .collect::<Result<_, ConvertError>>()?;
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Self {
            snapshot,
            pending,
            observed,
            progress,
            finished,
            alarm: some(&s.alarm),
            persistence_error: some(&s.persistence_error),
            control_plane: ControlPlane {
                store: s.store.clone(),
                leader: s.leader.clone(),
                term: s.term,
            },
            foreign: s
                .foreign
                .iter()
                .map(|f| Foreign {
                    node_id: f.node_id.clone(),
                    cluster_id: f.cluster_id.clone(),
                    client_addr: f.client_addr.clone(),
                    applied_version: f.applied_version,
                })
                .collect(),
        })
    }

    /// A view of a topology alone (e.g. from a `ChangeReply`): no pending, nothing observed.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            pending: Vec::new(),
            observed: BTreeMap::new(),
            progress: BTreeMap::new(),
            finished: Vec::new(),
            alarm: None,
            persistence_error: None,
            foreign: Vec::new(),
            control_plane: ControlPlane::default(),
        }
    }

    /// How migration `id` ended, if the control plane still remembers it.
    pub fn finished_of(&self, id: &Uuid) -> Option<&Finished> {
        self.finished.iter().rev().find(|f| &f.migration.id == id)
    }

    /// Members then pending nodes.
    pub fn all_nodes(&self) -> impl Iterator<Item = &NodeInfo> + Clone {
        self.snapshot
            .topology
            .nodes
            .values()
            .chain(self.pending.iter())
    }
}

/// The result of a mutating request.
#[derive(Clone, Debug)]
pub struct Change {
    /// The state after the change (durably persisted by the control plane).
    pub snapshot: Snapshot,
    /// False when the request was already in effect.
    pub changed: bool,
    /// One human line from the control plane.
    pub summary: String,
}

impl Change {
    pub fn from_pb(r: &pb::ChangeReply) -> Result<Self, ConvertError> {
        Ok(Self {
            snapshot: Snapshot::from_pb(r.topology.as_ref())?,
            changed: r.changed,
            summary: r.summary.clone(),
        })
    }
}

/// One move of a plan: `slots` go from `source` to `target` by one live migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub source: NodeId,
    pub target: NodeId,
    /// Compacted, ascending.
    pub slots: Vec<SlotRange>,
}

impl Move {
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(SlotRange::len).sum()
    }
}

/// The answer of `PlanMoves`: the fewest moves, and the state they were computed from.
#[derive(Clone, Debug)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub snapshot: Snapshot,
}

impl Plan {
    pub fn from_pb(p: &pb::Plan) -> Result<Self, ConvertError> {
        let moves = p
            .moves
            .iter()
            .map(|m| {
                Ok(Move {
                    source: parse_id("move source", &m.source_id)?,
                    target: parse_id("move target", &m.target_id)?,
                    slots: ember_core::SlotSet::from_ranges(
                        &m.slots
                            .iter()
                            .map(range_from_pb)
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                    .ranges(),
                })
            })
            .collect::<Result<_, ConvertError>>()?;
        Ok(Self {
            moves,
            snapshot: Snapshot::from_pb(p.topology.as_ref())?,
        })
    }
}

/// What `forget --force` drops with a node, computed before and reported after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub node: String,
    pub slots: Vec<SlotRange>,
    pub slot_count: usize,
    /// The node's last reported key count, if the node reported one since the control
    /// plane started (before that the control plane's figure is a placeholder 0).
    pub key_count: Option<u64>,
    /// How long before the request that report came (the node may have changed since:
    /// a dead node's count is from before it died).
    pub key_count_age_ms: Option<u64>,
}

/// A short label for a node in tables: its name, else the first 8 hex digits of its id.
pub fn short_label(n: &NodeInfo) -> String {
    n.name
        .clone()
        .unwrap_or_else(|| ember_core::topology::short_id(&n.id))
}
