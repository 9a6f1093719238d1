//! Pub/sub: who is subscribed to what on this node, delivery of messages to them, and
//! (in [`fanout`]) the node-to-node links that carry messages across the cluster.
//!
//! - **Classic channels and patterns** (`SUBSCRIBE`, `PSUBSCRIBE`, `PUBLISH`): as in
//!   Redis Cluster, a message published on any node reaches the subscribers of every
//!   node. The publishing node delivers to its own subscribers, then hands the message
//!   to one link per other node (gRPC on the internal port), which delivers it there.
//!   At most once and, per link, in order: a message published while a link is down is
//!   dropped, as Redis's cluster bus drops what a broken link held.
//! - **Shard channels** (`SSUBSCRIBE`, `SPUBLISH`): routed by the channel's slot like a
//!   key. A message goes to the subscribers of the slot's primary and of its replicas
//!   (the primary forwards to them). When the slot stops being served here (migration,
//!   failover), its subscribers get `sunsubscribe`, as in Redis 7.
//! - **Delivery.** Every subscribed connection has an unbounded mailbox; a publisher
//!   only queues into it (it never waits for a slow subscriber). The connection moves
//!   what arrives into its output buffer at once, where the `pubsub` class of
//!   `client-output-buffer-limit` (Redis's default `32mb 8mb 60`) bounds it: a
//!   subscriber that does not read is disconnected, as in Redis.

pub mod fanout;

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::glob::glob_match;

/// What a subscribed connection is sent.
#[derive(Debug, Clone)]
pub enum Push {
    Message {
        channel: Bytes,
        payload: Bytes,
    },
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    SMessage {
        channel: Bytes,
        payload: Bytes,
    },
    /// The shard channel's slot is no longer served here: the subscription ended.
    SUnsubscribed {
        channel: Bytes,
    },
    /// Client-side caching: these keys changed (`None`: every key), see
    /// [`crate::tracking`].
    Invalidate {
        keys: Option<Vec<Bytes>>,
    },
}

/// Where a connection's pushes go.
pub type Mailbox = mpsc::UnboundedSender<Push>;

/// The three kinds of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

/// Subscribers of each channel (or pattern), in the order they subscribed.
#[derive(Default)]
struct Table {
    map: HashMap<Bytes, Vec<(u64, Mailbox)>>,
}

impl Table {
    fn add(&mut self, name: &Bytes, client: u64, mailbox: &Mailbox) {
        let subs = self.map.entry(name.clone()).or_default();
        if !subs.iter().any(|(c, _)| *c == client) {
            subs.push((client, mailbox.clone()));
        }
    }

    fn remove(&mut self, name: &[u8], client: u64) {
        if let Some(subs) = self.map.get_mut(name) {
            subs.retain(|(c, _)| *c != client);
            if subs.is_empty() {
                self.map.remove(name);
            }
        }
    }
}

/// The node's subscriptions.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<Table>,
    patterns: RwLock<Table>,
    shard: RwLock<Table>,
    /// The links to the other nodes.
    pub fanout: fanout::Fanout,
}

impl PubSub {
    fn table(&self, kind: Kind) -> &RwLock<Table> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    pub fn subscribe(&self, kind: Kind, name: &Bytes, client: u64, mailbox: &Mailbox) {
        self.table(kind).write().add(name, client, mailbox);
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], client: u64) {
        self.table(kind).write().remove(name, client);
    }

    /// Delivers a classic message to this node's subscribers of `channel` and of the
    /// patterns matching it: how many deliveries (`PUBLISH`'s reply).
    pub fn deliver(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let mut n = 0;
        if let Some(subs) = self.channels.read().map.get(channel) {
            for (_, mb) in subs {
                let push = Push::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                n += mb.send(push).is_ok() as usize;
            }
        }
        for (pattern, subs) in &self.patterns.read().map {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for (_, mb) in subs {
                let push = Push::PMessage {
                    pattern: pattern.clone(),
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                n += mb.send(push).is_ok() as usize;
            }
        }
        n
    }

    /// Delivers a shard message to this node's subscribers of `channel`.
    pub fn deliver_shard(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let shard = self.shard.read();
        let Some(subs) = shard.map.get(channel) else {
            return 0;
        };
        subs.iter()
            .filter(|(_, mb)| {
                mb.send(Push::SMessage {
                    channel: channel.clone(),
                    payload: payload.clone(),
                })
                .is_ok()
            })
            .count()
    }

    /// `PUBSUB CHANNELS` / `SHARDCHANNELS`: channels with a subscriber here, matching
    /// `pattern` if given.
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.table(kind)
            .read()
            .map
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// `PUBSUB NUMSUB` / `SHARDNUMSUB` of one channel.
    pub fn subscribers(&self, kind: Kind, channel: &[u8]) -> usize {
        self.table(kind).read().map.get(channel).map_or(0, Vec::len)
    }

    /// `PUBSUB NUMPAT`: distinct patterns subscribed here.
    pub fn patterns(&self) -> usize {
        self.patterns.read().map.len()
    }

    /// `pubsub_channels`, `pubsub_patterns`, `pubsubshard_channels` of `INFO stats`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.channels.read().map.len(),
            self.patterns.read().map.len(),
            self.shard.read().map.len(),
        )
    }

    /// Ends the shard subscriptions whose channel `keep` refuses (its slot is no longer
    /// served here): each subscriber is told with `sunsubscribe`.
    pub fn end_shard_channels(&self, keep: impl Fn(&[u8]) -> bool) {
        let mut shard = self.shard.write();
        let gone: Vec<Bytes> = shard.map.keys().filter(|c| !keep(c)).cloned().collect();
        for channel in gone {
            for (_, mb) in shard.map.remove(&channel).unwrap_or_default() {
                let _ = mb.send(Push::SUnsubscribed {
                    channel: channel.clone(),
                });
            }
        }
    }
}

/// One connection's subscriptions (in the order it made them) and its mailbox.
pub struct Subscriptions {
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub shard: Vec<Bytes>,
    pub mailbox: Mailbox,
    pub inbox: mpsc::UnboundedReceiver<Push>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        Subscriptions {
            channels: Vec::new(),
            patterns: Vec::new(),
            shard: Vec::new(),
            mailbox,
            inbox,
        }
    }
}

impl Subscriptions {
    pub fn list(&mut self, kind: Kind) -> &mut Vec<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a (un)subscribe confirmation carries: channels and patterns together,
    /// shard channels on their own (as Redis 7).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Subscribed to anything (RESP2 subscriber mode, the `pubsub` client class).
    pub fn any(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }

    /// Shows the counts in `CLIENT LIST` (`sub=`, `psub=`, `ssub=`).
    pub fn show_in(&self, info: &crate::state::ClientInfo) {
        let counts = [self.channels.len(), self.patterns.len(), self.shard.len()];
        for (cell, n) in info.subscriptions.iter().zip(counts) {
            cell.store(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Leaves every subscription (the connection closes or `RESET`).
    pub fn leave_all(&mut self, pubsub: &PubSub, client: u64) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(self.list(kind)) {
                pubsub.unsubscribe(kind, &name, client);
            }
        }
    }

    /// [`Subscriptions::leave_all`], for `RESET`: the counts shown go to 0 too.
    pub fn reset(&mut self, pubsub: &PubSub, info: &crate::state::ClientInfo) {
        self.leave_all(pubsub, info.id);
        self.show_in(info);
    }
}
