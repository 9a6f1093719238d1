//! Manual, zero-loss failover (`emberctl failover REPLICA`), the control plane's side.
//!
//! 1. Ask the primary to hold every write ([`Ask::Pause`]); it reports the log's end
//!    once the replica has acknowledged it (`HandoverReport.caught_up`).
//! 2. Commit the promotion (`Op::Promote`): the primary, demoted by the new topology,
//!    answers the held writes with `MOVED`.
//! 3. The pause is bounded: a primary whose pause timed out asks to resume
//!    (`HandoverReport.resume`). This registry is the single decision between the two
//!    outcomes: [`Handovers::try_commit`] and a resume request each win only if the
//!    other has not, under one lock. A control-plane process that restarted knows no
//!    pause and answers resume at once; it never commits a failover it did not start.
//!
//! The registry is in memory on purpose: a failover lasts milliseconds, and a control
//! plane that dies during one leaves nothing to finish (the primary resumes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember_core::NodeId;
use ember_proto::pb;
use tokio::time::Instant;
use tonic::Status;
use uuid::Uuid;

use crate::authority::{Ask, Authority};
use crate::state::{ClusterState, Op, Outcome};

/// How long the primary holds writes before it asks to resume.
pub const PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writes are (being) held; `caught_up`: the replica has everything.
    Pausing {
        caught_up: bool,
    },
    /// The promotion is being committed: the primary may no longer resume.
    Committing,
    Done,
    /// Abandoned: the pause timed out, or the commit failed.
    Aborted,
}

struct Entry {
    primary: NodeId,
    phase: Phase,
}

#[derive(Default)]
pub struct Handovers {
    inner: Mutex<HashMap<Uuid, Entry>>,
    /// Signalled on every phase change.
    pub changed: tokio::sync::Notify,
}

/// What to tell the primary after its report.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Nothing,
    Resume,
}

impl Handovers {
    /// Starts a failover of `primary`; `None` if one is already running for it.
    pub fn begin(&self, primary: NodeId) -> Option<Uuid> {
        let mut g = self.inner.lock().unwrap();
        g.retain(|_, e| matches!(e.phase, Phase::Pausing { .. } | Phase::Committing));
        if g.values().any(|e| e.primary == primary) {
            return None;
        }
        let id = Uuid::new_v4();
        g.insert(
            id,
            Entry {
                primary,
                phase: Phase::Pausing { caught_up: false },
            },
        );
        Some(id)
    }

    pub fn phase(&self, id: Uuid) -> Option<Phase> {
        self.inner.lock().unwrap().get(&id).map(|e| e.phase)
    }

    /// A report from `node` about its pause.
    pub fn on_report(&self, node: NodeId, report: &pb::HandoverReport) -> Reply {
        let Ok(id) = report.id.parse::<Uuid>() else {
            return Reply::Nothing;
        };
        let mut g = self.inner.lock().unwrap();
        let Some(e) = g.get_mut(&id).filter(|e| e.primary == node) else {
            // Not started by this process (it restarted): it will never commit it.
            return match report.resume {
                true => Reply::Resume,
                false => Reply::Nothing,
            };
        };
        let reply = match (e.phase, report.resume) {
            (Phase::Pausing { .. }, true) => {
                e.phase = Phase::Aborted;
                Reply::Resume
            }
            (Phase::Pausing { .. }, false) if report.caught_up => {
                e.phase = Phase::Pausing { caught_up: true };
                Reply::Nothing
            }
            (Phase::Aborted, _) => Reply::Resume,
            _ => Reply::Nothing,
        };
        drop(g);
        self.changed.notify_waiters();
        reply
    }

    /// The replica caught up and the pause has not been given up: from now on only the
    /// commit decides (true). False: too late, or not caught up yet.
    pub fn try_commit(&self, id: Uuid) -> bool {
        let mut g = self.inner.lock().unwrap();
        match g.get_mut(&id) {
            Some(e) if e.phase == (Phase::Pausing { caught_up: true }) => {
                e.phase = Phase::Committing;
                true
            }
            _ => false,
        }
    }

    /// Gives up a failover that is still pausing (the primary may resume). False if
    /// it is already being committed.
    pub fn abort(&self, id: Uuid) -> bool {
        let mut g = self.inner.lock().unwrap();
        let Some(e) = g.get_mut(&id) else {
            return true;
        };
        match e.phase {
            Phase::Pausing { .. } | Phase::Aborted => {
                e.phase = Phase::Aborted;
                true
            }
            Phase::Committing | Phase::Done => false,
        }
    }

    /// The commit's outcome.
    pub fn finish(&self, id: Uuid, committed: bool) {
        if let Some(e) = self.inner.lock().unwrap().get_mut(&id) {
            e.phase = match committed {
                true => Phase::Done,
                false => Phase::Aborted,
            };
        }
        self.changed.notify_waiters();
    }
}

/// Why a manual failover of `primary` to `replica` cannot start now (the replica's
/// link is judged by a heartbeat asked for now).
pub async fn check(authority: &Authority, primary: NodeId, replica: NodeId) -> Result<(), String> {
    let state = authority.current().state;
    let t = &state.topology;
    let label = |id: &NodeId| t.nodes.get(id).map_or(id.to_string(), |n| n.label());
    if t.nodes.get(&primary).is_some_and(|n| n.failed) {
        return Err(format!(
            "its primary {} is failed: a zero-loss failover needs it; --force promotes without it",
            label(&primary)
        ));
    }
    if t.nodes.get(&replica).is_some_and(|n| n.failed) {
        return Err(format!("{} is failed", label(&replica)));
    }
    if t.migrations
        .iter()
        .any(|m| m.source == primary || m.target == primary)
    {
        return Err(format!(
            "{} takes part in a migration: wait until it ends (`emberctl status`)",
            label(&primary)
        ));
    }
    let (_, observed) =
        crate::heartbeater::fresh_reports(authority, &[replica], Duration::from_millis(500)).await;
    let repl = observed.get(&replica).and_then(|o| o.repl.clone());
    match repl {
        Some(r) if r.link_up && !r.syncing => Ok(()),
        Some(r) if r.syncing => Err(format!(
            "{} is still in its full sync: wait until `emberctl nodes` shows its link up",
            label(&replica)
        )),
        _ => Err(format!(
            "{}'s link to its primary is down: it cannot catch up (--force promotes it as it is)",
            label(&replica)
        )),
    }
}

/// Runs a manual failover of `primary` to `replica` to its end: pause, catch-up,
/// commit. Run it spawned: an emberctl that goes away must not leave it half done.
pub async fn run(
    authority: Arc<Authority>,
    primary: NodeId,
    replica: NodeId,
) -> Result<(Arc<ClusterState>, Outcome), Status> {
    let h = &authority.handovers;
    let id = h
        .begin(primary)
        .ok_or_else(|| Status::aborted("a failover of this primary is already running"))?;
    let began = Instant::now();
    authority.ask(primary, Ask::Pause { id, replica });
    // The primary gives up after PAUSE; this side gives it a little longer to say so.
    let deadline = began + PAUSE + Duration::from_millis(500);
    loop {
        let changed = h.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if h.try_commit(id) {
            break;
        }
        if h.phase(id) == Some(Phase::Aborted) {
            return Err(Status::aborted(
                "the primary's write pause timed out before the replica caught up; nothing changed",
            ));
        }
        if Instant::now() >= deadline && h.abort(id) {
            authority.ask(primary, Ask::Resume { id });
            return Err(Status::deadline_exceeded(
                "the primary did not report its write pause; nothing changed (is its session to the control plane up?)",
            ));
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
    tracing::info!(%primary, %replica, caught_up_ms = began.elapsed().as_millis() as u64, "failover: the replica has every write; committing");
    let result = authority
        .submit(Op::Promote {
            node: replica.to_string(),
        })
        .await;
    h.finish(id, result.is_ok());
    if result.is_err() {
        authority.ask(primary, Ask::Resume { id });
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: Uuid, caught_up: bool, resume: bool) -> pb::HandoverReport {
        pb::HandoverReport {
            id: id.to_string(),
            offset: 7,
            caught_up,
            resume,
        }
    }

    #[test]
    fn commit_and_resume_exclude_each_other() {
        let h = Handovers::default();
        let p = Uuid::from_u128(1);
        let id = h.begin(p).unwrap();
        assert!(h.begin(p).is_none(), "one failover per primary at a time");
        assert!(!h.try_commit(id), "not caught up yet");
        assert_eq!(h.on_report(p, &report(id, true, false)), Reply::Nothing);
        assert!(h.try_commit(id));
        // The pause timed out meanwhile: too late, the commit decides.
        assert_eq!(h.on_report(p, &report(id, true, true)), Reply::Nothing);
        assert!(!h.abort(id));
        h.finish(id, true);
        assert_eq!(h.phase(id), Some(Phase::Done));

        let id = h.begin(p).unwrap();
        assert_eq!(h.on_report(p, &report(id, false, true)), Reply::Resume);
        assert_eq!(h.on_report(p, &report(id, true, false)), Reply::Resume);
        assert!(!h.try_commit(id), "the primary resumed: never commit");
    }

    #[test]
    fn a_pause_this_process_does_not_know_resumes() {
        let h = Handovers::default();
        let (p, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let unknown = Uuid::from_u128(9);
        assert_eq!(h.on_report(p, &report(unknown, false, true)), Reply::Resume);
        assert_eq!(
            h.on_report(p, &report(unknown, true, false)),
            Reply::Nothing
        );
        let id = h.begin(p).unwrap();
        assert_eq!(
            h.on_report(other, &report(id, false, true)),
            Reply::Resume,
            "another node's word does not count for the pause"
        );
        assert_eq!(h.phase(id), Some(Phase::Pausing { caught_up: false }));
    }
}
