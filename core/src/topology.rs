//! The cluster topology: what the control plane decides and every data node applies.
//!
//! A [`Topology`] is always handled whole: the control plane streams complete, versioned
//! snapshots (never deltas), and a node swaps its applied snapshot atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::functions::Libraries;
use crate::lineage::History;
use crate::slots::{compact, SlotRange, SlotSet, SLOT_COUNT};

/// A node's identity: a uuid the node creates once and keeps in its data dir.
pub type NodeId = Uuid;

/// Whether a member serves slots itself or follows a primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    Primary,
    Replica { of: NodeId },
}

/// One node as the control plane knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Optional human name; unique among all known nodes when set.
    pub name: Option<String>,
    /// `host:port` given to clients in MOVED / CLUSTER SLOTS / CLUSTER NODES; unique.
    pub client_addr: String,
    /// `host:port` of the node-to-node gRPC service.
    pub internal_addr: String,
    pub role: Role,
    /// Set when the node's session was silent longer than the node timeout.
    pub failed: bool,
    /// The `current_epoch` at which this primary last gained slots; 0 if it never did.
    /// Unique among primaries with a non-zero epoch, never above `current_epoch`.
    pub config_epoch: u64,
}

impl NodeInfo {
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }

    /// A short, readable label for messages: the name if set, else the id's first block.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", short_id(&self.id)),
            None => format!("{} ({})", short_id(&self.id), self.client_addr),
        }
    }
}

/// The first 8 hex digits of an id, as shown in tables.
pub fn short_id(id: &NodeId) -> String {
    id.simple().to_string()[..8].to_string()
}

/// The owner of every slot. Invariant: `owners.len() == SLOT_COUNT`, so each slot has at
/// most one owner by construction.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotMap {
    owners: Vec<Option<NodeId>>,
}

impl Default for SlotMap {
    fn default() -> Self {
        Self {
            owners: vec![None; usize::from(SLOT_COUNT)],
        }
    }
}

impl std::fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ranges()).finish()
    }
}

impl SlotMap {
    pub fn owner(&self, slot: u16) -> Option<NodeId> {
        self.owners.get(usize::from(slot)).copied().flatten()
    }

    pub fn set(&mut self, slot: u16, owner: Option<NodeId>) {
        self.owners[usize::from(slot)] = owner;
    }

    pub fn slots_of(&self, node: &NodeId) -> SlotSet {
        (0..SLOT_COUNT)
            .filter(|s| self.owner(*s).as_ref() == Some(node))
            .collect()
    }

    pub fn count_of(&self, node: &NodeId) -> usize {
        self.owners
            .iter()
            .filter(|o| o.as_ref() == Some(node))
            .count()
    }

    pub fn assigned(&self) -> usize {
        self.owners.iter().filter(|o| o.is_some()).count()
    }

    /// Maximal runs of slots with the same owner, unassigned runs left out, ascending.
    pub fn ranges(&self) -> Vec<(SlotRange, NodeId)> {
        let mut out: Vec<(SlotRange, NodeId)> = Vec::new();
        for (slot, owner) in self.owners.iter().enumerate() {
            let Some(owner) = owner else { continue };
            let slot = slot as u16;
            match out.last_mut() {
                Some((r, o)) if o == owner && r.end + 1 == slot => r.end = slot,
                _ => out.push((SlotRange::single(slot), *owner)),
            }
        }
        out
    }

    /// The ranges owned by `node`, ascending.
    pub fn ranges_of(&self, node: &NodeId) -> Vec<SlotRange> {
        compact((0..SLOT_COUNT).filter(|s| self.owner(*s).as_ref() == Some(node)))
    }
}

/// On disk and on the wire a slot map is its list of `(range, owner)` runs.
impl Serialize for SlotMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let runs: Vec<(u16, u16, NodeId)> = self
            .ranges()
            .into_iter()
            .map(|(r, o)| (r.start, r.end, o))
            .collect();
        runs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SlotMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let runs: Vec<(u16, u16, NodeId)> = Vec::deserialize(d)?;
        let mut map = SlotMap::default();
        for (start, end, owner) in runs {
            let r = SlotRange::new(start, end).map_err(serde::de::Error::custom)?;
            for s in r.iter() {
                if map.owner(s).is_some() {
                    return Err(serde::de::Error::custom(format!("slot {s} has two owners")));
                }
                map.set(s, Some(owner));
            }
        }
        Ok(map)
    }
}

/// Where a live migration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// The target copies a snapshot of the slots and then tails the source's writes.
    Streaming,
    /// The source holds writes to the slots while the last changes drain.
    Handoff,
}

/// A slot migration recorded in the topology, so that both nodes learn of it from the
/// same snapshot. Committed migrations leave the list (the slot map shows the result).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub id: Uuid,
    pub slots: Vec<SlotRange>,
    pub source: NodeId,
    pub target: NodeId,
    pub state: MigrationState,
}

/// A complete, versioned view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub cluster_id: Uuid,
    /// Strictly increases with every change; nodes ignore snapshots not newer than theirs.
    pub version: u64,
    /// Bumped by every slot-ownership change; never decreases.
    pub current_epoch: u64,
    /// As Redis's `cluster-require-full-coverage`: the cluster is down while any slot is
    /// unassigned or owned by a failed node.
    pub require_full_coverage: bool,
    /// Members only (pending registrations are not part of the topology).
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub slots: SlotMap,
    pub migrations: Vec<Migration>,
    /// Which control-plane incarnation committed which versions (see [`crate::lineage`]).
    #[serde(default)]
    pub history: History,
    /// The version at which the state was last restored (`emberctl import-state`); 0 if
    /// never. A node that applied an older version accepts the restored history.
    #[serde(default)]
    pub restored_at: u64,
    /// Function libraries (`FUNCTION LOAD`), cluster-wide configuration that every node
    /// applies with the topology.
    #[serde(default)]
    pub libraries: Libraries,
}

impl Topology {
    pub fn new(cluster_id: Uuid) -> Self {
        Self {
            cluster_id,
            version: 0,
            current_epoch: 0,
            require_full_coverage: true,
            nodes: BTreeMap::new(),
            slots: SlotMap::default(),
            migrations: Vec::new(),
            history: History::default(),
            restored_at: 0,
            libraries: Libraries::new(),
        }
    }

    /// The control-plane incarnation that committed this version (0: unknown).
    pub fn incarnation(&self) -> u64 {
        self.history.incarnation_of(self.version).unwrap_or(0)
    }

    /// True once at least one node is a member.
    pub fn is_bootstrapped(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The config epoch a node reports as its own: a replica shows its primary's.
    pub fn effective_config_epoch(&self, id: &NodeId) -> u64 {
        match self.nodes.get(id) {
            Some(NodeInfo {
                role: Role::Replica { of },
                ..
            }) => self.nodes.get(of).map_or(0, |p| p.config_epoch),
            Some(n) => n.config_epoch,
            None => 0,
        }
    }

    /// Whether the owner of `slot` is known and not failed.
    pub fn slot_ok(&self, slot: u16) -> bool {
        self.slots
            .owner(slot)
            .and_then(|o| self.nodes.get(&o))
            .is_some_and(|n| !n.failed)
    }

    /// `ok` or `fail`, as Redis reports `cluster_state`.
    pub fn state_ok(&self) -> bool {
        if !self.is_bootstrapped() {
            return false;
        }
        !self.require_full_coverage || (0..SLOT_COUNT).all(|s| self.slot_ok(s))
    }

    /// Primaries that own at least one slot (Redis's `cluster_size`).
    pub fn size(&self) -> usize {
        let mut owners: Vec<NodeId> = self.slots.ranges().into_iter().map(|(_, o)| o).collect();
        owners.sort();
        owners.dedup();
        owners.len()
    }

    /// The replicas following `primary`.
    pub fn replicas_of<'a>(&'a self, primary: &'a NodeId) -> impl Iterator<Item = &'a NodeInfo> {
        self.nodes
            .values()
            .filter(move |n| n.role == Role::Replica { of: *primary })
    }

    /// The node whose slots' data `node` holds: its primary if it is a replica, else
    /// itself.
    pub fn holder_of(&self, node: NodeId) -> NodeId {
        match self.nodes.get(&node).map(|n| n.role) {
            Some(Role::Replica { of }) => of,
            _ => node,
        }
    }

    /// The migration that moves `slot`, if any.
    pub fn migration_of(&self, slot: u16) -> Option<&Migration> {
        self.migrations
            .iter()
            .find(|m| m.slots.iter().any(|r| r.contains(slot)))
    }
}

/// Why a NODE argument did not name exactly one node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no node matches '{0}' (give an id, a unique id prefix, a name or host:port)")]
    Unknown(String),
    #[error("'{query}' is ambiguous: it matches {}", .matches.join(", "))]
    Ambiguous { query: String, matches: Vec<String> },
}

/// Finds the one node that `query` names: a full id, a unique id prefix (at least 4 hex
/// digits, dashes ignored), a name, or a client `host:port`. Exact matches (id, name,
/// address) win over prefixes.
pub fn resolve_node<'a>(
    nodes: impl Iterator<Item = &'a NodeInfo> + Clone,
    query: &str,
) -> Result<&'a NodeInfo, ResolveError> {
    let q = query.trim();
    // The 40-hex-digit form Redis clients see (CLUSTER NODES / MYID) is the uuid's 32
    // digits followed by 8 zeros.
    let q = match q.strip_suffix("00000000") {
        Some(id) if q.len() == 40 && q.chars().all(|c| c.is_ascii_hexdigit()) => id,
        _ => q,
    };
    let exact: Vec<&NodeInfo> = nodes
        .clone()
        .filter(|n| {
            n.id.to_string() == q.to_ascii_lowercase()
                || n.id.simple().to_string() == q.to_ascii_lowercase()
                || n.name.as_deref() == Some(q)
                || n.client_addr == q
        })
        .collect();
    let candidates = if exact.is_empty() {
        let prefix = q.replace('-', "").to_ascii_lowercase();
        if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            vec![]
        } else {
            nodes
                .filter(|n| n.id.simple().to_string().starts_with(&prefix))
                .collect()
        }
    } else {
        exact
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(ResolveError::Unknown(q.to_string())),
        many => Err(ResolveError::Ambiguous {
            query: q.to_string(),
            matches: many.iter().map(|n| n.label()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, name: Option<&str>, addr: &str) -> NodeInfo {
        NodeInfo {
            id: id.parse().unwrap(),
            name: name.map(String::from),
            client_addr: addr.into(),
            internal_addr: addr.into(),
            role: Role::Primary,
            failed: false,
            config_epoch: 0,
        }
    }

    #[test]
    fn resolves_by_id_prefix_name_and_address() {
        let nodes = [
            node(
                "aaaa1111-0000-0000-0000-000000000000",
                Some("n1"),
                "127.0.0.1:7001",
            ),
            node(
                "aaaa2222-0000-0000-0000-000000000000",
                None,
                "127.0.0.1:7002",
            ),
        ];
        let r = |q| resolve_node(nodes.iter(), q).map(|n| n.client_addr.clone());
        assert_eq!(r("n1").unwrap(), "127.0.0.1:7001");
        assert_eq!(r("aaaa2").unwrap(), "127.0.0.1:7002");
        assert_eq!(r("127.0.0.1:7002").unwrap(), "127.0.0.1:7002");
        assert_eq!(
            r("aaaa2222-0000-0000-0000-000000000000").unwrap(),
            "127.0.0.1:7002"
        );
        assert!(matches!(r("aaaa"), Err(ResolveError::Ambiguous { .. })));
        assert!(matches!(r("zzz"), Err(ResolveError::Unknown(_))));
        assert!(matches!(r("aa"), Err(ResolveError::Unknown(_))));
    }

    #[test]
    fn slot_map_serializes_as_runs_and_refuses_double_owners() {
        let a: NodeId = Uuid::from_u128(1);
        let b: NodeId = Uuid::from_u128(2);
        let mut map = SlotMap::default();
        (0..100).for_each(|s| map.set(s, Some(a)));
        (100..200).for_each(|s| map.set(s, Some(b)));
        let json = serde_json::to_string(&map).unwrap();
        let back: SlotMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
        let bad = format!(r#"[[0,10,"{a}"],[5,6,"{b}"]]"#);
        assert!(serde_json::from_str::<SlotMap>(&bad).is_err());
    }
}
