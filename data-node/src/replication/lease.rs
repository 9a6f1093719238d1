//! Write leases: a primary whose shard has replicas acknowledges a write only while
//! someone able to replace it has promised not to (ARCHITECTURE "Write leases").
//!
//! Grants come from the control plane (the answer to each heartbeat) and from the
//! shard's replicas (the answer to each lease-only chunk of the replication stream).
//! Each grant runs from the moment this node *sent* the request that was answered, for
//! `L * (1 - RHO)` of its own monotonic clock; the granter promises, on its own clock,
//! not to help replace this node until `L * (1 + RHO)` after it *received* it. So only
//! clock rates are compared, never clocks. The lease holds while the control plane's
//! grant holds, or the grants of a majority of the shard's replicas do.
//!
//! As a replica this node is a granter: [`Lease::grant_to_primary`] records when (the
//! control plane reads it from the heartbeats before it promotes anyone), and
//! [`Lease::stop_granting`] makes it refuse for a while (before `failover --force`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ember_core::NodeId;
use parking_lot::Mutex;

/// Clock-rate drift bound between any two machines, in percent.
pub const RHO_PERCENT: u64 = 1;

/// A write may not be acknowledged now: neither the control plane nor a majority of
/// the replicas renewed the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CLUSTERDOWN The cluster is down (this primary's write lease expired: it reaches neither the control plane nor its replicas)")]
pub struct NoLease;

#[derive(Debug, Default)]
struct Grants {
    /// This node is a primary with replicas: writes need a lease.
    needed: bool,
    replicas: Vec<NodeId>,
    /// Expiry of the control plane's grant (ns since `base`).
    control_plane: u64,
    /// Expiry of each replica's grant.
    from_replicas: HashMap<NodeId, u64>,
}

#[derive(Debug)]
pub struct Lease {
    base: Instant,
    /// `L` in ns; 0 until the control plane said (no lease is enforced then).
    length: AtomicU64,
    /// Writes are acknowledged while `now < until` (ns since `base`; `u64::MAX`: no
    /// lease needed).
    until: AtomicU64,
    grants: Mutex<Grants>,
    /// When this node last granted its primary a lease (its start counts as one: the
    /// process before it may have granted until it died).
    granted: AtomicU64,
    /// As a replica: grant nothing before this.
    refuse_until: AtomicU64,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            base: Instant::now(),
            length: AtomicU64::new(0),
            until: AtomicU64::new(u64::MAX),
            grants: Mutex::new(Grants::default()),
            granted: AtomicU64::new(1),
            refuse_until: AtomicU64::new(0),
        }
    }
}

impl Lease {
    /// Now on this node's monotonic clock, ns since `base` (never 0).
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    /// The lease's length `L`, as the control plane's welcome says.
    pub fn set_length(&self, length: Duration) {
        self.length
            .store(length.as_nanos() as u64, Ordering::Release);
        self.recompute(&self.grants.lock());
    }

    pub fn length(&self) -> Duration {
        Duration::from_nanos(self.length.load(Ordering::Acquire))
    }

    /// Whether a write may be acknowledged now.
    pub fn check(&self) -> Result<(), NoLease> {
        let until = self.until.load(Ordering::Acquire);
        match until == u64::MAX || self.now() < until {
            true => Ok(()),
            false => Err(NoLease),
        }
    }

    /// The topology says whether this node is a primary and which replicas it has.
    pub fn set_shard(&self, primary: bool, replicas: Vec<NodeId>) {
        let mut g = self.grants.lock();
        g.needed = primary && !replicas.is_empty();
        g.from_replicas.retain(|n, _| replicas.contains(n));
        g.replicas = replicas;
        self.recompute(&g);
    }

    /// The control plane answered the heartbeat sent at `request`.
    pub fn granted_by_control_plane(&self, request: u64) {
        let mut g = self.grants.lock();
        g.control_plane = g.control_plane.max(self.expiry(request));
        self.recompute(&g);
    }

    /// `replica` answered the lease request sent at `request`.
    pub fn granted_by_replica(&self, replica: NodeId, request: u64) {
        let mut g = self.grants.lock();
        let expiry = self.expiry(request);
        let e = g.from_replicas.entry(replica).or_default();
        *e = (*e).max(expiry);
        self.recompute(&g);
    }

    /// As a replica: grants its primary a lease now, unless told to stop (then false).
    pub fn grant_to_primary(&self) -> bool {
        let now = self.now();
        if now < self.refuse_until.load(Ordering::Acquire) {
            return false;
        }
        self.granted.fetch_max(now, Ordering::AcqRel);
        true
    }

    /// As a replica: grants nothing for `d` (its primary is about to be replaced).
    pub fn stop_granting(&self, d: Duration) {
        let until = self.now() + d.as_nanos() as u64;
        self.refuse_until.fetch_max(until, Ordering::AcqRel);
    }

    /// How long ago this node last granted its primary a lease.
    pub fn granted_ago(&self) -> Duration {
        Duration::from_nanos(self.now() - self.granted.load(Ordering::Acquire))
    }

    /// The end of a grant answering a request sent at `request`: `L * (1 - RHO)` later.
    fn expiry(&self, request: u64) -> u64 {
        request + self.length.load(Ordering::Acquire) * (100 - RHO_PERCENT) / 100
    }

    fn recompute(&self, g: &Grants) {
        let until = match g.needed && self.length.load(Ordering::Acquire) > 0 {
            false => u64::MAX,
            true => {
                let mut e: Vec<u64> = g
                    .replicas
                    .iter()
                    .map(|r| g.from_replicas.get(r).copied().unwrap_or(0))
                    .collect();
                e.sort_unstable_by(|a, b| b.cmp(a));
                let quorum = e.len() / 2 + 1;
                g.control_plane.max(e[quorum - 1])
            }
        };
        self.until.store(until, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn lease(ms: u64) -> Lease {
        let l = Lease::default();
        l.set_length(Duration::from_millis(ms));
        l
    }

    #[test]
    fn a_primary_without_replicas_needs_no_lease() {
        let l = lease(100);
        l.set_shard(true, vec![]);
        assert_eq!(l.check(), Ok(()));
    }

    #[test]
    fn a_grant_runs_from_the_request_for_l_minus_the_drift() {
        let l = lease(10_000);
        let r = Uuid::from_u128(1);
        l.set_shard(true, vec![r]);
        assert_eq!(l.check(), Err(NoLease));
        l.granted_by_control_plane(l.now());
        assert_eq!(l.check(), Ok(()));
        // A request sent long ago grants nothing now.
        let l = lease(1);
        l.set_shard(true, vec![r]);
        let old = l.now();
        std::thread::sleep(Duration::from_millis(2));
        l.granted_by_control_plane(old);
        assert_eq!(l.check(), Err(NoLease));
    }

    #[test]
    fn replicas_grant_by_majority() {
        let l = lease(10_000);
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        l.set_shard(true, vec![a, b, c]);
        l.granted_by_replica(a, l.now());
        assert_eq!(l.check(), Err(NoLease), "one of three is no majority");
        l.granted_by_replica(b, l.now());
        assert_eq!(l.check(), Ok(()));
        // A grant from a node that is not a replica of this shard counts for nothing.
        let l2 = lease(10_000);
        l2.set_shard(true, vec![a]);
        l2.granted_by_replica(b, l2.now());
        assert_eq!(l2.check(), Err(NoLease));
        // A replica that left the shard takes its grant with it.
        l.set_shard(true, vec![c, a, Uuid::from_u128(4)]);
        assert_eq!(l.check(), Err(NoLease));
    }

    #[test]
    fn a_replica_told_to_stop_grants_nothing_for_that_long() {
        let l = lease(10_000);
        assert!(l.grant_to_primary());
        let before = l.granted_ago();
        l.stop_granting(Duration::from_secs(60));
        assert!(!l.grant_to_primary());
        assert!(l.granted_ago() >= before, "a refused grant is not recorded");
        let l = lease(10_000);
        l.stop_granting(Duration::ZERO);
        assert!(l.grant_to_primary());
    }
}
