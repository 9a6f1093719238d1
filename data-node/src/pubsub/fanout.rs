//! Links that carry pub/sub messages to the other nodes (`Internal.Publish`).
//!
//! One link per other node of the applied topology, each a task on the main runtime
//! with a bounded queue: `PUBLISH` only queues (never waits); the link connects when it
//! has something to send, streams in order, and reconnects (100 ms, doubling to 1 s)
//! when the stream breaks. A message that finds its link's queue full is dropped and
//! counted: delivery across nodes is at most once, in order per link, as Redis's
//! cluster bus gives. Links follow the topology: [`Fanout::set_peers`] is called after
//! every change ([`PubSubListener`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ember_core::{Role, Topology};
use ember_proto::pb;
use ember_proto::pb::internal_client::InternalClient;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use super::Kind;
use crate::state::ServerState;

/// Messages a link holds while its peer is slow or unreachable.
const QUEUE: usize = 16 * 1024;

struct Link {
    addr: String,
    tx: mpsc::Sender<pb::PubSubMessage>,
    /// The peer replicates this node (shard messages go to it too).
    replica: bool,
}

#[derive(Default)]
pub struct Fanout {
    links: RwLock<Vec<Link>>,
    /// Messages dropped because a link's queue was full.
    pub dropped: AtomicU64,
}

impl Fanout {
    /// Queues a classic message for every other node, a shard message for this node's
    /// replicas.
    pub fn send(&self, channel: &Bytes, payload: &Bytes, shard: bool) {
        for link in self.links.read().iter() {
            if shard && !link.replica {
                continue;
            }
            let msg = pb::PubSubMessage {
                channel: channel.clone(),
                payload: payload.clone(),
                shard,
            };
            if link.tx.try_send(msg).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One link per other node of `t` (kept for nodes it already had, at the same
    /// address); links to nodes gone end.
    pub fn set_peers(&self, t: &Topology, me: ember_core::NodeId) {
        let mut links = self.links.write();
        let mut old: HashMap<String, Link> = links.drain(..).map(|l| (l.addr.clone(), l)).collect();
        for (id, node) in &t.nodes {
            if *id == me || node.internal_addr.is_empty() {
                continue;
            }
            let replica = node.role == Role::Replica { of: me };
            let link = match old.remove(&node.internal_addr) {
                Some(l) => Link { replica, ..l },
                None => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(run_link(node.internal_addr.clone(), rx));
                    Link {
                        addr: node.internal_addr.clone(),
                        tx,
                        replica,
                    }
                }
            };
            links.push(link);
        }
    }
}

/// Streams what `rx` receives to the node at `addr` until the sender is dropped.
async fn run_link(addr: String, mut rx: mpsc::Receiver<pb::PubSubMessage>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        match stream_to(&addr, first, &mut rx).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "pub/sub link broke; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One stream to `addr`: `first`, then what `rx` receives. `Ok` when `rx` is closed.
async fn stream_to(
    addr: &str,
    first: pb::PubSubMessage,
    rx: &mut mpsc::Receiver<pb::PubSubMessage>,
) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let (tx, inner) = mpsc::channel(256);
    let _ = tx.try_send(first);
    let mut client = InternalClient::new(channel);
    let mut call = Box::pin(client.publish(tokio_stream::wrappers::ReceiverStream::new(inner)));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => {
                    if tx.send(m).await.is_err() {
                        return Err("the stream ended".into());
                    }
                }
                None => return Ok(()),
            },
            r = &mut call => {
                return Err(match r {
                    Ok(_) => "the peer ended the stream".into(),
                    Err(s) => s.message().to_string(),
                });
            }
        }
    }
}

/// Delivers the messages another node streams here (`Internal.Publish`).
pub async fn receive(
    state: &ServerState,
    mut stream: tonic::Streaming<pb::PubSubMessage>,
) -> Result<pb::PubSubAck, tonic::Status> {
    while let Some(m) = stream.message().await? {
        if m.shard {
            state.pubsub.deliver_shard(&m.channel, &m.payload);
        } else {
            state.pubsub.deliver(&m.channel, &m.payload);
        }
    }
    Ok(pb::PubSubAck {})
}

/// Keeps the links and the shard subscriptions in step with the topology: after each
/// change, links follow the nodes, and shard channels whose slot this node stopped
/// serving in the same way (as the primary, or as one of its replicas) end with
/// `sunsubscribe`.
pub struct PubSubListener {
    state: Arc<ServerState>,
    /// How each shard channel's slot was served before the change being applied.
    before: Mutex<HashMap<Bytes, Served>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Primary,
    Replica,
    No,
}

impl PubSubListener {
    pub fn new(state: Arc<ServerState>) -> Arc<PubSubListener> {
        Arc::new(PubSubListener {
            state,
            before: Mutex::default(),
        })
    }

    fn served(&self, channel: &[u8]) -> Served {
        let slot = ember_core::key_slot(channel);
        let cluster = &self.state.cluster;
        if cluster.serves(slot) {
            Served::Primary
        } else if cluster.route(slot, true).is_ok() {
            Served::Replica
        } else {
            Served::No
        }
    }
}

impl crate::cluster::applier::TopologyListener for PubSubListener {
    fn before_apply(&self, _next: &Topology) {
        let channels = self.state.pubsub.active(Kind::Shard, None);
        *self.before.lock() = channels
            .into_iter()
            .map(|c| {
                let s = self.served(&c);
                (c, s)
            })
            .collect();
    }

    fn after_apply(self: Arc<Self>, applied: &Topology) {
        self.state
            .pubsub
            .fanout
            .set_peers(applied, self.state.cluster.me());
        let before = std::mem::take(&mut *self.before.lock());
        self.state.pubsub.end_shard_channels(|c| {
            let now = self.served(c);
            match before.get(c).copied() {
                _ if now == Served::No => false,
                // A promoted replica's subscribers keep receiving.
                Some(Served::Replica) if now == Served::Primary => true,
                Some(was) => was == now,
                None => true,
            }
        });
    }
}
