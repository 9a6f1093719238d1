//! Restoring the control plane's state (`emberctl import-state`): pure, like the rest of
//! the state machine.
//!
//! A backup is older than what the nodes hold, so a restore never trusts its slot map
//! over the nodes' word: each slot goes to the node that reports owning it with the
//! highest config epoch (the latest owner, as in Redis Cluster's epoch rule), and only
//! slots nobody claims keep the backup's owner. Versions and epochs are set above every
//! one seen (backup, current state, reports), the history starts anew at the restored
//! version, and migrations in flight are dropped (their sources keep every key). Nodes
//! thus accept the result as an explicit restore ([`ember_core::lineage`]), and no node
//! is asked to give up a slot it holds the latest copy of: a restore never drops a key.

use std::collections::{BTreeMap, BTreeSet};

use ember_core::lineage::History;
use ember_core::{NodeId, NodeInfo, Role, SlotSet, SLOT_COUNT};
use uuid::Uuid;

use crate::state::{ClusterState, StateError};

/// What a node said about itself in its last hello: evidence for a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    pub id: NodeId,
    /// The cluster of the node's applied topology (`None`: it never applied one).
    pub cluster_id: Option<Uuid>,
    pub name: Option<String>,
    pub client_addr: String,
    pub internal_addr: String,
    pub applied_version: u64,
    /// The control-plane incarnation that committed `applied_version` (0: unknown).
    pub incarnation: u64,
    pub current_epoch: u64,
    pub config_epoch: u64,
    /// The slots the node owns in its applied topology.
    pub owned: SlotSet,
}

/// What `emberctl import-state` without a file restores: the current state (re-adopted
/// after an alarm), or, on a control plane that lost its state, the one cluster whose
/// nodes report to it, rebuilt from their reports.
pub fn base_without_backup(
    current: &ClusterState,
    reports: &[NodeReport],
) -> Result<ClusterState, StateError> {
    if current.topology.is_bootstrapped() {
        return Ok(current.clone());
    }
    let clusters: BTreeSet<Uuid> = reports.iter().filter_map(|r| r.cluster_id).collect();
    match clusters.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => Ok(ClusterState::new(*one)),
        [] => Err(StateError::Conflict(
            "nothing to import: this control plane has no cluster and no node of one has \
             reported to it; give a backup file, or bootstrap a new cluster"
                .into(),
        )),
        many => Err(StateError::Conflict(format!(
            "nodes of {} clusters report to this control plane ({}); give the backup file \
             of the one to restore",
            many.len(),
            many.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The state after restoring `backup` onto `current`, given what the nodes reported.
pub fn restore(
    current: &ClusterState,
    backup: &ClusterState,
    reports: &[NodeReport],
) -> Result<(ClusterState, String), StateError> {
    let cluster_id = backup.topology.cluster_id;
    if current.topology.is_bootstrapped() && current.topology.cluster_id != cluster_id {
        return Err(StateError::Conflict(format!(
            "this control plane runs cluster {} with {} member(s); refusing to replace it \
             with a backup of cluster {cluster_id}",
            current.topology.cluster_id,
            current.topology.nodes.len()
        )));
    }
    let reports: Vec<&NodeReport> = reports
        .iter()
        .filter(|r| r.cluster_id == Some(cluster_id))
        .collect();
    let mut next = backup.clone();
    let t = &mut next.topology;

    // Every node that claims slots is a primary member, whatever the backup says (it may
    // predate the node's join).
    for r in reports.iter().filter(|r| !r.owned.is_empty()) {
        let known = t.nodes.remove(&r.id).or_else(|| next.pending.remove(&r.id));
        let mut node = known.unwrap_or_else(|| NodeInfo {
            id: r.id,
            name: r.name.clone(),
            client_addr: r.client_addr.clone(),
            internal_addr: r.internal_addr.clone(),
            role: Role::Primary,
            failed: false,
            config_epoch: 0,
        });
        node.role = Role::Primary;
        node.client_addr = r.client_addr.clone();
        node.internal_addr = r.internal_addr.clone();
        t.nodes.insert(r.id, node);
    }
    // Each slot to its latest claimed owner; unclaimed slots keep the backup's owner,
    // unless that owner reported and does not claim it.
    let claim = |slot: u16| {
        reports
            .iter()
            .filter(|r| r.owned.contains(slot))
            .max_by_key(|r| (r.config_epoch, r.applied_version, r.id))
            .map(|r| r.id)
    };
    let reported: BTreeMap<NodeId, &&NodeReport> = reports.iter().map(|r| (r.id, r)).collect();
    let mut moved = 0usize;
    for slot in 0..SLOT_COUNT {
        let before = t.slots.owner(slot);
        let owner = claim(slot).or(before.filter(|o| !reported.contains_key(o)));
        if owner != before {
            moved += 1;
        }
        t.slots.set(slot, owner);
    }
    t.migrations.clear();
    for n in t.nodes.values_mut() {
        n.failed = false;
    }
    // Replicas of nodes that are no longer primaries wait in pending for a new `join`.
    let orphans: Vec<NodeId> = t
        .nodes
        .values()
        .filter(|n| matches!(n.role, Role::Replica { of } if !t.nodes.get(&of).is_some_and(NodeInfo::is_primary)))
        .map(|n| n.id)
        .collect();
    for id in orphans {
        let mut n = t.nodes.remove(&id).expect("listed");
        n.role = Role::Primary;
        next.pending.insert(id, n);
    }

    // Epochs above every one seen; owners get fresh, unique config epochs in the order of
    // their old ones.
    let seen_epoch = reports
        .iter()
        .map(|r| r.current_epoch.max(r.config_epoch))
        .chain([
            current.topology.current_epoch,
            backup.topology.current_epoch,
        ])
        .max()
        .unwrap_or(0);
    let mut owners: Vec<(u64, NodeId)> = t
        .nodes
        .values()
        .filter(|n| n.is_primary() && !t.slots.slots_of(&n.id).is_empty())
        .map(|n| {
            let reported = reported.get(&n.id).map_or(0, |r| r.config_epoch);
            (n.config_epoch.max(reported), n.id)
        })
        .collect();
    owners.sort();
    let mut epoch = seen_epoch;
    for n in t.nodes.values_mut() {
        n.config_epoch = 0;
    }
    for (_, id) in &owners {
        epoch += 1;
        t.nodes.get_mut(id).expect("owner is a member").config_epoch = epoch;
    }
    t.current_epoch = epoch.max(seen_epoch + 1);

    let seen_version = reports
        .iter()
        .map(|r| r.applied_version)
        .chain([current.version(), backup.version()])
        .max()
        .unwrap_or(0);
    t.version = seen_version + 1;
    t.restored_at = t.version;
    t.history = History::default();

    // Pending registrations made since the backup stay, unless they clash.
    for (id, n) in &current.pending {
        let clashes = next.all_nodes().any(|o| {
            o.id == *id || o.client_addr == n.client_addr || (n.name.is_some() && o.name == n.name)
        });
        if !clashes {
            next.pending.insert(*id, n.clone());
        }
    }
    next.consistency_check().map_err(|reason| {
        StateError::Invalid(format!(
            "the restored state would be inconsistent: {reason}"
        ))
    })?;
    let summary = format!(
        "restored cluster {cluster_id} at version {} (current epoch {}): {} member(s), {} \
         node report(s) used, {moved} slot(s) given to the owner the nodes report",
        next.version(),
        next.topology.current_epoch,
        next.topology.nodes.len(),
        reports.len()
    );
    Ok((next, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u128, epoch: u64) -> NodeInfo {
        NodeInfo {
            id: Uuid::from_u128(id),
            name: Some(format!("n{id}")),
            client_addr: format!("127.0.0.1:{}", 7000 + id),
            internal_addr: format!("127.0.0.1:{}", 17000 + id),
            role: Role::Primary,
            failed: false,
            config_epoch: epoch,
        }
    }

    fn report(
        n: &NodeInfo,
        cluster: Uuid,
        version: u64,
        epoch: u64,
        owned: &[(u16, u16)],
    ) -> NodeReport {
        let mut set = SlotSet::new();
        for &(a, b) in owned {
            (a..=b).for_each(|s| set.insert(s));
        }
        NodeReport {
            id: n.id,
            cluster_id: Some(cluster),
            name: n.name.clone(),
            client_addr: n.client_addr.clone(),
            internal_addr: n.internal_addr.clone(),
            applied_version: version,
            incarnation: 5,
            current_epoch: epoch,
            config_epoch: epoch,
            owned: set,
        }
    }

    #[test]
    fn without_a_backup_the_base_is_the_current_state_or_the_one_reporting_cluster() {
        let empty = ClusterState::new(Uuid::from_u128(99));
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(matches!(
            base_without_backup(&empty, &[]),
            Err(StateError::Conflict(_))
        ));
        let n1 = node(1, 1);
        let one = [report(&n1, a, 7, 1, &[(0, 10)])];
        let base = base_without_backup(&empty, &one).unwrap();
        assert_eq!(base.topology.cluster_id, a);
        let two = [one[0].clone(), report(&node(2, 1), b, 3, 1, &[])];
        let Err(StateError::Conflict(msg)) = base_without_backup(&empty, &two) else {
            panic!("two clusters must be refused");
        };
        assert!(
            msg.contains(&a.to_string()) && msg.contains(&b.to_string()),
            "{msg}"
        );
    }

    #[test]
    fn slots_follow_the_latest_owner_and_everything_moves_up() {
        let cluster = Uuid::from_u128(9);
        let mut backup = ClusterState::new(cluster);
        let (a, b) = (node(1, 1), node(2, 2));
        backup.topology.nodes.insert(a.id, a.clone());
        backup.topology.nodes.insert(b.id, b.clone());
        (0..8192).for_each(|s| backup.topology.slots.set(s, Some(a.id)));
        (8192..16384).for_each(|s| backup.topology.slots.set(s, Some(b.id)));
        backup.topology.current_epoch = 2;
        backup.topology.version = 3;
        // Since the backup: b took 0-999 at epoch 7 (version 11), c joined and owns
        // nothing it reports... and a node of another cluster says hello.
        let reports = vec![
            report(&a, cluster, 11, 1, &[(1000, 8191)]),
            report(&b, cluster, 11, 7, &[(0, 999), (8192, 16383)]),
            report(&node(4, 50), Uuid::from_u128(10), 99, 50, &[(0, 16383)]),
        ];
        let current = backup.clone();
        let (next, summary) = restore(&current, &backup, &reports).unwrap();
        assert!(summary.contains("1000 slot(s)"), "{summary}");
        let t = &next.topology;
        assert_eq!(t.slots.owner(0), Some(b.id));
        assert_eq!(t.slots.owner(999), Some(b.id));
        assert_eq!(t.slots.owner(1000), Some(a.id));
        assert_eq!(t.version, 12);
        assert_eq!(t.restored_at, 12);
        assert!(t.current_epoch > 7);
        assert!(t.nodes.values().all(|n| n.config_epoch > 7));
        assert_eq!(next.consistency_check(), Ok(()));
        // The reported owners accept it: each keeps its slots and epochs only go up.
        for (r, applied_epoch) in [(&reports[0], 1), (&reports[1], 7)] {
            let mut applied = backup.topology.clone();
            applied.version = 11;
            applied.current_epoch = 7;
            for s in 0..SLOT_COUNT {
                applied.slots.set(
                    s,
                    if reports[1].owned.contains(s) {
                        Some(b.id)
                    } else {
                        Some(a.id)
                    },
                );
            }
            applied.nodes.get_mut(&r.id).unwrap().config_epoch = applied_epoch;
            applied.history.record(1, 5);
            assert_eq!(
                ember_core::lineage::check_successor(&applied, t, r.id),
                Ok(())
            );
        }
    }

    #[test]
    fn refuses_to_replace_another_running_cluster() {
        let mut current = ClusterState::new(Uuid::from_u128(1));
        current
            .topology
            .nodes
            .insert(Uuid::from_u128(3), node(3, 1));
        (0..SLOT_COUNT).for_each(|s| current.topology.slots.set(s, Some(Uuid::from_u128(3))));
        let backup = ClusterState::new(Uuid::from_u128(2));
        assert!(matches!(
            restore(&current, &backup, &[]),
            Err(StateError::Conflict(_))
        ));
    }
}
