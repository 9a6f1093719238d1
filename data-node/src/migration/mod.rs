//! Live slot migration, node side (the control plane only records and commits).
//!
//! - [`source`]: the `Internal.Pull` service: snapshot the slots, then tail their writes,
//!   then hold writes to them while the last changes drain (the handoff).
//! - [`target`]: pulls the slots into *staging* tables, invisible to clients (KEYS, SCAN,
//!   DBSIZE, COUNTKEYSINSLOT see only live tables), and reports progress and readiness.
//! - [`codec`]: keys to and from the wire, big values in pieces.
//!
//! The topology drives everything: a migration appears in a snapshot (the target starts
//! pulling), the target reports `ready`, the control plane asks it for its promise, the
//! target promises (`promised`), the control plane commits (new owner, new version) or
//! aborts. The handoff's decision is kept by the target in a [`handoff::Cell`]: the
//! source, whose hold is bounded ([`source::HOLD_TIMEOUT`]), asks the target to abort
//! when the control plane has not decided in time, and the target agrees unless it has
//! promised (then only the control plane's decision ends the hold). When a node applies
//! a snapshot, [`Migrations::before_apply`]
//! installs staged slots that it now owns (before routing says so, so no client ever
//! sees them half-filled) and [`Migrations::after_apply`] releases held writes (they
//! re-route and get `MOVED`), frees slots the node no longer owns, and drops staging of
//! aborted migrations. Every key is thus on exactly one owner at any time.

pub mod codec;
mod dirty;
pub mod source;
pub mod target;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use ember_core::{NodeId, SlotSet, Topology, SLOT_COUNT};
use ember_proto::pb;
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::cluster::applier::TopologyListener;
use crate::db::SlotTable;
use crate::handoff;
use crate::state::ServerState;

/// A migration this node serves as the source.
struct Outgoing {
    /// The migration's slots, and the keys written to them since the stream began
    /// (subscribed to the keyspace's effects while the migration runs here).
    dirty: Arc<dirty::DirtyKeys>,
    target: NodeId,
    task: tokio::task::AbortHandle,
    /// When writes started being held (handoff), if they are.
    hold_since: Option<Instant>,
    /// This pull replaced one that had reached the handoff: the target process that
    /// received it (restarted since) may have promised, and a new process cannot know,
    /// so only the control plane's decision ends this hold.
    only_control_plane: bool,
}

/// A migration this node pulls as the target.
struct Incoming {
    slots: SlotSet,
    source: NodeId,
    task: tokio::task::AbortHandle,
    /// The handoff's decision, kept here (the target) for both the source and the
    /// control plane.
    decision: Arc<handoff::Cell>,
}

pub struct Migrations {
    state: Arc<ServerState>,
    /// Imported, not yet committed slot tables (target side).
    staging: Mutex<HashMap<u16, SlotTable>>,
    outgoing: Mutex<HashMap<Uuid, Outgoing>>,
    /// Outgoing migrations whose handoff the target agreed to abort: this node keeps the
    /// slots and refuses to serve them again (remembered while in the topology).
    // Ordering: locked only while `outgoing` is, so a pull is refused or recorded
    // atomically with respect to an abort.
    aborted_out: Mutex<HashSet<Uuid>>,
    incoming: Mutex<HashMap<Uuid, Incoming>>,
    /// The latest report per migration, re-sent on every heartbeat until it ends.
    reports: Mutex<HashMap<Uuid, pb::MigrationReport>>,
    /// Wakes the session to send reports now (readiness is latency-critical).
    pub report_now: Notify,
}

impl Migrations {
    pub fn new(state: Arc<ServerState>) -> Arc<Self> {
        Arc::new(Self {
            state,
            staging: Mutex::default(),
            outgoing: Mutex::default(),
            aborted_out: Mutex::default(),
            incoming: Mutex::default(),
            reports: Mutex::default(),
            report_now: Notify::new(),
        })
    }

    pub fn state(&self) -> &ServerState {
        &self.state
    }

    pub fn state_arc(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    fn me(&self) -> NodeId {
        self.state.cluster.me()
    }

    /// Reports to send to the control plane.
    pub fn reports(&self) -> Vec<pb::MigrationReport> {
        self.reports.lock().values().cloned().collect()
    }

    fn report(&self, report: pb::MigrationReport, urgent: bool) {
        self.reports
            .lock()
            .insert(report.id.parse().unwrap_or_default(), report);
        if urgent {
            self.report_now.notify_one();
        }
    }

    /// Number of keys staged (imported, invisible) right now.
    pub fn staged_keys(&self) -> usize {
        self.staging.lock().values().map(SlotTable::len).sum()
    }

    /// Stops recording the keys written to an outgoing migration's slots.
    fn stop_tracking(&self, dirty: &Arc<dirty::DirtyKeys>) {
        let consumer: Arc<dyn crate::db::Consumer> = dirty.clone();
        self.state.db.observers.unsubscribe(&consumer);
    }

    /// Stops tracking and holding the slots of an outgoing migration, waking held writes.
    fn end_outgoing(&self, dirty: &Arc<dirty::DirtyKeys>) {
        self.stop_tracking(dirty);
        for slot in dirty.slots.iter() {
            self.state.db.lock(slot).set_held(false);
        }
        self.state.db.notify_released();
    }

    /// The staging table of `slot` (target side), locked for the closure, unless the
    /// handoff was aborted.
    // Ordering: the phase is checked under the staging lock, and an abort discards the
    // staging under the same lock (`target::abort_handoff`), so nothing is staged after
    // an abort.
    fn with_staging<R>(
        &self,
        slot: u16,
        decision: &handoff::Cell,
        f: impl FnOnce(&mut SlotTable) -> R,
    ) -> Result<R, handoff::Aborted> {
        let mut staging = self.staging.lock();
        if decision.phase() == handoff::Phase::Aborted {
            return Err(handoff::Aborted);
        }
        Ok(f(staging.entry(slot).or_default()))
    }

    /// As a replica: stages a piece of a key its primary imports (an encoded
    /// `KeyPart`), invisible until the migration commits.
    pub fn stage_from_primary(&self, slot: u16, part: &[u8]) -> anyhow::Result<()> {
        use prost::Message;
        let part = pb::KeyPart::decode(part)?;
        codec::apply(self.staging.lock().entry(slot).or_default(), part, 0)?;
        Ok(())
    }

    /// As a replica: the primary installed `slot` and sends it whole; what was staged
    /// of it here is superseded.
    pub fn drop_staged(&self, slot: u16) {
        if let Some(t) = self.staging.lock().remove(&slot) {
            drop_in_background(vec![t]);
        }
    }

    /// Whether `slot` is being imported by a running pull of this node.
    fn importing(&self, id: Uuid, slot: u16) -> bool {
        self.incoming
            .lock()
            .get(&id)
            .is_some_and(|m| m.slots.contains(slot))
    }
}

impl TopologyListener for Migrations {
    /// Called with a snapshot that is about to be applied: install the staged slots that
    /// it gives to this node, so they are complete before routing sends clients here.
    fn before_apply(&self, next: &Topology) {
        let me = self.me();
        // A replica stages its primary's imports: it installs them at the same commit.
        let holder = next.holder_of(me);
        let mut staging = self.staging.lock();
        let owned_now: Vec<u16> = staging
            .keys()
            .copied()
            .filter(|s| next.slots.owner(*s) == Some(holder))
            .collect();
        for slot in owned_now {
            let table = staging.remove(&slot).expect("listed");
            self.state.db.install_slot(slot, table);
        }
        // Migrations that committed are finished on this side.
        let running: HashSet<Uuid> = next.migrations.iter().map(|m| m.id).collect();
        self.incoming.lock().retain(|id, m| {
            let keep = running.contains(id);
            if !keep {
                m.task.abort();
                let committed = m.slots.iter().any(|s| next.slots.owner(s) == Some(me));
                let phase = m.decision.phase();
                if committed && phase != handoff::Phase::Promised {
                    // The control plane commits only after this node's promise.
                    tracing::error!(
                        migration = %id, ?phase,
                        "BUG: a migration this node did not promise was committed; its slots have no imported data"
                    );
                }
            }
            keep
        });
    }

    /// Called after a snapshot was applied: release holds, free slots this node no
    /// longer owns, drop staging of aborted migrations, and start pulling new ones.
    fn after_apply(self: Arc<Self>, t: &Topology) {
        let me = self.me();
        let running: HashMap<Uuid, &ember_core::Migration> =
            t.migrations.iter().map(|m| (m.id, m)).collect();

        // Source side: a migration that left the topology ended (committed or aborted).
        let ended: Vec<(Uuid, Outgoing)> = {
            let mut out = self.outgoing.lock();
            let ids: Vec<Uuid> = out
                .keys()
                .copied()
                .filter(|id| !running.contains_key(id))
                .collect();
            ids.into_iter()
                .filter_map(|id| out.remove(&id).map(|o| (id, o)))
                .collect()
        };
        for (id, o) in ended {
            o.task.abort();
            self.end_outgoing(&o.dirty);
            if let Some(since) = o.hold_since {
                let held = since.elapsed();
                self.state.cluster.holds.lock().record(held);
                tracing::info!(migration = %id, held_ms = held.as_secs_f64() * 1000.0, "handoff finished");
            }
        }
        self.reports.lock().retain(|id, _| running.contains_key(id));
        {
            let _out = self.outgoing.lock();
            self.aborted_out
                .lock()
                .retain(|id| running.contains_key(id));
        }

        // Target side (or its replica): staging of slots no longer being imported is
        // dropped (aborted).
        let holder = t.holder_of(me);
        let importing: SlotSet = t
            .migrations
            .iter()
            .filter(|m| m.target == holder)
            .flat_map(|m| m.slots.iter().flat_map(|r| r.iter()))
            .collect();
        let dropped: Vec<SlotTable> = {
            let mut staging = self.staging.lock();
            let gone: Vec<u16> = staging
                .keys()
                .copied()
                .filter(|s| !importing.contains(*s))
                .collect();
            gone.iter().filter_map(|s| staging.remove(s)).collect()
        };
        if !dropped.is_empty() {
            tracing::info!(
                slots = dropped.len(),
                "dropped the staging of aborted migrations"
            );
            drop_in_background(dropped);
        }

        // Slots whose data this node does not hold (its own, or as a replica its
        // primary's) must be empty: free them, but for keys a snapshot loaded at start
        // (kept, invisible and reported as orphaned: never deleted silently).
        let mut freed = Vec::new();
        let persist = &self.state.persist;
        for slot in 0..SLOT_COUNT {
            let held = t.slots.owner(slot) == Some(holder);
            if persist.keep_unheld(slot, held) {
                continue;
            }
            if !held && self.state.db.count_in_slot(slot) > 0 {
                freed.push(self.state.db.take_slot(slot));
            }
        }
        if !freed.is_empty() {
            let keys: usize = freed.iter().map(SlotTable::len).sum();
            tracing::info!(keys, "freeing keys of slots this node no longer owns");
            drop_in_background(freed);
        }

        // New migrations into this node.
        for m in t.migrations.iter().filter(|m| m.target == me) {
            let mut incoming = self.incoming.lock();
            if incoming.contains_key(&m.id) {
                continue;
            }
            let Some(source) = t.nodes.get(&m.source) else {
                continue;
            };
            let slots: SlotSet = SlotSet::from_ranges(&m.slots);
            let decision = Arc::new(handoff::Cell::new());
            let task = tokio::spawn(target::pull(
                self.clone(),
                m.id,
                slots.clone(),
                decision.clone(),
                source.internal_addr.clone(),
                t.cluster_id,
                t.version,
            ))
            .abort_handle();
            incoming.insert(
                m.id,
                Incoming {
                    slots,
                    source: m.source,
                    task,
                    decision,
                },
            );
        }
    }
}

/// Dropping millions of keys takes a while: do it off the async workers.
fn drop_in_background(tables: Vec<SlotTable>) {
    tokio::task::spawn_blocking(move || drop(tables));
}
