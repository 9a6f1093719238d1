//! Conversions between prost messages and `ember_core` domain types.
//!
//! Incoming messages are validated here (ids parse, slot ranges are in bounds, no slot
//! has two owners), so a malformed message becomes a `ConvertError`, never a bad state.

use std::collections::BTreeMap;

use ember_core::{
    Migration, MigrationState, NodeId, NodeInfo, Role, SlotMap, SlotRange, SlotSet, Topology,
};

use ember_core::functions::{FunctionInfo, Library, RestorePolicy};
use ember_core::lineage::{History, Stretch};

use crate::pb;

/// A message that does not describe a valid domain value.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid {what} '{value}': not a UUID")]
    BadId { what: &'static str, value: String },
    #[error("invalid slot range: {0}")]
    BadSlots(#[from] ember_core::slots::SlotError),
    #[error("slot {0} has two owners in the snapshot")]
    DoubleOwner(u16),
    #[error("slot run names node #{0}, which is not in the snapshot")]
    UnknownOwner(u32),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("undecodable snapshot: {0}")]
    Decode(String),
}

impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

pub fn parse_id(what: &'static str, value: &str) -> Result<NodeId, ConvertError> {
    value.parse().map_err(|_| ConvertError::BadId {
        what,
        value: value.to_string(),
    })
}

pub fn range_to_pb(r: &SlotRange) -> pb::SlotRange {
    pb::SlotRange {
        start: r.start.into(),
        end: r.end.into(),
    }
}

pub fn range_from_pb(r: &pb::SlotRange) -> Result<SlotRange, ConvertError> {
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let (start, end) = (clamp(r.start), clamp(r.end));
    if u32::from(start) != r.start {
        return Err(ember_core::slots::SlotError::OutOfRange(r.start.into()).into());
    }
    if u32::from(end) != r.end {
        return Err(ember_core::slots::SlotError::OutOfRange(r.end.into()).into());
    }
    Ok(SlotRange::new(start, end)?)
}

/// A set of slots from its ranges, each checked.
pub fn slots_from_pb(ranges: &[pb::SlotRange]) -> Result<SlotSet, ConvertError> {
    let ranges = ranges
        .iter()
        .map(range_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SlotSet::from_ranges(&ranges))
}

pub fn node_to_pb(n: &NodeInfo) -> pb::Node {
    let (role, primary_id) = match n.role {
        Role::Primary => (pb::Role::Primary, String::new()),
        Role::Replica { of } => (pb::Role::Replica, of.to_string()),
    };
    pb::Node {
        id: n.id.to_string(),
        name: n.name.clone().unwrap_or_default(),
        client_addr: n.client_addr.clone(),
        internal_addr: n.internal_addr.clone(),
        role: role.into(),
        primary_id,
        failed: n.failed,
        config_epoch: n.config_epoch,
    }
}

pub fn node_from_pb(n: &pb::Node) -> Result<NodeInfo, ConvertError> {
    let role = match n.role() {
        pb::Role::Replica => Role::Replica {
            of: parse_id("primary id", &n.primary_id)?,
        },
        _ => Role::Primary,
    };
    Ok(NodeInfo {
        id: parse_id("node id", &n.id)?,
        name: (!n.name.is_empty()).then(|| n.name.clone()),
        client_addr: n.client_addr.clone(),
        internal_addr: n.internal_addr.clone(),
        role,
        failed: n.failed,
        config_epoch: n.config_epoch,
    })
}

pub fn migration_to_pb(m: &Migration) -> pb::Migration {
    pb::Migration {
        id: m.id.to_string(),
        slots: m.slots.iter().map(range_to_pb).collect(),
        source_id: m.source.to_string(),
        target_id: m.target.to_string(),
        state: match m.state {
            MigrationState::Streaming => pb::MigrationState::Streaming,
            MigrationState::Handoff => pb::MigrationState::Handoff,
        }
        .into(),
    }
}

pub fn topology_to_pb(t: &Topology) -> pb::Topology {
    pb::Topology {
        cluster_id: t.cluster_id.to_string(),
        version: t.version,
        current_epoch: t.current_epoch,
        require_full_coverage: t.require_full_coverage,
        nodes: t.nodes.values().map(node_to_pb).collect(),
        slots: {
            let index: BTreeMap<NodeId, u32> = t
                .nodes
                .keys()
                .enumerate()
                .map(|(i, id)| (*id, i as u32))
                .collect();
            t.slots
                .ranges()
                .into_iter()
                .map(|(r, o)| pb::SlotOwner {
                    start: r.start.into(),
                    end: r.end.into(),
                    node: index[&o],
                })
                .collect()
        },
        migrations: t.migrations.iter().map(migration_to_pb).collect(),
        history: t
            .history
            .0
            .iter()
            .map(|s| pb::HistoryStretch {
                from_version: s.from_version,
                incarnation: s.incarnation,
            })
            .collect(),
        restored_at: t.restored_at,
        libraries: t.libraries.values().map(library_to_pb).collect(),
    }
}

pub fn restore_policy_to_pb(p: RestorePolicy) -> pb::restore_libraries_request::Policy {
    use pb::restore_libraries_request::Policy;
    match p {
        RestorePolicy::Append => Policy::Append,
        RestorePolicy::Replace => Policy::Replace,
        RestorePolicy::Flush => Policy::Flush,
    }
}

pub fn restore_policy_from_pb(p: pb::restore_libraries_request::Policy) -> RestorePolicy {
    use pb::restore_libraries_request::Policy;
    match p {
        Policy::Append => RestorePolicy::Append,
        Policy::Replace => RestorePolicy::Replace,
        Policy::Flush => RestorePolicy::Flush,
    }
}

pub fn library_to_pb(l: &Library) -> pb::Library {
    pb::Library {
        name: l.name.clone(),
        code: l.code.clone(),
        functions: l
            .functions
            .iter()
            .map(|f| pb::FunctionInfo {
                name: f.name.clone(),
                description: f.description.clone(),
                flags: f.flags.clone(),
            })
            .collect(),
    }
}

pub fn library_from_pb(l: &pb::Library) -> Library {
    Library {
        name: l.name.clone(),
        code: l.code.clone(),
        functions: l
            .functions
            .iter()
            .map(|f| FunctionInfo {
                name: f.name.clone(),
                description: f.description.clone(),
                flags: f.flags.clone(),
            })
            .collect(),
    }
}

pub fn topology_from_pb(t: &pb::Topology) -> Result<Topology, ConvertError> {
    let nodes: BTreeMap<NodeId, NodeInfo> = t
        .nodes
        .iter()
        .map(|n| node_from_pb(n).map(|n| (n.id, n)))
        .collect::<Result<_, _>>()?;
    let ids: Vec<NodeId> = t
        .nodes
        .iter()
        .map(|n| parse_id("node id", &n.id))
        .collect::<Result<_, _>>()?;
    let mut slots = SlotMap::default();
    for run in &t.slots {
        let r = range_from_pb(&pb::SlotRange {
            start: run.start,
            end: run.end,
        })?;
        let owner = *ids
            .get(run.node as usize)
            .ok_or(ConvertError::UnknownOwner(run.node))?;
        for s in r.iter() {
            if slots.owner(s).is_some() {
                return Err(ConvertError::DoubleOwner(s));
            }
            slots.set(s, Some(owner));
        }
    }
    let migrations = t
        .migrations
        .iter()
        .map(|m| {
            Ok(Migration {
                id: parse_id("migration id", &m.id)?,
                slots: m
                    .slots
                    .iter()
                    .map(range_from_pb)
                    .collect::<Result<_, _>>()?,
                source: parse_id("migration source", &m.source_id)?,
                target: parse_id("migration target", &m.target_id)?,
                state: match m.state() {
                    pb::MigrationState::Handoff => MigrationState::Handoff,
                    _ => MigrationState::Streaming,
                },
            })
        })
        .collect::<Result<_, ConvertError>>()?;
    Ok(Topology {
        cluster_id: parse_id("cluster id", &t.cluster_id)?,
        version: t.version,
        current_epoch: t.current_epoch,
        require_full_coverage: t.require_full_coverage,
        nodes,
        slots,
        migrations,
        history: History(
            t.history
                .iter()
                .map(|s| Stretch {
                    from_version: s.from_version,
                    incarnation: s.incarnation,
                })
                .collect(),
        ),
        restored_at: t.restored_at,
        libraries: t
            .libraries
            .iter()
            .map(|l| (l.name.clone(), library_from_pb(l)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_policies_round_trip() {
        for p in [
            RestorePolicy::Append,
            RestorePolicy::Replace,
            RestorePolicy::Flush,
        ] {
            assert_eq!(restore_policy_from_pb(restore_policy_to_pb(p)), p);
        }
    }
    use uuid::Uuid;

    #[test]
    fn topology_round_trips_and_rejects_double_owners() {
        let mut t = Topology::new(Uuid::new_v4());
        let id = Uuid::new_v4();
        t.nodes.insert(
            id,
            NodeInfo {
                id,
                name: Some("a".into()),
                client_addr: "127.0.0.1:7001".into(),
                internal_addr: "127.0.0.1:17001".into(),
                role: Role::Primary,
                failed: false,
                config_epoch: 1,
            },
        );
        (0..100).for_each(|s| t.slots.set(s, Some(id)));
        t.version = 3;
        t.history.record(1, 77);
        t.restored_at = 2;
        let pb = topology_to_pb(&t);
        assert_eq!(topology_from_pb(&pb).unwrap(), t);

        let mut bad = pb.clone();
        bad.slots.push(pb::SlotOwner {
            start: 50,
            end: 60,
            node: 0,
        });
        assert!(matches!(
            topology_from_pb(&bad),
            Err(ConvertError::DoubleOwner(50))
        ));
        let mut bad = pb.clone();
        bad.slots[0].end = 20000;
        assert!(topology_from_pb(&bad).is_err());
        let mut bad = pb;
        bad.slots[0].node = 7;
        assert!(matches!(
            topology_from_pb(&bad),
            Err(ConvertError::UnknownOwner(7))
        ));
    }
}
