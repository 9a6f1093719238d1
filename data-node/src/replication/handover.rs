//! A manual failover's pause, on the primary (`emberctl failover REPLICA`).
//!
//! The control plane asks this node ([`Handover::pause`]) to hold every write to its
//! slots (the migration handoff's hold: writes wait, then run again and are routed
//! anew). Once the hold is in place no write can change the log, so its end `X` is the
//! whole history; when the replica has acknowledged `X` the node reports it, and the
//! control plane commits the promotion. The new topology demotes this node, which
//! releases the hold: the held writes answer `MOVED` to the new primary.
//!
//! The pause is bounded: after `millis` the node asks the control plane to resume, and
//! keeps asking (with every heartbeat) until it answers `ResumeWrites` (the failover is
//! abandoned, or it is unknown to that control-plane process, which then never commits
//! it) or a topology replaces it. The control plane decides once, so the node never
//! serves writes the promoted replica may not have.

use std::sync::Arc;
use std::time::Duration;

use ember_core::NodeId;
use ember_proto::pb;
use parking_lot::Mutex;

use crate::state::ServerState;

struct Pause {
    id: String,
    slots: Vec<u16>,
    report: pb::HandoverReport,
}

#[derive(Default)]
pub struct Handover {
    current: Mutex<Option<Pause>>,
    /// Signalled when the report changed (the session sends it at once).
    pub report_now: tokio::sync::Notify,
}

impl Handover {
    /// The pause's report, re-sent until it is resolved.
    pub fn report(&self) -> Option<pb::HandoverReport> {
        self.current.lock().as_ref().map(|p| p.report.clone())
    }

    /// Starts pause `req.id`: holds every write to this node's slots, notes the log's
    /// end, and reports once `req.replica` has acknowledged it (or asks to resume when
    /// the pause has lasted `req.millis`). A repeated request changes nothing.
    pub fn pause(state: &Arc<ServerState>, req: pb::PauseWrites) {
        let me = state.cluster.me();
        let Ok(replica) = req.replica.parse::<NodeId>() else {
            return;
        };
        let Some(applied) = state.cluster.applied() else {
            return;
        };
        let t = &applied.topology;
        if !t.nodes.get(&me).is_some_and(|n| n.is_primary()) {
            tracing::warn!(id = %req.id, "asked to pause for a failover, but this node is not a primary");
            return;
        }
        let mut current = state.handover.current.lock();
        if current.is_some() {
            return;
        }
        let slots: Vec<u16> = t.slots.slots_of(&me).iter().collect();
        for &slot in &slots {
            state.db.lock(slot).set_held(true);
        }
        // Every write is held now: nothing can extend the log past this.
        let offset = state.repl.end();
        state.repl.wake();
        tracing::info!(id = %req.id, %replica, offset, slots = slots.len(), "failover: writes held until the replica has everything");
        *current = Some(Pause {
            id: req.id.clone(),
            slots,
            report: pb::HandoverReport {
                id: req.id.clone(),
                offset,
                ..Default::default()
            },
        });
        drop(current);
        let state = state.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(req.millis);
            if state.followers.wait_node(replica, offset, deadline).await {
                state.handover.update(&req.id, |r| r.caught_up = true);
            }
            tokio::time::sleep_until(deadline).await;
            if state.handover.update(&req.id, |r| r.resume = true) {
                tracing::warn!(id = %req.id, "failover: the pause timed out; asking the control plane to resume");
            }
        });
    }

    /// Changes the report of pause `id` (if it is still on) and sends it.
    fn update(&self, id: &str, f: impl FnOnce(&mut pb::HandoverReport)) -> bool {
        let mut current = self.current.lock();
        let Some(p) = current.as_mut().filter(|p| p.id == id) else {
            return false;
        };
        f(&mut p.report);
        self.report_now.notify_one();
        true
    }

    /// The control plane abandoned pause `id`: serve the held writes here.
    pub fn resume(state: &ServerState, id: &str) {
        let mut current = state.handover.current.lock();
        if current.as_ref().is_some_and(|p| p.id == id) {
            tracing::info!(id, "failover abandoned: serving writes again");
            release(state, current.take());
        }
    }

    /// After a topology was applied: a pause whose node is no longer a primary is over
    /// (the failover was committed); the held writes are routed anew (`MOVED`).
    pub fn after_apply(state: &ServerState, primary: bool) {
        let mut current = state.handover.current.lock();
        if !primary && current.is_some() {
            tracing::info!("failover committed: held writes go to the new primary");
            release(state, current.take());
        }
    }
}

fn release(state: &ServerState, pause: Option<Pause>) {
    let Some(p) = pause else { return };
    for slot in p.slots {
        state.db.lock(slot).set_held(false);
    }
    state.db.notify_released();
}
