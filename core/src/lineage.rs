//! The lineage of the topology: which history a version belongs to, and the rules by
//! which a data node decides that a snapshot may replace the one it applied.
//!
//! A version number alone cannot tell a continuation from a fork: a control plane
//! restarted from an older copy of its state counts 4, 5, 6 ... again, and once it passes
//! the version the nodes applied, its (stale) slot map looks newer. So every topology
//! carries its [`History`]: which control-plane *incarnation* (a random number drawn by
//! each control-plane process, or leader term, when it starts committing) committed
//! which versions, the last [`History::MAX`] stretches of it. A node remembers the
//! incarnation of the version it applied and says both in its hello; whoever holds a
//! history covering that version can tell whether the node saw the same history
//! ([`History::judge`]).
//!
//! A restore (`emberctl import-state`) starts a new history at `restored_at`, above every
//! version and epoch the nodes reported, so that nodes accept it as what it is: an
//! explicit operation, not a stale copy.
//!
//! Independently of the history, a node never accepts a snapshot that moves epochs
//! backwards or takes its slots away to an owner whose config epoch is not above its own
//! ([`check_successor`]): every legitimate move of a slot (migration commit, later
//! failover, restore) gives the new owner an epoch above every epoch the old one held.

use serde::{Deserialize, Serialize};

use crate::slots::{SlotSet, SLOT_COUNT};
use crate::topology::{NodeId, Topology};

/// Versions from `from_version` on (up to the next entry) were committed by `incarnation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stretch {
    pub from_version: u64,
    pub incarnation: u64,
}

/// The recent history of a topology, oldest stretch first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History(pub Vec<Stretch>);

/// What a history says about a version someone else applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lineage {
    /// Same history (or nothing applied yet).
    Consistent,
    /// Older than the recorded history (or without an incarnation): cannot tell.
    Unknown,
    /// The other side applied a version this history never reached.
    Ahead { seen: u64, latest: u64 },
    /// The other side applied this version from a different history.
    Forked {
        version: u64,
        theirs: u64,
        ours: u64,
    },
}

impl History {
    /// Stretches kept: one is added per control-plane incarnation that commits anything.
    pub const MAX: usize = 64;

    /// Records that `version` was committed by `incarnation`.
    pub fn record(&mut self, version: u64, incarnation: u64) {
        if self.0.last().is_some_and(|s| s.incarnation == incarnation) {
            return;
        }
        self.0.push(Stretch {
            from_version: version,
            incarnation,
        });
        if self.0.len() > Self::MAX {
            self.0.remove(0);
        }
    }

    /// The incarnation that committed `version`, if the history reaches back that far.
    pub fn incarnation_of(&self, version: u64) -> Option<u64> {
        self.0
            .iter()
            .rev()
            .find(|s| s.from_version <= version)
            .map(|s| s.incarnation)
    }

    /// Whether a node that applied `seen` (committed by `incarnation`, 0 if it does not
    /// know) saw this history, whose latest version is `latest`.
    pub fn judge(&self, latest: u64, seen: u64, incarnation: u64) -> Lineage {
        if seen == 0 {
            return Lineage::Consistent;
        }
        if seen > latest {
            return Lineage::Ahead { seen, latest };
        }
        match self.incarnation_of(seen) {
            Some(ours) if incarnation != 0 && ours != incarnation => Lineage::Forked {
                version: seen,
                theirs: incarnation,
                ours,
            },
            Some(_) if incarnation != 0 => Lineage::Consistent,
            _ => Lineage::Unknown,
        }
    }
}

/// Why a node refused a snapshot newer than the one it applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "it comes from another history: version {version} was committed by control-plane \
         incarnation {ours:016x} here but by {theirs:016x} in the snapshot"
    )]
    Forked {
        version: u64,
        ours: u64,
        theirs: u64,
    },
    #[error("its current epoch {got} is below the applied {applied}")]
    EpochBackwards { got: u64, applied: u64 },
    #[error(
        "it takes slots {slots} from this node (config epoch {mine}) without giving them to \
         an owner with a higher config epoch"
    )]
    TakesSlots { slots: SlotSet, mine: u64 },
}

/// Whether node `me`, having applied `applied`, may apply `next` (already known to be of
/// the same cluster and newer).
pub fn check_successor(applied: &Topology, next: &Topology, me: NodeId) -> Result<(), Refusal> {
    let mine = applied.incarnation();
    if mine != 0 && next.restored_at <= applied.version {
        if let Some(theirs) = next.history.incarnation_of(applied.version) {
            if theirs != mine {
                return Err(Refusal::Forked {
                    version: applied.version,
                    ours: mine,
                    theirs,
                });
            }
        }
    }
    if next.current_epoch < applied.current_epoch {
        return Err(Refusal::EpochBackwards {
            got: next.current_epoch,
            applied: applied.current_epoch,
        });
    }
    let Some(my_epoch) = applied.nodes.get(&me).map(|n| n.config_epoch) else {
        return Ok(());
    };
    let taken: SlotSet = (0..SLOT_COUNT)
        .filter(|s| applied.slots.owner(*s) == Some(me))
        .filter(|s| match next.slots.owner(*s) {
            Some(o) if o == me => false,
            Some(o) => next
                .nodes
                .get(&o)
                .is_none_or(|n| n.config_epoch <= my_epoch),
            None => true,
        })
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(Refusal::TakesSlots {
            slots: taken,
            mine: my_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{NodeInfo, Role};
    use uuid::Uuid;

    #[test]
    fn judges_versions_against_the_history() {
        let mut h = History::default();
        h.record(1, 10);
        h.record(2, 10);
        h.record(4, 20);
        assert_eq!(h.0.len(), 2);
        assert_eq!(h.judge(6, 0, 0), Lineage::Consistent);
        assert_eq!(h.judge(6, 3, 10), Lineage::Consistent);
        assert_eq!(h.judge(6, 5, 20), Lineage::Consistent);
        assert_eq!(h.judge(6, 5, 0), Lineage::Unknown);
        assert_eq!(
            h.judge(6, 5, 10),
            Lineage::Forked {
                version: 5,
                theirs: 10,
                ours: 20
            }
        );
        assert_eq!(h.judge(6, 7, 20), Lineage::Ahead { seen: 7, latest: 6 });
        // A restored history starts later: older versions cannot be judged.
        let restored = History(vec![Stretch {
            from_version: 50,
            incarnation: 30,
        }]);
        assert_eq!(restored.judge(50, 11, 10), Lineage::Unknown);
        for i in 0..100 {
            h.record(10 + i, 100 + i);
        }
        assert_eq!(h.0.len(), History::MAX);
    }

    fn topology(version: u64, incarnation: u64, owners: &[(u128, u64, u16, u16)]) -> Topology {
        let mut t = Topology::new(Uuid::from_u128(99));
        t.version = version;
        t.history.record(1, incarnation);
        for &(id, epoch, from, to) in owners {
            let id = Uuid::from_u128(id);
            t.nodes.insert(
                id,
                NodeInfo {
                    id,
                    name: None,
                    client_addr: format!("127.0.0.1:{}", 7000 + id.as_u128()),
                    internal_addr: String::new(),
                    role: Role::Primary,
                    failed: false,
                    config_epoch: epoch,
                },
            );
            (from..=to).for_each(|s| t.slots.set(s, Some(id)));
            t.current_epoch = t.current_epoch.max(epoch);
        }
        t
    }

    #[test]
    fn a_node_gives_slots_only_to_a_higher_epoch() {
        let me = Uuid::from_u128(1);
        let applied = topology(11, 7, &[(1, 5, 0, 999), (2, 2, 1000, 16383)]);
        // A migration commit: the new owner's epoch is above mine.
        let moved = topology(12, 7, &[(1, 5, 0, 499), (2, 6, 500, 16383)]);
        assert_eq!(check_successor(&applied, &moved, me), Ok(()));
        // A stale map: the slots go back to an owner with an older epoch.
        let mut stale = topology(12, 7, &[(1, 3, 0, 99), (2, 2, 100, 16383)]);
        stale.current_epoch = 5;
        assert!(matches!(
            check_successor(&applied, &stale, me),
            Err(Refusal::TakesSlots { mine: 5, .. })
        ));
        let mut unassigned = applied.clone();
        unassigned.version = 12;
        unassigned.slots.set(3, None);
        assert!(check_successor(&applied, &unassigned, me).is_err());
        let mut backwards = moved.clone();
        backwards.current_epoch = 4;
        assert!(matches!(
            check_successor(&applied, &backwards, me),
            Err(Refusal::EpochBackwards { .. })
        ));
        // Another history covering my version: refused even if the map looks fine.
        let mut forked = moved.clone();
        forked.history = History::default();
        forked.history.record(1, 8);
        assert!(matches!(
            check_successor(&applied, &forked, me),
            Err(Refusal::Forked { version: 11, .. })
        ));
        // An explicit restore above my version starts a new history: accepted.
        forked.restored_at = 12;
        assert_eq!(check_successor(&applied, &forked, me), Ok(()));
    }
}
