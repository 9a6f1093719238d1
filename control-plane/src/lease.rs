//! The control plane's side of write leases (ARCHITECTURE "Write leases").
//!
//! Every heartbeat of a healthy primary is answered with a grant; the control plane
//! then promises, on its own clock, not to help replace that primary until
//! `L * (1 + RHO)` after it received the heartbeat. Replacing a primary (automatic
//! failover, `failover --force`) first *fences* it (no more grants), then waits until
//! [`Leases::promise_left`] is zero. Grants made by an earlier process of this control
//! plane are unknown, so its start counts as a grant to everyone.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ember_core::NodeId;

/// Clock-rate drift bound between two machines, in percent (the data node's
/// `replication::lease` uses the same).
pub const RHO_PERCENT: u32 = 1;

/// `L`: half the node timeout, and at least three heartbeats, so a lease survives one
/// lost heartbeat and is over well before the node is marked failed.
pub fn length(node_timeout: Duration, heartbeat: Duration) -> Duration {
    (node_timeout / 2).max(heartbeat * 3)
}

/// `L * (1 + RHO)`.
pub fn promise(length: Duration) -> Duration {
    length * (100 + RHO_PERCENT) / 100
}

/// A duration measured on another machine's clock, seen on this one: at least this
/// much passed there (`d * (1 - 2 RHO)`, rates may differ by RHO each way).
pub fn elapsed_elsewhere(d: Duration) -> Duration {
    d * (100 - 2 * RHO_PERCENT) / 100
}

#[derive(Default)]
struct Inner {
    granted: HashMap<NodeId, Instant>,
    fenced: HashSet<NodeId>,
}

pub struct Leases {
    pub length: Duration,
    started: Instant,
    inner: Mutex<Inner>,
}

impl Leases {
    pub fn new(length: Duration) -> Leases {
        Leases {
            length,
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }

    /// Grants `node` a lease now if it is not fenced and `may` (checked under the same
    /// lock as [`Leases::fence`], so no grant slips in after a fence).
    pub fn grant(&self, node: NodeId, may: impl FnOnce() -> bool) -> bool {
        let mut g = self.inner.lock().unwrap();
        if g.fenced.contains(&node) || !may() {
            return false;
        }
        g.granted.insert(node, Instant::now());
        true
    }

    /// Stops granting `node` leases; returns how long until every lease this control
    /// plane granted it has run out (see [`Leases::promise_left`]).
    pub fn fence(&self, node: NodeId) -> Duration {
        let mut g = self.inner.lock().unwrap();
        g.fenced.insert(node);
        self.left(&g, node)
    }

    /// Grants `node` leases again (it is healthy, or no longer a primary).
    pub fn unfence(&self, node: NodeId) {
        self.inner.lock().unwrap().fenced.remove(&node);
    }

    /// How long until this control plane's promise to `node` runs out.
    pub fn promise_left(&self, node: NodeId) -> Duration {
        self.left(&self.inner.lock().unwrap(), node)
    }

    fn left(&self, g: &Inner, node: NodeId) -> Duration {
        let last = g.granted.get(&node).copied().unwrap_or(self.started);
        promise(self.length).saturating_sub(last.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_fence_stops_grants_and_says_how_long_the_last_one_lasts() {
        let l = Leases::new(Duration::from_secs(10));
        let n = Uuid::from_u128(1);
        assert!(l.grant(n, || true));
        assert!(!l.grant(Uuid::from_u128(2), || false));
        let left = l.fence(n);
        assert!(left > Duration::from_secs(10) && left <= promise(l.length));
        assert!(!l.grant(n, || true), "fenced");
        l.unfence(n);
        assert!(l.grant(n, || true));
    }

    #[test]
    fn the_start_counts_as_a_grant_to_everyone() {
        let l = Leases::new(Duration::from_secs(10));
        assert!(l.promise_left(Uuid::from_u128(9)) > Duration::from_secs(9));
        let l = Leases::new(Duration::ZERO);
        assert_eq!(l.promise_left(Uuid::from_u128(9)), Duration::ZERO);
    }
}
