//! The keys written to the slots of one outgoing migration since its stream began:
//! a consumer of the keyspace's effects ([`crate::db::observe`]), so the source resends
//! exactly what changed, whatever command changed it.

use std::collections::{HashMap, HashSet};

use ember_core::SlotSet;
use parking_lot::Mutex;

use crate::db::{Consumer, Effect, Hasher, Key, SlotTable};

pub struct DirtyKeys {
    /// The migration's slots (effects on other slots are ignored).
    pub slots: SlotSet,
    keys: Mutex<HashMap<u16, HashSet<Key, Hasher>>>,
}

impl DirtyKeys {
    pub fn new(slots: SlotSet) -> DirtyKeys {
        DirtyKeys {
            slots,
            keys: Mutex::default(),
        }
    }

    /// The keys of `slot` written since the last call. Taken with the slot locked and
    /// held, it is complete: no write can add to it then.
    pub fn take(&self, slot: u16) -> Vec<Key> {
        self.keys
            .lock()
            .remove(&slot)
            .map(|d| d.into_iter().collect())
            .unwrap_or_default()
    }

    /// How many keys are dirty now.
    pub fn count(&self) -> usize {
        self.keys.lock().values().map(HashSet::len).sum()
    }
}

impl Consumer for DirtyKeys {
    // Ordering: called under the slot's lock, then takes `keys`; [`DirtyKeys::take`]
    // at the handoff runs under the slot's lock too, so the two never interleave on a
    // slot.
    fn observe(&self, slot: u16, effects: &std::sync::Arc<[Effect]>) {
        if !self.slots.contains(slot) {
            return;
        }
        let mut keys = self.keys.lock();
        let dirty = keys.entry(slot).or_default();
        for e in effects.iter() {
            if let Effect::Command(argv) = e {
                dirty.extend(
                    crate::cmd::keys_of(argv)
                        .into_iter()
                        .map(|k| Key::from(&k[..])),
                );
            }
        }
    }

    /// Every key of a slot being emptied is dirty: the target drops them when they are
    /// sent as absent.
    fn before_clear(&self, slot: u16, table: &SlotTable) {
        if !self.slots.contains(slot) {
            return;
        }
        self.keys
            .lock()
            .entry(slot)
            .or_default()
            .extend(table.keys().map(Key::from));
    }
}
