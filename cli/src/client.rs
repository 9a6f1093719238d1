//! Talking to the control plane: connecting, timeouts, and turning transport failures and
//! gRPC statuses into [`CliError`], the one error type whose variants decide the exit code.

use std::future::Future;
use std::time::Duration;

use ember_core::SlotRange;
use ember_proto::convert::range_to_pb;
use ember_proto::pb;
use ember_proto::pb::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::model::{Change, ClusterView, Plan};

/// Why emberctl failed; `Display` is the one line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input caught locally, before any request was sent (exit 2, like clap's).
    #[error("{0}")]
    Usage(String),
    /// The control plane answered and refused (exit 1).
    #[error("{0}")]
    Rejected(String),
    /// The control plane's answer did not make sense (exit 1).
    #[error("the control plane sent an invalid reply: {0}")]
    BadReply(String),
    /// No connection (exit 3).
    #[error("cannot reach the control plane at {url}: {reason} (set --control-plane or EMBER_CONTROL_PLANE)")]
    Unreachable { url: String, reason: String },
    /// Connected, but no answer in time (exit 3). A mutation may still take effect.
    #[error("the control plane at {url} did not answer within {timeout} (raise --timeout; a change may still take effect, check with `emberctl status`)")]
    Timeout { url: String, timeout: String },
    /// The control plane could not persist the change, so it did not make it (exit 4).
    #[error("{0}")]
    Persistence(String),
    /// No control plane leads (an election, or etcd without quorum): nothing was
    /// changed; retry (exit 5).
    #[error("{0}")]
    NoLeader(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Rejected(_) | CliError::BadReply(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. } | CliError::Timeout { .. } => 3,
            CliError::Persistence(_) => 4,
            CliError::NoLeader(_) => 5,
        }
    }

    /// A failure that may pass by itself (the control plane restarting, a full disk):
    /// commands that wait keep waiting through these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CliError::Unreachable { .. }
                | CliError::Timeout { .. }
                | CliError::Persistence(_)
                | CliError::NoLeader(_)
        )
    }
}

/// The kind a control-plane status carries beyond its code (`ember_proto::ERROR_KIND`).
fn error_kind(s: &Status) -> Option<&str> {
    s.metadata()
        .get(ember_proto::ERROR_KIND)
        .and_then(|v| v.to_str().ok())
}

impl From<ember_proto::ConvertError> for CliError {
    fn from(e: ember_proto::ConvertError) -> Self {
        CliError::BadReply(e.to_string())
    }
}

/// The hint added to NotFound errors: the usual cause is a node that never registered.
pub fn not_found_hint(url: &str) -> String {
    format!(
        "(is the node running? start it with ember-data-node --control-plane {url} and it \
         registers itself; see emberctl pending)"
    )
}

/// Maps a gRPC status from the control plane to a [`CliError`].
pub fn status_error(url: &str, timeout: Duration, s: &Status) -> CliError {
    let msg = s.message().trim();
    let msg = if msg.is_empty() {
        s.code().description()
    } else {
        msg
    };
    match error_kind(s) {
        Some(ember_proto::ERROR_PERSISTENCE) => return CliError::Persistence(msg.to_string()),
        Some(ember_proto::ERROR_NO_LEADER | ember_proto::ERROR_NOT_LEADER) => {
            return CliError::NoLeader(msg.to_string())
        }
        _ => {}
    }
    match s.code() {
        // A connection that broke under a request surfaces as Unknown ("transport
        // error") or Cancelled: the control plane is unreachable, not refusing.
        Code::Unavailable | Code::Unknown | Code::Cancelled => CliError::Unreachable { url: url.to_string(), reason: msg.to_string() },
        Code::DeadlineExceeded => CliError::Timeout { url: url.to_string(), timeout: fmt_duration(timeout) },
        Code::NotFound => CliError::Rejected(format!("{msg} {}", not_found_hint(url))),
        Code::Unimplemented => CliError::Rejected(format!(
            "the control plane at {url} does not implement this request ({msg}); is it older than emberctl?"
        )),
        _ => CliError::Rejected(msg.to_string()),
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A connected Admin client.
pub struct Admin {
    client: AdminClient<Channel>,
    url: String,
    timeout: Duration,
}

impl Admin {
    /// Connects eagerly, so an unreachable control plane is reported as such (exit 3)
    /// rather than as the failure of whatever request came first.
    /// `url` may list several control planes (`URL1,URL2,URL3`, the processes of a
    /// highly available control plane): the first that answers is used (followers
    /// forward to the leader).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, CliError> {
        let urls = ember_proto::control_plane_urls(url);
        if urls.is_empty() {
            return Err(CliError::Usage("no control plane URL given".into()));
        }
        for u in &urls {
            Endpoint::from_shared(u.clone()).map_err(|e| {
                CliError::Usage(format!(
                    "invalid control plane URL '{u}': {}",
                    ember_proto::root_cause(&e)
                ))
            })?;
        }
        tracing::debug!(%url, "connecting");
        let unreachable = |reason: String| CliError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let connect = ember_proto::connect_any(url, 0, |e| e.connect_timeout(timeout));
        let (channel, reached) =
            match tokio::time::timeout(timeout * urls.len() as u32, connect).await {
                Ok(Ok(reached)) => reached,
                Ok(Err(e)) => return Err(unreachable(e)),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no connection within {}",
                        fmt_duration(timeout)
                    )))
                }
            };
        Ok(Self {
            client: AdminClient::new(channel)
                .max_decoding_message_size(ember_proto::MAX_ADMIN_MESSAGE)
                .max_encoding_message_size(ember_proto::MAX_ADMIN_MESSAGE),
            url: reached,
            timeout,
        })
    }

    /// Runs one unary call under the `--timeout`.
    async fn unary<T, F>(&self, call: F) -> Result<T, CliError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.unary_status(call)
            .await?
            .map_err(|status| status_error(&self.url, self.timeout, &status))
    }

    /// As [`Self::unary`], but hands the gRPC status back for callers that react to a
    /// particular refusal (only a timeout is an error here).
    async fn unary_status<T, F>(&self, call: F) -> Result<Result<T, Status>, CliError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(resp)) => Ok(Ok(resp.into_inner())),
            Ok(Err(status)) => {
                tracing::debug!(?status, "request failed");
                Ok(Err(status))
            }
            Err(_) => Err(CliError::Timeout {
                url: self.url.clone(),
                timeout: fmt_duration(self.timeout),
            }),
        }
    }

    /// Starts a live migration of `slots` (one owner) to `target`. The control plane
    /// refuses with FAILED_PRECONDITION when `--max-migrations` are already running;
    /// that refusal is [`Started::Busy`], so the caller can wait and retry.
    pub async fn migrate(
        &mut self,
        target: String,
        slots: &[SlotRange],
    ) -> Result<Started, CliError> {
        let mut c = self.client.clone();
        let req = pb::MigrateRequest {
            target,
            slots: slots.iter().map(range_to_pb).collect(),
        };
        match self.unary_status(c.migrate(req)).await? {
            Ok(reply) => Ok(Started::Started(Change::from_pb(&reply)?)),
            Err(s) if is_busy(&s) => Ok(Started::Busy(s.message().to_string())),
            Err(s) => Err(status_error(&self.url, self.timeout, &s)),
        }
    }

    pub async fn cancel_migration(&mut self, id: String) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.cancel_migration(pb::CancelMigrationRequest { id }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    /// The control plane's plan: even out the slots (`drain: None`) or empty a node.
    pub async fn plan_moves(&mut self, drain: Option<String>) -> Result<Plan, CliError> {
        let mut c = self.client.clone();
        let req = pb::PlanRequest {
            drain: drain.unwrap_or_default(),
        };
        let reply = self.unary(c.plan_moves(req)).await?;
        Ok(Plan::from_pb(&reply)?)
    }

    pub async fn state(&mut self) -> Result<ClusterView, CliError> {
        let mut c = self.client.clone();
        let reply = self.unary(c.get_state(pb::GetStateRequest {})).await?;
        Ok(ClusterView::from_pb(&reply)?)
    }

    pub async fn bootstrap(
        &mut self,
        nodes: Vec<String>,
        replicas: u32,
    ) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.bootstrap(pb::BootstrapRequest { nodes, replicas }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn failover(&mut self, node: String, force: bool) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.failover(pb::FailoverRequest { node, force }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn replicate(&mut self, node: String, primary: String) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.replicate(pb::ReplicateRequest { node, primary }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn join(
        &mut self,
        node: String,
        replica_of: Option<String>,
    ) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let req = pb::JoinRequest {
            node,
            replica_of: replica_of.unwrap_or_default(),
        };
        let reply = self.unary(c.join(req)).await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn assign(&mut self, node: String, slots: &[SlotRange]) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let req = pb::AssignRequest {
            node,
            slots: slots.iter().map(range_to_pb).collect(),
        };
        let reply = self.unary(c.assign(req)).await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn forget(&mut self, node: String, force: bool) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.forget(pb::ForgetRequest { node, force }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn set_require_full_coverage(&mut self, value: bool) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let req = pb::SetConfigRequest {
            require_full_coverage: Some(value),
        };
        let reply = self.unary(c.set_config(req)).await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn load_library(&mut self, code: String, replace: bool) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let req = pb::LoadLibraryRequest { code, replace };
        let reply = self.unary(c.load_library(req)).await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn delete_library(&mut self, name: String) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let req = pb::DeleteLibraryRequest {
            name,
            missing_ok: false,
        };
        let reply = self.unary(c.delete_library(req)).await?;
        Ok(Change::from_pb(&reply)?)
    }

    pub async fn flush_libraries(&mut self) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.flush_libraries(pb::FlushLibrariesRequest {}))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    /// The control plane's state as its stored document (JSON).
    pub async fn export_state(&mut self) -> Result<Vec<u8>, CliError> {
        let mut c = self.client.clone();
        Ok(self
            .unary(c.export_state(pb::ExportStateRequest {}))
            .await?
            .json)
    }

    /// Restores a document from `export_state` (empty: re-adopt the current state).
    pub async fn import_state(&mut self, json: Vec<u8>) -> Result<Change, CliError> {
        let mut c = self.client.clone();
        let reply = self
            .unary(c.import_state(pb::ImportStateRequest { json }))
            .await?;
        Ok(Change::from_pb(&reply)?)
    }

    /// Opens the Watch stream. Only opening is under `--timeout`; the stream runs until
    /// the control plane ends it.
    pub async fn watch(&mut self) -> Result<TopologyStream, CliError> {
        let mut c = self.client.clone();
        let inner = self.unary(c.watch(pb::WatchRequest {})).await?;
        Ok(TopologyStream {
            inner,
            url: self.url.clone(),
            timeout: self.timeout,
        })
    }
}

/// The answer to a `Migrate` request.
#[derive(Debug)]
pub enum Started {
    /// Recorded; the reply's topology lists the new migration.
    Started(Change),
    /// Refused for now: as many migrations as the control plane allows are running.
    Busy(String),
}

/// Whether a refusal only means "too many migrations are running right now": the
/// control plane marks it with its error kind (a failed node is FAILED_PRECONDITION too).
pub fn is_busy(s: &Status) -> bool {
    error_kind(s) == Some(ember_proto::ERROR_BUSY)
}

/// The Watch stream, yielding converted snapshots.
pub struct TopologyStream {
    inner: Streaming<pb::Topology>,
    url: String,
    timeout: Duration,
}

impl TopologyStream {
    /// The next snapshot, `Ok(None)` when the control plane closed the stream.
    pub async fn next(&mut self) -> Result<Option<crate::model::Snapshot>, CliError> {
        match self.inner.message().await {
            Ok(Some(t)) => Ok(Some(crate::model::Snapshot::from_pb(Some(&t))?)),
            Ok(None) => Ok(None),
            Err(status) => Err(status_error(&self.url, self.timeout, &status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:7379";

    #[test]
    fn statuses_map_to_exit_codes_and_messages() {
        let t = Duration::from_secs(10);
        let e = status_error(
            URL,
            t,
            &Status::failed_precondition("node n4 owns 10 slots: use --force"),
        );
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (1, "node n4 owns 10 slots: use --force")
        );

        let e = status_error(URL, t, &Status::not_found("no node matches 'zz'"));
        assert_eq!(e.exit_code(), 1);
        let msg = e.to_string();
        assert!(
            msg.starts_with("no node matches 'zz' (is the node running?"),
            "{msg}"
        );
        assert!(msg.contains(&format!("--control-plane {URL}")), "{msg}");
        assert!(msg.contains("emberctl pending"), "{msg}");

        let e = status_error(URL, t, &Status::unavailable("connection reset"));
        assert_eq!(e.exit_code(), 3);
        assert_eq!(
            e.to_string(),
            format!("cannot reach the control plane at {URL}: connection reset (set --control-plane or EMBER_CONTROL_PLANE)")
        );

        let e = status_error(URL, t, &Status::deadline_exceeded(""));
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("within 10s"));

        // An empty message still says something.
        let e = status_error(URL, t, &Status::internal(""));
        assert_eq!((e.exit_code(), e.to_string().is_empty()), (1, false));
    }

    fn with_kind(mut s: Status, kind: &'static str) -> Status {
        s.metadata_mut().insert(
            ember_proto::ERROR_KIND,
            tonic::metadata::MetadataValue::from_static(kind),
        );
        s
    }

    #[test]
    fn only_the_migration_limit_is_busy() {
        assert!(is_busy(&with_kind(
            Status::failed_precondition("2 migrations are running"),
            ember_proto::ERROR_BUSY
        )));
        assert!(!is_busy(&Status::failed_precondition("n1 is failed")));
        assert!(!is_busy(&Status::failed_precondition("--max-migrations")));
    }

    #[test]
    fn persistence_failures_and_broken_connections_have_their_own_codes() {
        let t = Duration::from_secs(10);
        let e = status_error(
            URL,
            t,
            &with_kind(
                Status::internal("could not persist: No space left on device"),
                ember_proto::ERROR_PERSISTENCE,
            ),
        );
        assert_eq!(e.exit_code(), 4);
        assert!(e.is_transient());
        assert!(e.to_string().contains("No space left"), "{e}");
        let e = status_error(URL, t, &Status::unknown("transport error"));
        assert_eq!(e.exit_code(), 3);
        assert!(e.is_transient());
        assert!(!status_error(URL, t, &Status::internal("x")).is_transient());
    }

    #[tokio::test]
    async fn invalid_url_is_a_usage_error() {
        let err = Admin::connect("http://bad host:1", Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2, "{err}");
    }
}
