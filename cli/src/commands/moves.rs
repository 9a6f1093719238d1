//! Running moves as live migrations, shared by `assign`, `rebalance` and `drain`: at most
//! `parallel` in flight, each started with `Migrate` and awaited by polling `GetState`
//! (a migration is over when its id leaves `topology.migrations`; how it ended is in
//! `finished`). After an abort no new move starts; the ones in flight are awaited, and
//! the command fails naming what failed and why.
//!
//! Waiting is unbounded: migrations commit or abort on their own on the control plane
//! (which has its own timeouts), and Ctrl-C only stops emberctl, not them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ember_core::slots::format_ranges;
use ember_core::topology::short_id;
use ember_core::{NodeId, SlotRange};
use uuid::Uuid;

use crate::client::{Admin, CliError, Started, TopologyStream};
use crate::commands::Ctx;
use crate::model::{short_label, ClusterView, Move, Snapshot};
use crate::output::range_strings;
use crate::progress::{expected_keys, Outcome, Reporter, StartedEvent, Tally};

/// How often the control plane is polled for progress while migrations run; a
/// committed or aborted migration is noticed at once through the Watch stream.
const POLL_EVERY: Duration = Duration::from_millis(150);

/// Waits until the control plane commits a new topology version (a migration ended or
/// started) or [`POLL_EVERY`] passes, whichever comes first. Without a Watch stream
/// (it failed or ended), it just waits [`POLL_EVERY`].
async fn wait_for_change(watch: &mut Option<TopologyStream>) {
    let Some(w) = watch.as_mut() else {
        tokio::time::sleep(POLL_EVERY).await;
        return;
    };
    tokio::select! {
        next = w.next() => {
            if !matches!(next, Ok(Some(_))) {
                *watch = None;
            }
        }
        _ = tokio::time::sleep(POLL_EVERY) => {}
    }
}

/// A move that was started and has not ended yet.
struct InFlight {
    id: Uuid,
    mv: Move,
}

/// A node's label in progress lines: its name, else its short id.
pub fn label(s: &Snapshot, id: &NodeId) -> String {
    s.topology
        .nodes
        .get(id)
        .map_or_else(|| short_id(id), short_label)
}

/// The migration that the `Migrate` reply recorded for `mv`: the one holding its first
/// slot (a slot is in at most one migration).
fn started_id(reply: &Snapshot, mv: &Move) -> Option<Uuid> {
    let first = mv.slots.first()?.start;
    reply
        .topology
        .migrations
        .iter()
        .find(|m| m.target == mv.target && m.slots.iter().any(|r| r.contains(first)))
        .map(|m| m.id)
}

/// How a migration that left the topology ended. The control plane remembers the last
/// 100; if it forgot (e.g. it restarted), the slot map tells whether it committed.
fn outcome(view: &ClusterView, f: &InFlight) -> Outcome {
    let s = &view.snapshot;
    let base = Outcome {
        id: f.id.to_string(),
        source: label(s, &f.mv.source),
        target: label(s, &f.mv.target),
        ranges: format_ranges(&f.mv.slots),
        slot_count: f.mv.slot_count(),
        committed: false,
        reason: String::new(),
        keys: 0,
        bytes: 0,
        millis: 0,
    };
    match view.finished_of(&f.id) {
        Some(done) => Outcome {
            committed: done.committed,
            reason: done.reason.clone(),
            keys: done.keys,
            bytes: done.bytes,
            millis: done.millis,
            ..base
        },
        None => {
            let committed =
                f.mv.slots
                    .iter()
                    .flat_map(SlotRange::iter)
                    .all(|slot| s.topology.slots.owner(slot) == Some(f.mv.target));
            Outcome {
                committed,
                reason: if committed {
                    String::new()
                } else {
                    "ended, but the control plane no longer remembers why (did it restart?)".into()
                },
                ..base
            }
        }
    }
}

/// Reports a started migration and waits for it from now on.
fn track(reporter: &mut Reporter, inflight: &mut Vec<InFlight>, id: Uuid, mv: Move) {
    reporter.started(&StartedEvent {
        event: "started",
        id: &id.to_string(),
        source_id: mv.source.to_string(),
        target_id: mv.target.to_string(),
        slots: range_strings(&mv.slots),
        slot_count: mv.slot_count(),
    });
    inflight.push(InFlight { id, mv });
}

/// After a Migrate request whose answer was lost: if the control plane recorded the
/// front move (it runs, or its slots already belong to the target), take it off the
/// queue instead of starting it twice.
fn adopt_front(
    view: &ClusterView,
    queue: &mut VecDeque<Move>,
    inflight: &mut Vec<InFlight>,
    outcomes: &mut Vec<Outcome>,
    reporter: &mut Reporter,
) {
    let Some(mv) = queue.front() else { return };
    if let Some(id) = started_id(&view.snapshot, mv) {
        let mv = queue.pop_front().expect("front exists");
        track(reporter, inflight, id, mv);
        return;
    }
    let t = &view.snapshot.topology;
    if mv
        .slots
        .iter()
        .flat_map(SlotRange::iter)
        .all(|slot| t.slots.owner(slot) == Some(mv.target))
    {
        let mv = queue.pop_front().expect("front exists");
        let done = InFlight {
            id: Uuid::nil(),
            mv,
        };
        let o = outcome(view, &done);
        reporter.finished(&o);
        outcomes.push(o);
    }
}

/// Runs `moves` to completion. `Ok` only if every move committed; otherwise a
/// [`CliError::Rejected`] naming the failures and how to continue (`again`, e.g.
/// `emberctl rebalance`).
pub async fn run(
    ctx: &Ctx,
    admin: &mut Admin,
    moves: Vec<Move>,
    parallel: usize,
    again: &str,
) -> Result<(), CliError> {
    let parallel = parallel.max(1);
    let slots_total: usize = moves.iter().map(Move::slot_count).sum();
    let move_count = moves.len();
    let mut reporter = Reporter::new(ctx.json, slots_total);
    let mut queue: VecDeque<Move> = moves.into();
    let mut inflight: Vec<InFlight> = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut start_error: Option<CliError> = None;
    let mut said_busy = false;
    let mut warned_unreachable = false;
    // The Migrate request for the queue's front failed in transit: it may have been
    // recorded, so the next view decides whether it runs (or even ended) already.
    let mut front_uncertain = false;
    let started_at = Instant::now();
    let mut watch = admin.watch().await.ok();

    loop {
        let stop = start_error.is_some() || outcomes.iter().any(|o| !o.committed);
        while !stop && inflight.len() < parallel {
            let Some(mv) = queue.front() else { break };
            match admin.migrate(mv.target.to_string(), &mv.slots).await {
                Ok(Started::Started(change)) => {
                    let mv = queue.pop_front().expect("front exists");
                    let Some(id) = started_id(&change.snapshot, &mv) else {
                        start_error = Some(CliError::BadReply(format!(
                            "the Migrate reply does not list a migration of {}",
                            format_ranges(&mv.slots)
                        )));
                        break;
                    };
                    track(&mut reporter, &mut inflight, id, mv);
                }
                Ok(Started::Busy(msg)) => {
                    if !said_busy && inflight.is_empty() {
                        reporter.note(&format!("waiting: {msg}"));
                        said_busy = true;
                    }
                    break;
                }
                Err(e) if e.is_transient() => {
                    if !warned_unreachable {
                        reporter.note(&format!("warning: {e}; still waiting"));
                        warned_unreachable = true;
                    }
                    front_uncertain = true;
                    break;
                }
                Err(e) => {
                    start_error = Some(e);
                    break;
                }
            }
        }
        if inflight.is_empty() && (queue.is_empty() || start_error.is_some() || stop) {
            break;
        }

        wait_for_change(&mut watch).await;
        let view = match admin.state().await {
            Ok(view) => view,
            // The control plane may restart (or its disk fill up) under a long rebalance;
            // keep waiting through every transient failure.
            Err(e) if e.is_transient() => {
                if !warned_unreachable {
                    reporter.note(&format!("warning: {e}; still waiting"));
                    warned_unreachable = true;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        warned_unreachable = false;
        if std::mem::take(&mut front_uncertain) {
            adopt_front(
                &view,
                &mut queue,
                &mut inflight,
                &mut outcomes,
                &mut reporter,
            );
        }

        let running = &view.snapshot.topology.migrations;
        let (ended, still): (Vec<_>, Vec<_>) = inflight
            .into_iter()
            .partition(|f| !running.iter().any(|m| m.id == f.id));
        inflight = still;
        for f in &ended {
            let o = outcome(&view, f);
            reporter.finished(&o);
            outcomes.push(o);
        }

        // (slots, keys) of every started move whose key total is known, for the ETA.
        let mut known: Vec<(usize, u64)> = outcomes
            .iter()
            .filter(|o| o.committed)
            .map(|o| (o.slot_count, o.keys))
            .collect();
        let (mut keys, mut bytes) = outcomes
            .iter()
            .fold((0, 0), |(k, b), o| (k + o.keys, b + o.bytes));
        for f in &inflight {
            if let Some(p) = view.progress.get(&f.id) {
                keys += p.keys;
                bytes += p.bytes;
                if p.keys_total > 0 {
                    known.push((f.mv.slot_count(), p.keys_total));
                }
            }
        }
        reporter.progress(&Tally {
            slots_done: outcomes
                .iter()
                .filter(|o| o.committed)
                .map(|o| o.slot_count)
                .sum(),
            slots_total,
            running: inflight.len(),
            keys,
            bytes,
            keys_expected: expected_keys(&known, slots_total),
            elapsed: started_at.elapsed(),
        });
    }

    let moved_slots: usize = outcomes
        .iter()
        .filter(|o| o.committed)
        .map(|o| o.slot_count)
        .sum();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.committed).collect();
    let committed = outcomes.len() - failed.len();
    reporter.done(moved_slots, committed, failed.len());

    let not_started = queue.len();
    let mut problems: Vec<String> = failed
        .iter()
        .map(|o| {
            format!(
                "migration {} of {} slots ({}) {} -> {} aborted: {}",
                &o.id[..8],
                o.slot_count,
                o.ranges,
                o.source,
                o.target,
                o.reason
            )
        })
        .collect();
    if let Some(e) = start_error {
        if problems.is_empty() && outcomes.is_empty() {
            // Nothing happened at all: the plain refusal says it best (and keeps its
            // exit code, e.g. 3 for an unreachable control plane).
            return Err(e);
        }
        problems.push(format!("could not start the next migration: {e}"));
    }
    if problems.is_empty() {
        if !ctx.json {
            crate::output::emit(&format!(
                "done: {moved_slots} slots moved in {move_count} migration{}",
                if move_count == 1 { "" } else { "s" }
            ));
        }
        return Ok(());
    }
    Err(CliError::Rejected(format!(
        "{}; {moved_slots} slots moved in {committed} of {move_count} moves, {not_started} not started (run `{again}` to continue)",
        problems.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::sample;
    use ember_core::{Migration, MigrationState};

    #[test]
    fn the_started_migration_is_found_by_its_first_slot() {
        let mut s = sample().snapshot;
        let ids: Vec<NodeId> = s.topology.nodes.keys().copied().collect();
        let mv = Move {
            source: ids[0],
            target: ids[1],
            slots: vec![SlotRange::new(10, 20).unwrap()],
        };
        assert_eq!(started_id(&s, &mv), None);
        let id = Uuid::from_u128(9);
        s.topology.migrations.push(Migration {
            id,
            slots: mv.slots.clone(),
            source: ids[0],
            target: ids[1],
            state: MigrationState::Streaming,
        });
        assert_eq!(started_id(&s, &mv), Some(id));
    }
}
