//! The session stream: one long-lived bidirectional stream per data node.
//!
//! Node -> control plane: `Hello` (first, once), then `Heartbeat`s and `MigrationReport`s
//! (progress; `ready` from a target is answered with a `PromiseRequest`, `promised`
//! commits the migration, `failed` aborts it).
//! Control plane -> node: `Welcome` (once), then full topology snapshots whenever the
//! node is behind: on connect if its applied version is older, and on every committed
//! version after that (latest wins; intermediate versions may be skipped), as a delta
//! against the previous one when that is what this stream sent last
//! (`ember_proto::snapshot`). The stream is
//! reliable while it lasts; when it breaks, the node reconnects and its hello says which
//! version it has, so a resync is just the next snapshot.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ember_core::NodeId;
use ember_proto::convert::{self, parse_id};
use ember_proto::pb::{self, control_message, node_message};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::authority::{Ask, Authority};
use crate::restore::NodeReport;
use crate::state::Op;

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SessionService {
    authority: Arc<Authority>,
    heartbeat: Duration,
}

impl SessionService {
    pub fn new(authority: Arc<Authority>, node_timeout: Duration) -> Self {
        Self {
            authority,
            heartbeat: heartbeat_interval(node_timeout),
        }
    }
}

/// How often nodes send heartbeats: several fit in one timeout, so one late heartbeat
/// is no failure.
pub fn heartbeat_interval(node_timeout: Duration) -> Duration {
    (node_timeout / 5).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

type ControlStream = Pin<Box<dyn Stream<Item = Result<pb::ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::session_server::Session for SessionService {
    type OpenStream = ControlStream;

    async fn open(
        &self,
        request: Request<Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::OpenStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10s"))??;
        let Some(pb::NodeMessage {
            msg: Some(node_message::Msg::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of a session must be Hello",
            ));
        };
        let id = parse_id("node id", &hello.node_id)?;
        let name = (!hello.name.is_empty()).then(|| hello.name.clone());
        let report = NodeReport {
            id,
            cluster_id: (!hello.cluster_id.is_empty())
                .then(|| parse_id("cluster id", &hello.cluster_id))
                .transpose()?,
            name: name.clone(),
            client_addr: hello.client_addr.clone(),
            internal_addr: hello.internal_addr.clone(),
            applied_version: hello.applied_version,
            incarnation: hello.applied_incarnation,
            current_epoch: hello.current_epoch,
            config_epoch: hello.config_epoch,
            owned: convert::slots_from_pb(&hello.owned)?,
        };
        if let Err(e) = self.authority.judge_hello(&report) {
            tracing::warn!(node = %id, addr = %hello.client_addr, "session refused: {e}");
            return Err(e.into());
        }
        let cluster_id = self.authority.current().state.topology.cluster_id;
        // Ordering: observed before registered, so the heartbeater never sees a new
        // pending entry without a sighting (and expires it at once).
        self.authority.session_opened(id, hello.applied_version);
        let registered = self
            .authority
            .submit(Op::Register {
                id,
                name,
                client_addr: hello.client_addr.clone(),
                internal_addr: hello.internal_addr.clone(),
            })
            .await;
        let (mut state, _) = match registered {
            Ok(r) => r,
            Err(e) => {
                self.authority.session_closed(id);
                return Err(e.into());
            }
        };
        if hello.applied_version == 0 {
            let loaded = (!hello.loaded_replid.is_empty())
                .then(|| (hello.loaded_replid.clone(), hello.loaded_offset));
            crate::heartbeater::hand_over_if_restarted_empty(
                &self.authority,
                id,
                self.heartbeat * 3,
                loaded,
            )
            .await;
            state = self.authority.current().state;
        }
        let welcome = pb::Welcome {
            cluster_id: cluster_id.to_string(),
            member: state.topology.nodes.contains_key(&id),
            heartbeat_millis: self.heartbeat.as_millis() as u64,
            lease_millis: self.authority.leases.length.as_millis() as u64,
        };
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(pb::ControlMessage {
            msg: Some(control_message::Msg::Welcome(welcome)),
        }))
        .await
        .map_err(|_| {
            self.authority.session_closed(id);
            Status::cancelled("node went away")
        })?;
        tracing::info!(node = %id, addr = %hello.client_addr, applied = hello.applied_version, "session opened");
        let authority = self.authority.clone();
        tokio::spawn(async move {
            let reason = run(&authority, id, hello.applied_version, inbound, &tx).await;
            authority.session_closed(id);
            tracing::info!(node = %id, "session closed: {reason}");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Drives one session until the node goes away or is forgotten; returns why it ended.
async fn run(
    authority: &Authority,
    id: NodeId,
    mut sent: u64,
    mut inbound: Streaming<pb::NodeMessage>,
    tx: &mpsc::Sender<Result<pb::ControlMessage, Status>>,
) -> String {
    let mut published = authority.subscribe();
    let mut asks = authority.asks();
    let mut was_member = false;
    // The version of the last snapshot sent on this stream: the base of the next delta.
    let mut on_stream: Option<u64> = None;
    loop {
        let latest = published.borrow_and_update().clone();
        let member = latest.state.topology.nodes.contains_key(&id);
        if member && latest.state.version() > sent {
            let msg = pb::ControlMessage {
                msg: Some(latest.snapshot.message_after(on_stream)),
            };
            if tx.send(Ok(msg)).await.is_err() {
                return "node went away".into();
            }
            sent = latest.state.version();
            on_stream = Some(sent);
        }
        if was_member && !member && !latest.state.pending.contains_key(&id) {
            let _ = tx
                .send(Err(Status::not_found(format!(
                    "node {id} was forgotten by the cluster"
                ))))
                .await;
            return "forgotten".into();
        }
        was_member = member;
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(pb::NodeMessage { msg: Some(node_message::Msg::Heartbeat(hb)) })) => {
                    let request = hb.lease_request;
                    authority.heartbeat(id, hb);
                    if request != 0 && authority.grant_lease(id) {
                        let grant = control_message::Msg::LeaseGrant(pb::LeaseGrant { request });
                        if tx.send(Ok(pb::ControlMessage { msg: Some(grant) })).await.is_err() {
                            return "node went away".into();
                        }
                    }
                }
                Ok(Some(pb::NodeMessage { msg: Some(node_message::Msg::Handover(report)) })) => {
                    if authority.handovers.on_report(id, &report) == crate::handover::Reply::Resume {
                        let msg = control_message::Msg::ResumeWrites(pb::ResumeWrites { id: report.id });
                        if tx.send(Ok(pb::ControlMessage { msg: Some(msg) })).await.is_err() {
                            return "node went away".into();
                        }
                    }
                }
                Ok(Some(pb::NodeMessage { msg: Some(node_message::Msg::Migration(report)) })) => {
                    if let Some(ask) = on_migration_report(authority, id, report).await {
                        if tx.send(Ok(ask)).await.is_err() {
                            return "node went away".into();
                        }
                    }
                }
                Ok(Some(_)) => {
                    let _ = tx.send(Err(Status::invalid_argument("only heartbeats may follow Hello"))).await;
                    return "protocol error".into();
                }
                Ok(None) => return "node closed the stream".into(),
                Err(e) => return format!("stream error: {}", e.message()),
            },
            changed = published.changed() => {
                if changed.is_err() {
                    return "shutting down".into();
                }
            }
            asked = asks.recv() => {
                let msg = match asked {
                    Ok((n, Ask::Report)) if n == id => control_message::Msg::ReportNow(pb::ReportNow {}),
                    Ok((n, Ask::StopGranting(d))) if n == id => {
                        control_message::Msg::StopGranting(pb::StopGranting { millis: d.as_millis() as u64 })
                    }
                    Ok((n, Ask::Pause { id: pause, replica })) if n == id => {
                        control_message::Msg::PauseWrites(pb::PauseWrites {
                            id: pause.to_string(),
                            replica: replica.to_string(),
                            millis: crate::handover::PAUSE.as_millis() as u64,
                        })
                    }
                    Ok((n, Ask::Resume { id: pause })) if n == id => {
                        control_message::Msg::ResumeWrites(pb::ResumeWrites { id: pause.to_string() })
                    }
                    _ => continue,
                };
                if tx.send(Ok(pb::ControlMessage { msg: Some(msg) })).await.is_err() {
                    return "node went away".into();
                }
            }
            _ = tx.closed() => return "node went away".into(),
        }
    }
}

/// Acts on a node's migration report: progress is recorded; `ready` from the target
/// asks it for its promise (the returned message, sent on this stream); `promised` from
/// the target commits; `failed` from either side aborts. Reports about other nodes'
/// migrations, or migrations that already ended, are ignored.
///
/// Ordering: a migration is committed only after its target promised (it then refuses
/// the source's request to abort the handoff), so the source, whose hold is bounded,
/// never keeps acknowledging writes for slots that were committed to the target.
async fn on_migration_report(
    authority: &Authority,
    node: NodeId,
    report: pb::MigrationReport,
) -> Option<pb::ControlMessage> {
    let Ok(mid) = report.id.parse::<uuid::Uuid>() else {
        return None;
    };
    let state = authority.current().state;
    let m = state.topology.migrations.iter().find(|m| m.id == mid)?;
    let op = match report.kind() {
        pb::migration_report::Kind::Progress if node == m.target => {
            authority.migration_progress(mid, report.keys, report.bytes, report.keys_total);
            return None;
        }
        pb::migration_report::Kind::Ready if node == m.target => {
            authority.migration_progress(mid, report.keys, report.bytes, report.keys_total);
            // Idempotent: every re-sent `ready` asks again until the answer gets through.
            return Some(pb::ControlMessage {
                msg: Some(control_message::Msg::PromiseRequest(pb::PromiseRequest {
                    migration_id: report.id,
                })),
            });
        }
        pb::migration_report::Kind::Promised if node == m.target => {
            authority.migration_progress(mid, report.keys, report.bytes, report.keys_total);
            Op::CommitMigration { id: mid }
        }
        pb::migration_report::Kind::Failed if node == m.target || node == m.source => {
            Op::AbortMigration {
                id: mid,
                reason: format!("node {node} reported: {}", report.error),
            }
        }
        _ => return None,
    };
    if let Err(e) = authority.submit(op).await {
        tracing::warn!(migration = %mid, "could not act on a migration report: {e}");
    }
    None
}
