//! Clients blocked on keys (`BLPOP`, `BLMOVE`, `BZPOPMIN` ...): who waits for what, who
//! serves them, and what ends a wait.
//!
//! A blocked client is a [`Waiter`] queued under each of its keys in the slot's table
//! ([`Waiters`], kept in [`crate::db::SlotTable`], so it changes only under the slot's
//! lock) and listed in the node's [`Blocked`] registry (for `CLIENT UNBLOCK`,
//! `INFO clients` and topology changes). Its connection waits for one reply.
//!
//! - **Served by the writer, as in Redis.** After any write to a slot that has waiters
//!   (and after an `EXEC`, once the whole transaction ran), [`serve`] runs, still under
//!   the slot's lock: for every key with waiters that now holds a value of the type they
//!   wait for, the waiters are served in the order they blocked, each with the
//!   non-blocking form of its command on that key (`BLPOP a b 0` served by `a` runs
//!   `LPOP a`), which is also what propagates to replicas. So a push wakes the client that
//!   blocked first, and nobody can take the element in between; a value pushed and
//!   popped inside one transaction wakes nobody. A `BLMOVE` served may feed a client
//!   blocked on its destination: serving repeats until nobody more can be served.
//! - **One decision per wait.** A waiter's reply channel is taken exactly once
//!   ([`Waiter::claim`]): by the writer that serves it (under the slot's lock, before it
//!   pops anything), or by its timeout, `CLIENT UNBLOCK`, its client's disconnection, or
//!   the slot leaving this node (answered with the redirect). Whoever comes second finds
//!   it taken, so an element is never popped for a client that already gave up.
//! - **The slot leaves.** After every topology change ([`Blocked`] is a topology
//!   listener), waiters on slots this node no longer serves get the routing error
//!   (`MOVED`): a client is never left waiting on a node that cannot serve it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::cmd::blocking::Kind;
use crate::cmd::{record_write, Client, Ctx};
use crate::db::SlotGuard;
use crate::resp::Reply;
use crate::state::ServerState;

/// One blocked client.
pub struct Waiter {
    pub client: u64,
    pub slot: u16,
    /// What it runs once a key has something (and how its reply looks).
    pub kind: Kind,
    /// Its keys, in the order given (all in `slot`).
    pub keys: Vec<Bytes>,
    reply: Mutex<Option<oneshot::Sender<Reply>>>,
}

impl Waiter {
    pub fn new(
        client: u64,
        slot: u16,
        kind: Kind,
        keys: Vec<Bytes>,
    ) -> (Arc<Waiter>, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let w = Waiter {
            client,
            slot,
            kind,
            keys,
            reply: Mutex::new(Some(tx)),
        };
        (Arc::new(w), rx)
    }

    /// Takes the right to answer this wait; `None` if someone already did.
    pub fn claim(&self) -> Option<oneshot::Sender<Reply>> {
        self.reply.lock().take()
    }

    /// Answers with `r` unless someone already answered; whether this call did.
    pub fn answer(&self, r: Reply) -> bool {
        match self.claim() {
            Some(tx) => {
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }

    fn answered(&self) -> bool {
        self.reply.lock().is_none()
    }
}

/// The waiters of one slot, per key, in the order they blocked.
#[derive(Default)]
pub struct Waiters {
    queues: HashMap<Bytes, VecDeque<Arc<Waiter>>>,
}

impl Waiters {
    pub fn add(&mut self, w: &Arc<Waiter>) {
        for (i, k) in w.keys.iter().enumerate() {
            if w.keys[..i].contains(k) {
                continue;
            }
            self.queues
                .entry(k.clone())
                .or_default()
                .push_back(w.clone());
        }
    }

    pub fn remove(&mut self, w: &Arc<Waiter>) {
        for k in &w.keys {
            if let Some(q) = self.queues.get_mut(k) {
                q.retain(|x| !Arc::ptr_eq(x, w));
                if q.is_empty() {
                    self.queues.remove(k);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    fn keys(&self) -> Vec<Bytes> {
        self.queues.keys().cloned().collect()
    }

    fn front(&self, key: &[u8]) -> Option<Arc<Waiter>> {
        self.queues.get(key)?.front().cloned()
    }

    /// Every waiter, once each.
    pub fn drain(&mut self) -> Vec<Arc<Waiter>> {
        let mut all: Vec<Arc<Waiter>> = Vec::new();
        for (_, q) in self.queues.drain() {
            for w in q {
                if !all.iter().any(|x| Arc::ptr_eq(x, &w)) {
                    all.push(w);
                }
            }
        }
        all
    }
}

/// The node's blocked clients.
#[derive(Default)]
pub struct Blocked {
    by_client: Mutex<HashMap<u64, Arc<Waiter>>>,
    /// Slots whose tables may hold waiters.
    slots: Mutex<BTreeSet<u16>>,
    count: AtomicUsize,
}

impl Blocked {
    /// `w` is queued in its slot's table (the caller holds that slot's lock).
    pub fn register(&self, w: &Arc<Waiter>) {
        self.slots.lock().insert(w.slot);
        if self.by_client.lock().insert(w.client, w.clone()).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The wait of `w` is over (whoever answered it): it leaves its slot's queues and
    /// the registry.
    pub fn finish(&self, state: &ServerState, w: &Arc<Waiter>) {
        state.db.with_slot(w.slot, |t| t.remove_waiter(w));
        let mut by_client = self.by_client.lock();
        if by_client.get(&w.client).is_some_and(|x| Arc::ptr_eq(x, w)) {
            by_client.remove(&w.client);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// `blocked_clients` of `INFO clients`.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: answers the client's wait with `reply` of what
    /// it waits in, if it is blocked and nobody answered it yet.
    pub fn unblock(&self, client: u64, reply: impl FnOnce(&Kind) -> Reply) -> bool {
        let w = self.by_client.lock().get(&client).cloned();
        w.is_some_and(|w| w.answer(reply(&w.kind)))
    }

    /// After a topology change: waiters on slots this node no longer serves as a primary
    /// get the routing error (`MOVED`).
    pub fn after_topology(&self, state: &ServerState) {
        let slots: Vec<u16> = self.slots.lock().iter().copied().collect();
        for slot in slots {
            state.db.with_slot(slot, |t| {
                if let Err(e) = state.cluster.route(slot, false) {
                    for w in t.take_waiters() {
                        w.answer(Reply::error(e.to_string()));
                    }
                }
                if !t.has_waiters() {
                    self.slots.lock().remove(&slot);
                }
            });
        }
    }
}

/// Serves the waiters of the slot locked in `t` that can be served now (see the module
/// documentation), publishing what each pop changed. `client` is the writer's (only its
/// context is borrowed; nothing of it changes).
pub fn serve(state: &ServerState, client: &mut Client, t: &mut SlotGuard, slot: u16, now: u64) {
    while t.has_waiters() {
        let mut progress = false;
        for key in t.waiters().map(Waiters::keys).unwrap_or_default() {
            while let Some(w) = t.waiters().and_then(|ws| ws.front(&key)) {
                if w.answered() {
                    t.remove_waiter(&w);
                    continue;
                }
                if !w.kind.ready(t, &key, now) {
                    break;
                }
                let Some(tx) = w.claim() else {
                    t.remove_waiter(&w);
                    continue;
                };
                let mut ctx = Ctx::new(state, client, now);
                ctx.slot = slot;
                ctx.observed = t.observed();
                let (argv, reply) = w.kind.run(&mut ctx, t, &key);
                // `ready` said the key has something, so there is a reply.
                let reply = reply.unwrap_or_else(|| w.kind.timeout_reply());
                let mut effects = Vec::new();
                record_write(&mut ctx, t, &argv, &reply, &mut effects);
                t.publish(effects);
                t.remove_waiter(&w);
                let _ = tx.send(reply);
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

/// Answers the waiters of slots that leave this node, after each topology change.
pub struct BlockedListener(pub Arc<ServerState>);

impl crate::cluster::applier::TopologyListener for BlockedListener {
    fn before_apply(&self, _next: &ember_core::Topology) {}

    fn after_apply(self: Arc<Self>, _applied: &ember_core::Topology) {
        self.0.blocked.after_topology(&self.0);
    }
}
