//! The data node's view of the cluster: the last topology applied from the control
//! plane, and the routing decision every keyed command passes through.
//!
//! - [`identity`]: the node id (and cluster id) kept in `--data-dir`.
//! - [`session`]: the session stream to the control plane (hello, heartbeats, snapshots).
//! - [`command`]: `CLUSTER ...` subcommands.
//!
//! The applied topology is an immutable [`Applied`] behind an `ArcSwap`: a snapshot is
//! swapped in whole, so a command never sees half of one, and the hot path takes no lock.

pub mod applier;
pub mod command;
pub mod identity;
pub mod session;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use ember_core::lineage::{check_successor, Refusal};
use ember_core::{NodeId, Role, Topology, SLOT_COUNT};
use uuid::Uuid;

/// Why this node will not execute a keyed command here. `Display` is the exact Redis error
/// line without the leading `-` (e.g. `MOVED 3999 127.0.0.1:6381`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    Moved {
        slot: u16,
        addr: String,
    },
    /// `CLUSTERDOWN Hash slot not served`
    SlotNotServed,
    /// `CLUSTERDOWN The cluster is down`
    ClusterDown,
    /// A read sent to a replica whose dataset is incomplete (a full sync is running).
    MasterDown,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Moved { slot, addr } => write!(f, "MOVED {slot} {addr}"),
            RouteError::SlotNotServed => f.write_str("CLUSTERDOWN Hash slot not served"),
            RouteError::ClusterDown => f.write_str("CLUSTERDOWN The cluster is down"),
            RouteError::MasterDown => f.write_str(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            ),
        }
    }
}

/// `Applied::routes` value of a slot served here.
const HERE: u16 = u16::MAX;
/// `Applied::routes` value of an unassigned slot.
const UNASSIGNED: u16 = u16::MAX - 1;

/// An applied topology with everything the hot path needs precomputed.
#[derive(Debug)]
pub struct Applied {
    pub topology: Topology,
    /// `cluster_state:ok`.
    pub state_ok: bool,
    /// Per slot: [`HERE`], [`UNASSIGNED`] or an index into `addrs`. Two bytes per slot
    /// (32 KiB) so that the route check of a random slot stays in cache.
    routes: Vec<u16>,
    /// Client addresses of the other owners.
    addrs: Vec<Arc<str>>,
    /// Bit `s % 64` of word `s / 64`: slot `s` is owned by this node's primary, so a
    /// `READONLY` client may read it here.
    replica_reads: Vec<u64>,
}

impl Applied {
    fn new(topology: Topology, me: NodeId) -> Self {
        // A replica serves nothing itself: it redirects to its primary's slots' owner.
        let mut owners: HashMap<NodeId, u16> = HashMap::new();
        let mut addrs: Vec<Arc<str>> = Vec::new();
        let routes = (0..SLOT_COUNT)
            .map(|slot| match topology.slots.owner(slot) {
                None => UNASSIGNED,
                Some(owner) if owner == me => HERE,
                Some(owner) => *owners.entry(owner).or_insert_with(|| {
                    addrs.push(topology.nodes[&owner].client_addr.as_str().into());
                    (addrs.len() - 1) as u16
                }),
            })
            .collect();
        let mut replica_reads = vec![0u64; usize::from(SLOT_COUNT) / 64];
        let holder = topology.holder_of(me);
        if holder != me {
            for slot in topology.slots.slots_of(&holder).iter() {
                replica_reads[usize::from(slot) / 64] |= 1 << (slot % 64);
            }
        }
        let state_ok = topology.state_ok();
        Self {
            topology,
            state_ok,
            routes,
            addrs,
            replica_reads,
        }
    }
}

/// Why a snapshot was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("snapshot version {got} is not newer than the applied version {applied}")]
    Stale { got: u64, applied: u64 },
    #[error("snapshot is for cluster {got}, this node belongs to cluster {mine}")]
    OtherCluster { got: Uuid, mine: Uuid },
    /// Newer, but not a successor of the applied topology (`ember_core::lineage`): the
    /// control plane sending it is behind this node. Nothing changes.
    #[error("refused topology version {version}: {refusal}")]
    Refused { version: u64, refusal: Refusal },
}

/// Handoff hold durations, for `INFO` and the benchmarks.
#[derive(Debug, Default, Clone)]
pub struct HoldStats {
    /// Holds begun (a migration of this node as the source reached its handoff).
    pub started: u64,
    /// Holds ended by the target agreeing to abort, after the hold timed out (the
    /// control plane did not decide in time).
    pub aborted: u64,
    /// Holds ended (by any outcome), with their durations below.
    pub count: u64,
    pub last_ms: f64,
    pub max_ms: f64,
    /// The most recent holds (bounded), to compute percentiles.
    pub recent_ms: Vec<f64>,
}

impl HoldStats {
    pub fn record(&mut self, d: std::time::Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        self.count += 1;
        self.last_ms = ms;
        self.max_ms = self.max_ms.max(ms);
        if self.recent_ms.len() >= 1000 {
            self.recent_ms.remove(0);
        }
        self.recent_ms.push(ms);
    }

    pub fn p99_ms(&self) -> f64 {
        let mut v = self.recent_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(((v.len() as f64 - 1.0) * 0.99).round() as usize)
            .copied()
            .unwrap_or(0.0)
    }
}

/// The cluster state shared by all connections.
pub struct Cluster {
    me: NodeId,
    /// Standalone mode (tests of the command engine): every slot is served here.
    standalone: bool,
    applied: ArcSwapOption<Applied>,
    /// Guards apply's check-then-swap (the session is the only writer, but be safe).
    apply_lock: parking_lot::Mutex<()>,
    /// Session messages, for `cluster_stats_messages_*` in CLUSTER INFO.
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    /// Handoff holds of migrations this node was the source of.
    pub holds: parking_lot::Mutex<HoldStats>,
    /// This replica's dataset is incomplete (a full sync began and has not finished):
    /// reads answer `MASTERDOWN`, and the next sync must be a full one.
    partial: AtomicBool,
    /// The control plane's URL (`main` sets it): where function changes and a
    /// shutdown's hand-over go.
    control_plane: std::sync::OnceLock<String>,
    /// This replica's link to its primary is down (or not up yet).
    link_down: AtomicBool,
    /// `replica-serve-stale-data no`: a replica whose link is down refuses reads.
    refuse_stale: AtomicBool,
}

impl Cluster {
    /// A cluster member that has not received a topology yet.
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            standalone: false,
            applied: ArcSwapOption::empty(),
            apply_lock: Default::default(),
            messages_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            holds: Default::default(),
            partial: AtomicBool::new(false),
            control_plane: Default::default(),
            link_down: AtomicBool::new(true),
            refuse_stale: AtomicBool::new(false),
        }
    }

    /// The replica's link to its primary went up (or down).
    pub fn set_link_up(&self, up: bool) {
        self.link_down.store(!up, Ordering::Release);
    }

    /// `replica-serve-stale-data` (`true`: yes, the default).
    pub fn set_serve_stale(&self, serve: bool) {
        self.refuse_stale.store(!serve, Ordering::Release);
    }

    pub fn set_control_plane(&self, url: String) {
        let _ = self.control_plane.set(url);
    }

    /// The control plane's URL, unless this node runs without one (tests of the command
    /// engine).
    pub fn control_plane(&self) -> Option<String> {
        self.control_plane.get().cloned()
    }

    /// Every slot served here, no control plane (for testing the command engine).
    pub fn standalone() -> Self {
        Self {
            standalone: true,
            ..Self::new(Uuid::nil())
        }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn is_standalone(&self) -> bool {
        self.standalone
    }

    /// The applied snapshot, if any.
    pub fn applied(&self) -> Option<Arc<Applied>> {
        self.applied.load_full()
    }

    pub fn applied_version(&self) -> u64 {
        self.applied
            .load()
            .as_ref()
            .map_or(0, |a| a.topology.version)
    }

    /// Applies a snapshot if it is newer than the applied one, of the same cluster, and
    /// its successor (it takes no slots from this node on the word of a control plane
    /// that is behind it).
    pub fn apply(&self, topology: Topology) -> Result<(), ApplyError> {
        let _guard = self.apply_lock.lock();
        self.check(&topology)?;
        self.applied
            .store(Some(Arc::new(Applied::new(topology, self.me))));
        Ok(())
    }

    /// Whether `topology` may replace the applied one (see [`Cluster::apply`]).
    pub fn check(&self, topology: &Topology) -> Result<(), ApplyError> {
        let Some(current) = self.applied.load_full() else {
            return Ok(());
        };
        let t = &current.topology;
        if topology.cluster_id != t.cluster_id {
            return Err(ApplyError::OtherCluster {
                got: topology.cluster_id,
                mine: t.cluster_id,
            });
        }
        if topology.version <= t.version {
            return Err(ApplyError::Stale {
                got: topology.version,
                applied: t.version,
            });
        }
        check_successor(t, topology, self.me).map_err(|refusal| ApplyError::Refused {
            version: topology.version,
            refusal,
        })
    }

    /// Drops the applied topology (the control plane says this node is not a member).
    pub fn clear(&self) {
        let _guard = self.apply_lock.lock();
        self.applied.store(None);
    }

    /// Whether the dataset is incomplete (see [`Cluster::set_partial`]).
    pub fn is_partial(&self) -> bool {
        self.partial.load(Ordering::Acquire)
    }

    /// Marks the dataset incomplete (a full sync began) or complete (it ended).
    pub fn set_partial(&self, partial: bool) {
        self.partial.store(partial, Ordering::Release);
    }

    /// Whether this node may execute a command whose keys all hash to `slot`;
    /// `replica_read`: the command only reads and the client sent `READONLY`, so a
    /// replica of the slot's owner may serve it.
    pub fn route(&self, slot: u16, replica_read: bool) -> Result<(), RouteError> {
        if self.standalone {
            return Ok(());
        }
        let applied = self.applied.load();
        let Some(applied) = applied.as_ref() else {
            return Err(RouteError::ClusterDown);
        };
        if !applied.state_ok {
            return Err(RouteError::ClusterDown);
        }
        let s = usize::from(slot);
        if replica_read && applied.replica_reads[s / 64] & (1 << (s % 64)) != 0 {
            let stale_refused =
                self.refuse_stale.load(Ordering::Acquire) && self.link_down.load(Ordering::Acquire);
            return match self.is_partial() || stale_refused {
                true => Err(RouteError::MasterDown),
                false => Ok(()),
            };
        }
        match applied.routes[s] {
            HERE => Ok(()),
            UNASSIGNED => Err(RouteError::SlotNotServed),
            i => Err(RouteError::Moved {
                slot,
                addr: applied.addrs[usize::from(i)].to_string(),
            }),
        }
    }

    /// Whether `slot` is served by this node (used by the keyspace for per-slot work).
    pub fn serves(&self, slot: u16) -> bool {
        self.standalone
            || self
                .applied
                .load()
                .as_ref()
                .is_some_and(|a| a.routes[usize::from(slot)] == HERE)
    }

    /// Whether this node holds `slot`'s data by the applied topology: it owns it, or is
    /// a replica of its owner (whatever the cluster's state). `None` before a topology.
    pub fn holds(&self, slot: u16) -> Option<bool> {
        if self.standalone {
            return Some(true);
        }
        let applied = self.applied.load();
        let a = applied.as_ref()?;
        let s = usize::from(slot);
        Some(a.routes[s] == HERE || a.replica_reads[s / 64] & (1 << (s % 64)) != 0)
    }

    /// This node's role in the applied topology.
    pub fn role(&self) -> Role {
        self.applied
            .load()
            .as_ref()
            .and_then(|a| a.topology.nodes.get(&self.me).map(|n| n.role))
            .unwrap_or(Role::Primary)
    }

    /// (sent, received) session messages.
    pub fn message_counts(&self) -> (u64, u64) {
        (
            self.messages_sent.load(Ordering::Relaxed),
            self.messages_received.load(Ordering::Relaxed),
        )
    }

    /// The `# Cluster` section of `INFO` (lines end in `\r\n`).
    pub fn info_section(&self) -> String {
        let h = self.holds.lock();
        format!(
            "cluster_enabled:1\r\n\
             migration_handoffs:{}\r\n\
             migration_handoffs_started:{}\r\n\
             migration_handoffs_aborted:{}\r\n\
             migration_hold_last_ms:{:.3}\r\n\
             migration_hold_max_ms:{:.3}\r\n\
             migration_hold_p99_ms:{:.3}\r\n",
            h.count,
            h.started,
            h.aborted,
            h.last_ms,
            h.max_ms,
            h.p99_ms()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::NodeInfo;

    fn topology(version: u64, me: NodeId, other: NodeId) -> Topology {
        let mut t = Topology::new(Uuid::from_u128(42));
        t.version = version;
        for (id, port) in [(me, 7001), (other, 7002)] {
            t.nodes.insert(
                id,
                NodeInfo {
                    id,
                    name: None,
                    client_addr: format!("127.0.0.1:{port}"),
                    internal_addr: format!("127.0.0.1:1{port}"),
                    role: Role::Primary,
                    failed: false,
                    config_epoch: port - 7000,
                },
            );
        }
        (0..8192).for_each(|s| t.slots.set(s, Some(me)));
        (8192..16384).for_each(|s| t.slots.set(s, Some(other)));
        t
    }

    #[test]
    fn routes_by_the_applied_snapshot_only() {
        let (me, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let cluster = Cluster::new(me);
        assert_eq!(cluster.route(0, false), Err(RouteError::ClusterDown));
        cluster.apply(topology(5, me, other)).unwrap();
        assert_eq!(cluster.route(0, false), Ok(()));
        assert_eq!(
            cluster.route(9000, false).unwrap_err().to_string(),
            "MOVED 9000 127.0.0.1:7002"
        );
        // Stale and foreign snapshots are refused and change nothing.
        let mut t = topology(5, me, other);
        t.slots.set(0, Some(other));
        assert!(matches!(
            cluster.apply(t.clone()),
            Err(ApplyError::Stale { .. })
        ));
        t.version = 6;
        t.cluster_id = Uuid::from_u128(7);
        assert!(matches!(
            cluster.apply(t),
            Err(ApplyError::OtherCluster { .. })
        ));
        assert_eq!(cluster.route(0, false), Ok(()));
        // A failed owner with full coverage takes the whole cluster down.
        let mut t = topology(6, me, other);
        t.nodes.get_mut(&other).unwrap().failed = true;
        cluster.apply(t).unwrap();
        assert_eq!(
            cluster.route(0, false).unwrap_err().to_string(),
            "CLUSTERDOWN The cluster is down"
        );
        // Without full coverage an unassigned slot is "not served".
        let mut t = topology(7, me, other);
        t.require_full_coverage = false;
        t.slots.set(9001, None);
        cluster.apply(t.clone()).unwrap();
        assert_eq!(
            cluster.route(9001, false).unwrap_err().to_string(),
            "CLUSTERDOWN Hash slot not served"
        );
        // A newer map that takes this node's slots to nobody (or to an owner with an
        // older epoch) is refused and changes nothing.
        t.version = 8;
        t.slots.set(1, None);
        assert!(matches!(cluster.apply(t), Err(ApplyError::Refused { .. })));
        assert_eq!(cluster.route(1, false), Ok(()));
    }
}
