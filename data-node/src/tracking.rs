//! Client-side caching (`CLIENT TRACKING`), as Redis 6+: the node remembers which keys
//! each tracking client read and, when one changes (a write, its expiry, `FLUSHALL`, its
//! slot leaving this node), sends that client an invalidation once and forgets it.
//!
//! - **Default mode**: the keys of the read commands a tracking client runs (with
//!   `OPTIN`, only after `CLIENT CACHING yes`; with `OPTOUT`, unless `CLIENT CACHING no`).
//! - **`BCAST`**: no key is remembered; every change of a key with one of the client's
//!   prefixes (or of any key, without prefixes) is sent.
//! - **Delivery**: a RESP3 push `invalidate [keys]` on the client's own connection, or on
//!   its `REDIRECT` client's: there, over RESP2, as a `message` of `__redis__:invalidate`
//!   (if it subscribed to that channel). `NOLOOP`: not for the client's own writes.
//!   A flush invalidates everything (`invalidate` with a null key list).
//! - **Bounded**: at most `tracking-table-max-keys` keys are remembered (Redis's default,
//!   1,000,000); beyond, the oldest are invalidated and forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::pubsub::Push;
use crate::state::ClientRegistry;

/// Most keys remembered (Redis's `tracking-table-max-keys` default).
pub const MAX_KEYS: usize = 1_000_000;

/// One client's `CLIENT TRACKING on ...` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub redirect: Option<u64>,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// The node's tracking table.
#[derive(Default)]
pub struct Tracker {
    /// Tracking clients (any mode); every write checks it before doing anything.
    clients: AtomicUsize,
    options: RwLock<HashMap<u64, Options>>,
    keys: Mutex<Remembered>,
}

/// Default mode: key → the clients that read it, and the keys in insertion order (for
/// the bound).
#[derive(Default)]
struct Remembered {
    readers: HashMap<Bytes, Vec<u64>>,
    order: VecDeque<Bytes>,
}

impl Tracker {
    /// Any client tracks.
    pub fn active(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 0
    }

    pub fn options(&self, client: u64) -> Option<Options> {
        self.options.read().get(&client).cloned()
    }

    pub fn enable(&self, client: u64, options: Options) {
        if self.options.write().insert(client, options).is_none() {
            self.clients.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `CLIENT TRACKING off`, `RESET`, or the client is gone.
    pub fn disable(&self, client: u64) {
        if self.options.write().remove(&client).is_some() {
            self.clients.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Tracking clients and remembered keys (`INFO`).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.clients.load(Ordering::Relaxed),
            self.keys.lock().readers.len(),
        )
    }

    /// `client` read `keys` (default mode).
    pub fn read(&self, client: u64, keys: &[&Bytes], registry: &ClientRegistry) {
        let mut evicted = Vec::new();
        {
            let mut t = self.keys.lock();
            let Remembered {
                readers: map,
                order,
            } = &mut *t;
            for k in keys {
                let readers = map.entry((*k).clone()).or_insert_with(|| {
                    order.push_back((*k).clone());
                    Vec::new()
                });
                if !readers.contains(&client) {
                    readers.push(client);
                }
            }
            while map.len() > MAX_KEYS {
                let Some(old) = order.pop_front() else { break };
                if let Some(readers) = map.remove(&old) {
                    evicted.push((old, readers));
                }
            }
            // Invalidated keys leave their place in `order` behind: drop those now and
            // then (amortized O(1) per read).
            if order.len() > 2 * map.len() + 1024 {
                order.retain(|k| map.contains_key(k));
            }
        }
        for (key, readers) in evicted {
            self.send_to(&readers, Some(vec![key]), None, registry);
        }
    }

    /// `keys` changed (`by`: the client that wrote them, for `NOLOOP`).
    pub fn changed(&self, keys: &[&[u8]], by: Option<u64>, registry: &ClientRegistry) {
        if !self.active() {
            return;
        }
        for key in keys {
            let readers = self.keys.lock().readers.remove(*key);
            let key = Bytes::copy_from_slice(key);
            if let Some(readers) = readers {
                self.send_to(&readers, Some(vec![key.clone()]), by, registry);
            }
            let bcast: Vec<u64> = self
                .options
                .read()
                .iter()
                .filter(|(_, o)| {
                    o.bcast
                        && (o.prefixes.is_empty() || o.prefixes.iter().any(|p| key.starts_with(p)))
                })
                .map(|(id, _)| *id)
                .collect();
            if !bcast.is_empty() {
                self.send_to(&bcast, Some(vec![key]), by, registry);
            }
        }
    }

    /// Every key changed (`FLUSHALL`): every tracking client is told, and nothing is
    /// remembered any more.
    pub fn flushed(&self, registry: &ClientRegistry) {
        if !self.active() {
            return;
        }
        *self.keys.lock() = Default::default();
        let all: Vec<u64> = self.options.read().keys().copied().collect();
        self.send_to(&all, None, None, registry);
    }

    /// Sends one invalidation (`None`: of everything) to each of `clients` (or their
    /// redirect targets) that tracks, `NOLOOP` respected.
    fn send_to(
        &self,
        clients: &[u64],
        keys: Option<Vec<Bytes>>,
        by: Option<u64>,
        registry: &ClientRegistry,
    ) {
        let options = self.options.read();
        for id in clients {
            let Some(o) = options.get(id) else { continue };
            if o.noloop && by == Some(*id) {
                continue;
            }
            let target = o.redirect.unwrap_or(*id);
            if let Some(mailbox) = registry.get(target).and_then(|c| c.mailbox.lock().clone()) {
                let _ = mailbox.send(Push::Invalidate { keys: keys.clone() });
            }
        }
    }
}

/// Invalidates the remembered keys of slots this node stops serving (a migration or a
/// failover moved them away): their new owner has no memory of who read them.
pub struct TrackingListener(pub std::sync::Arc<crate::state::ServerState>);

impl crate::cluster::applier::TopologyListener for TrackingListener {
    fn before_apply(&self, _: &ember_core::Topology) {}

    fn after_apply(self: std::sync::Arc<Self>, _: &ember_core::Topology) {
        let state = &self.0;
        if !state.tracker.active() {
            return;
        }
        let gone: Vec<Bytes> = {
            let t = state.tracker.keys.lock();
            t.readers
                .keys()
                .filter(|k| !state.cluster.serves(ember_core::key_slot(k)))
                .cloned()
                .collect()
        };
        let keys: Vec<&[u8]> = gone.iter().map(|k| k.as_ref()).collect();
        state.tracker.changed(&keys, None, &state.clients);
    }
}
