//! The one place that applies a new topology, in a fixed order, and tells the parts
//! that care (migration today; replication next).
//!
//! 1. Every listener's `before_apply` with the topology about to be applied: install
//!    what this node is about to serve (a migration's staged slots), so it is complete
//!    before routing sends clients here.
//! 2. Routing switches ([`Cluster::apply`]).
//! 3. Every listener's `after_apply`: release what routing now sends elsewhere (a
//!    handoff's held writes get `MOVED`), free slots no longer served, start what the
//!    topology asks for.

use std::sync::Arc;

use ember_core::Topology;

use super::{ApplyError, Cluster};

/// A part of the node that acts on topology changes.
pub trait TopologyListener: Send + Sync {
    /// Called before routing switches to `next`.
    fn before_apply(&self, next: &Topology);
    /// Called after routing switched to `applied`.
    fn after_apply(self: Arc<Self>, applied: &Topology);
}

pub struct Applier {
    cluster: Arc<Cluster>,
    listeners: Vec<Arc<dyn TopologyListener>>,
}

impl Applier {
    pub fn new(cluster: Arc<Cluster>, listeners: Vec<Arc<dyn TopologyListener>>) -> Applier {
        Applier { cluster, listeners }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Applies `next` (checked by [`Cluster::check`] first: a refused topology changes
    /// nothing and tells nobody).
    pub fn apply(&self, next: Topology) -> Result<(), ApplyError> {
        self.cluster.check(&next)?;
        for l in &self.listeners {
            l.before_apply(&next);
        }
        self.cluster.apply(next)?;
        if let Some(applied) = self.cluster.applied() {
            for l in &self.listeners {
                l.clone().after_apply(&applied.topology);
            }
        }
        Ok(())
    }
}
