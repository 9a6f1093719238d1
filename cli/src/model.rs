//! emberctl's view of the cluster in domain types: the replies of the Admin API converted
//! once (with `ember_proto::convert`), so commands and output never touch prost types.

use std::collections::BTreeMap;

use ember_core::{NodeId, NodeInfo, SlotRange, Topology};
use ember_proto::convert::{node_from_pb, parse_id, topology_from_pb};
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub connected: bool,
    /// The last topology version the node reported as applied.
    pub applied_version: u64,
    /// The node's last reported key count.
    pub key_count: u64,
    /// 0 when the node was never heard from since the control plane started.
    pub millis_since_heartbeat: u64,
}

/// The full answer of `GetState`.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub snapshot: Snapshot,
    /// Registered nodes that are not members yet.
    pub pending: Vec<NodeInfo>,
    pub observed: BTreeMap<NodeId, Observed>,
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
                        millis_since_heartbeat: st.millis_since_heartbeat,
                    },
                ))
            })
            .collect::<Result<_, ConvertError>>()?;
        Ok(Self {
            snapshot,
            pending,
            observed,
        })
    }

    /// A view of a topology alone (e.g. from a `ChangeReply`): no pending, nothing observed.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            pending: Vec::new(),
            observed: BTreeMap::new(),
        }
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

/// What `forget --force` drops with a node, computed before and reported after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub node: String,
    pub slots: Vec<SlotRange>,
    pub slot_count: usize,
    /// The node's last reported key count, if the control plane has one.
    pub key_count: Option<u64>,
}

/// A short label for a node in tables: its name, else the first 8 hex digits of its id.
pub fn short_label(n: &NodeInfo) -> String {
    n.name
        .clone()
        .unwrap_or_else(|| ember_core::topology::short_id(&n.id))
}
