//! `emberctl assign NODE SLOTS...`: free slots (and NODE's own) go to NODE at once with
//! `Assign`; slots owned by other nodes move by live migration, one `Migrate` per
//! current owner, awaited like a rebalance ([`moves::run`]).

use std::collections::BTreeMap;

use ember_core::slots::{compact, format_ranges};
use ember_core::topology::resolve_node;
use ember_core::NodeId;
use serde::Serialize;

use crate::args::AssignArgs;
use crate::client::CliError;
use crate::commands::{moves, Ctx};
use crate::model::{ClusterView, Move};
use crate::output;

/// `{"event":"assigned",...}`: the free slots given at once (`assign --json` with moves).
#[derive(Debug, Serialize)]
struct AssignedEvent {
    event: &'static str,
    changed: bool,
    summary: String,
    slots: Vec<String>,
}

/// The requested slots split by who owns them now: those NODE can take at once (free or
/// its own), whether any of those is free, and one move per other owner.
fn split(
    view: &ClusterView,
    node: NodeId,
    slots: &[ember_core::SlotRange],
) -> (Vec<ember_core::SlotRange>, bool, Vec<Move>) {
    let t = &view.snapshot.topology;
    let mut direct = Vec::new();
    let mut any_free = false;
    let mut by_owner: BTreeMap<NodeId, Vec<u16>> = BTreeMap::new();
    for s in slots.iter().flat_map(|r| r.iter()) {
        match t.slots.owner(s) {
            None => {
                any_free = true;
                direct.push(s);
            }
            Some(o) if o == node => direct.push(s),
            Some(o) => by_owner.entry(o).or_default().push(s),
        }
    }
    let moves = by_owner
        .into_iter()
        .map(|(source, slots)| Move {
            source,
            target: node,
            slots: compact(slots),
        })
        .collect();
    (compact(direct), any_free, moves)
}

pub async fn run(ctx: &Ctx, a: AssignArgs) -> Result<(), CliError> {
    // Before connecting: a typo in a slot must never cost a round trip, nor need a
    // reachable control plane to be reported.
    let ranges = a
        .slot_ranges()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut admin = ctx.connect().await?;
    let view = admin.state().await?;
    let t = &view.snapshot.topology;
    // Only a member can own slots; anything else goes to the control plane as typed,
    // which answers with the authoritative error.
    let Some(node) = resolve_node(t.nodes.values(), &a.node).ok().map(|n| n.id) else {
        let change = admin.assign(a.node, &ranges).await?;
        ctx.report_change(&change, None);
        return Ok(());
    };
    let (direct, any_free, moves) = split(&view, node, &ranges);
    if moves.is_empty() {
        let change = admin.assign(node.to_string(), &ranges).await?;
        ctx.report_change(&change, None);
        return Ok(());
    }

    let s = &view.snapshot;
    if ctx.json {
        output::emit_json(&output::plan_event(s, &moves));
    } else {
        for m in &moves {
            output::emit(&format!(
                "moving {} slots ({}) from {} to {} by live migration",
                m.slot_count(),
                format_ranges(&m.slots),
                moves::label(s, &m.source),
                moves::label(s, &m.target)
            ));
        }
    }
    if any_free {
        let change = admin.assign(node.to_string(), &direct).await?;
        if ctx.json {
            output::emit_json(&AssignedEvent {
                event: "assigned",
                changed: change.changed,
                summary: change.summary.clone(),
                slots: output::range_strings(&direct),
            });
        } else {
            output::emit(&output::render_change(change.changed, &change.summary));
        }
    }
    let again = format!("emberctl assign {} {}", a.node, a.slots.join(" "));
    moves::run(ctx, &mut admin, moves, a.parallel, &again).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::sample;
    use ember_core::SlotRange;

    #[test]
    fn slots_split_into_direct_and_one_move_per_owner() {
        let view = sample();
        let ids: Vec<NodeId> = view.snapshot.topology.nodes.keys().copied().collect();
        let (n1, n2) = (ids[0], ids[1]);
        // n1 owns 0-5460, n2 5461-10921 and 16000; 10922-15999 are free.
        let r = |a, b| SlotRange::new(a, b).unwrap();
        let (direct, any_free, moves) = split(
            &view,
            n2,
            &[r(5000, 5500), r(10920, 10930), r(16000, 16000)],
        );
        assert_eq!(format_ranges(&direct), "5461-5500 10920-10930 16000");
        assert!(any_free);
        assert_eq!(
            moves,
            vec![Move {
                source: n1,
                target: n2,
                slots: vec![r(5000, 5460)]
            }]
        );
        let (_, any_free, moves) = split(&view, n1, &[r(0, 10)]);
        assert!(!any_free && moves.is_empty());
    }
}
