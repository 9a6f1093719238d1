//! `emberctl watch`: follow the Watch stream, one line per topology version saying what
//! changed since the previous one. Snapshots are complete, so the description is a diff
//! of two snapshots computed here ([`describe_changes`], pure and tested).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ember_core::slots::compact;
use ember_core::topology::short_id;
use ember_core::{NodeId, Role, SLOT_COUNT};

use crate::client::CliError;
use crate::commands::Ctx;
use crate::model::{short_label, Snapshot};
use crate::output::{self, ranges_cell, WatchDoc};

/// Longest pause between reconnection attempts after the stream broke.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let mut prev: Option<Snapshot> = None;
    let mut backoff = Duration::from_millis(500);
    // The first connection must work (exit 3 otherwise); after that a broken stream is
    // retried, since operators watch precisely while things restart.
    let mut stream = ctx.connect().await?.watch().await?;
    loop {
        let reason = loop {
            match stream.next().await {
                Ok(Some(snap)) => {
                    backoff = Duration::from_millis(500);
                    let stale = prev.as_ref().is_some_and(|p| {
                        p.cluster_id == snap.cluster_id
                            && p.topology.version >= snap.topology.version
                    });
                    if !stale {
                        print_version(ctx, prev.as_ref(), &snap);
                        prev = Some(snap);
                    }
                }
                Ok(None) => break "the control plane closed the watch stream".to_string(),
                Err(e @ (CliError::Unreachable { .. } | CliError::Timeout { .. })) => {
                    break e.to_string()
                }
                Err(e) => return Err(e),
            }
        };
        eprintln!("warning: {reason}; reconnecting");
        stream = loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let attempt = async { ctx.connect().await?.watch().await };
            match attempt.await {
                Ok(stream) => break stream,
                Err(e @ (CliError::Unreachable { .. } | CliError::Timeout { .. })) => {
                    tracing::info!("still cannot watch: {e}");
                }
                Err(e) => return Err(e),
            }
        };
    }
}

fn print_version(ctx: &Ctx, prev: Option<&Snapshot>, snap: &Snapshot) {
    let time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let changes = describe_changes(prev, snap);
    let t = &snap.topology;
    if ctx.json {
        output::emit_json(&WatchDoc {
            time,
            cluster_id: snap.cluster_id.map(|id| id.to_string()),
            version: t.version,
            current_epoch: t.current_epoch,
            state: snap.state(),
            changes,
        });
    } else {
        output::emit(&format!(
            "{time}  v{}  epoch {}  {:<4}  {}",
            t.version,
            t.current_epoch,
            snap.state(),
            changes.join("; ")
        ));
    }
}

fn label(prev: Option<&Snapshot>, next: &Snapshot, id: &NodeId) -> String {
    next.topology
        .nodes
        .get(id)
        .or_else(|| prev.and_then(|p| p.topology.nodes.get(id)))
        .map_or_else(|| short_id(id), short_label)
}

/// What changed from `prev` to `next`, in words; never empty.
pub fn describe_changes(prev: Option<&Snapshot>, next: &Snapshot) -> Vec<String> {
    let nt = &next.topology;
    let Some(p) = prev.filter(|p| p.cluster_id == next.cluster_id) else {
        let mut out = Vec::new();
        if let Some(p) = prev {
            out.push(format!(
                "cluster id changed from {} to {}",
                p.cluster_id.map_or("none".into(), |id| id.to_string()),
                next.cluster_id.map_or("none".into(), |id| id.to_string())
            ));
        }
        out.push(format!(
            "{} members, {} slots assigned",
            nt.nodes.len(),
            nt.slots.assigned()
        ));
        return out;
    };
    let pt = &p.topology;
    let prev = Some(p);
    let name = |id: &NodeId| label(prev, next, id);
    let mut out = Vec::new();

    if p.state() != next.state() {
        out.push(format!("cluster state {} -> {}", p.state(), next.state()));
    }
    for (id, n) in &nt.nodes {
        let Some(old) = pt.nodes.get(id) else {
            out.push(match n.role {
                Role::Primary => format!("node {} joined as primary", name(id)),
                Role::Replica { of } => {
                    format!("node {} joined as replica of {}", name(id), name(&of))
                }
            });
            continue;
        };
        if old.failed != n.failed {
            out.push(format!(
                "node {} {}",
                name(id),
                if n.failed { "failed" } else { "recovered" }
            ));
        }
        if old.role != n.role {
            out.push(match n.role {
                Role::Primary => format!("node {} is now a primary", name(id)),
                Role::Replica { of } => {
                    format!("node {} is now a replica of {}", name(id), name(&of))
                }
            });
        }
        if old.client_addr != n.client_addr {
            out.push(format!("node {} now announces {}", name(id), n.client_addr));
        }
    }
    for id in pt.nodes.keys().filter(|id| !nt.nodes.contains_key(id)) {
        out.push(format!("node {} forgotten", name(id)));
    }

    // Ownership changes grouped by (old owner, new owner), in slot order.
    let mut moves: BTreeMap<(Option<NodeId>, Option<NodeId>), Vec<u16>> = BTreeMap::new();
    for s in 0..SLOT_COUNT {
        let (a, b) = (pt.slots.owner(s), nt.slots.owner(s));
        if a != b {
            moves.entry((a, b)).or_default().push(s);
        }
    }
    let mut moves: Vec<_> = moves.into_iter().collect();
    moves.sort_by_key(|(_, slots)| slots[0]);
    for ((from, to), slots) in moves {
        let ranges = ranges_cell(&compact(slots), 8);
        out.push(match (from, to) {
            (None, Some(to)) => format!("slots {ranges} -> {}", name(&to)),
            (Some(from), Some(to)) => {
                format!("slots {ranges} -> {} (from {})", name(&to), name(&from))
            }
            (Some(from), None) => format!("slots {ranges} unassigned (were {})", name(&from)),
            (None, None) => unreachable!("only differing owners are collected"),
        });
    }

    for m in &nt.migrations {
        let what = format!(
            "migration of {} {} -> {}",
            ranges_cell(&m.slots, 4),
            name(&m.source),
            name(&m.target)
        );
        match pt.migrations.iter().find(|o| o.id == m.id) {
            None => out.push(format!("{what} started ({:?})", m.state).to_lowercase()),
            Some(o) if o.state != m.state => {
                out.push(format!("{what}: {:?}", m.state).to_lowercase())
            }
            Some(_) => {}
        }
    }
    for m in pt
        .migrations
        .iter()
        .filter(|m| !nt.migrations.iter().any(|n| n.id == m.id))
    {
        let committed = m
            .slots
            .iter()
            .flat_map(|r| r.iter())
            .all(|s| nt.slots.owner(s) == Some(m.target));
        out.push(format!(
            "migration of {} {} -> {} {}",
            ranges_cell(&m.slots, 4),
            name(&m.source),
            name(&m.target),
            if committed {
                "committed"
            } else {
                "ended without commit"
            }
        ));
    }

    if pt.require_full_coverage != nt.require_full_coverage {
        out.push(format!(
            "require-full-coverage {}",
            if nt.require_full_coverage {
                "yes"
            } else {
                "no"
            }
        ));
    }
    if out.is_empty() {
        out.push("no visible change".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::{node, sample};

    #[test]
    fn first_snapshot_is_summarised() {
        let s = sample().snapshot;
        assert_eq!(
            describe_changes(None, &s),
            vec!["3 members, 10923 slots assigned".to_string()]
        );
    }

    #[test]
    fn failures_joins_and_slot_moves_are_described() {
        let before = sample().snapshot;
        let mut after = before.clone();
        let t = &mut after.topology;
        t.version += 1;
        let n1 = *t.nodes.keys().next().unwrap();
        let n2 = *t.nodes.keys().nth(1).unwrap();
        t.nodes.get_mut(&n2).unwrap().failed = true;
        (0..=100).for_each(|s| t.slots.set(s, Some(n2)));
        (10922..=10930).for_each(|s| t.slots.set(s, Some(n1)));
        let n5 = node(5, Some("n5"), Role::Primary);
        t.nodes.insert(n5.id, n5);
        t.require_full_coverage = false;

        let changes = describe_changes(Some(&before), &after);
        let n2_label = short_id(&n2);
        assert_eq!(
            changes,
            vec![
                // Coverage is no longer required, so the cluster is ok despite the gaps.
                "cluster state fail -> ok".to_string(),
                format!("node {n2_label} failed"),
                "node n5 joined as primary".to_string(),
                format!("slots 0-100 -> {n2_label} (from n1)"),
                "slots 10922-10930 -> n1".to_string(),
                "require-full-coverage no".to_string(),
            ],
        );
    }

    #[test]
    fn forgetting_and_unassigning_are_described() {
        let before = sample().snapshot;
        let mut after = before.clone();
        let n1 = *after.topology.nodes.keys().next().unwrap();
        after.topology.nodes.remove(&n1);
        (0..=5460).for_each(|s| after.topology.slots.set(s, None));
        let changes = describe_changes(Some(&before), &after);
        assert!(
            changes.contains(&"node n1 forgotten".to_string()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"slots 0-5460 unassigned (were n1)".to_string()),
            "{changes:?}"
        );
        assert_eq!(
            describe_changes(Some(&before), &before),
            vec!["no visible change".to_string()]
        );
    }
}
