//! ember's gRPC contract and the one place where prost types meet domain types.
//!
//! - [`pb`]: the generated messages, clients and servers (`ember.v1`).
//! - [`convert`]: `Topology`, `NodeInfo`, `SlotRange` to and from their messages. The rest
//!   of the code base speaks `ember_core` types only.
//! - [`snapshot`]: topology snapshots on the session stream (encoded once per version,
//!   compressed, sent as deltas within a stream).

pub mod convert;
pub mod snapshot;

/// Generated code for `proto/ember.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ember.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ember_descriptor");

pub use convert::ConvertError;

/// The client endpoint a data node opens its session stream with (also used by the
/// fan-out benchmark, which plays a thousand nodes). The receive windows are large
/// enough for a whole snapshot: with h2's default 64 KiB window, a 70 KB snapshot would
/// wait for a window update from the node, one more round trip per snapshot under load.
pub fn session_endpoint(e: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    use std::time::Duration;
    // A control plane that stops answering (paused, cut off) is left within about two
    // seconds, for the next one of the list.
    e.connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(1))
        .initial_stream_window_size(Some(1 << 20))
        .initial_connection_window_size(Some(2 << 20))
}

/// Longest wait for one control-plane process to answer a connection.
pub const CONNECT_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(2);

/// The URLs of a control-plane list (`--control-plane URL1,URL2,URL3`: every process of
/// a highly available control plane; any of them serves, followers forward to the
/// leader).
pub fn control_plane_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// Connects to the first control plane of `list` that answers, trying them in turn from
/// the `from`-th (callers that retry advance it, so that a dead process is not tried
/// first forever); `endpoint` configures each. A process that accepts the connection but
/// does not answer (paused) is given up after [`CONNECT_ATTEMPT`]. The channel and the
/// URL it reached, or the last error.
pub async fn connect_any(
    list: &str,
    from: usize,
    endpoint: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> Result<(tonic::transport::Channel, String), String> {
    let urls = control_plane_urls(list);
    let mut last = format!("no control-plane URL in '{list}'");
    for i in 0..urls.len() {
        let url = &urls[(from + i) % urls.len()];
        let e = match tonic::transport::Endpoint::from_shared(url.clone()) {
            Ok(e) => endpoint(e),
            Err(e) => {
                last = format!("invalid URL {url}: {e}");
                continue;
            }
        };
        let attempt = async {
            let channel = e.connect().await?;
            // HTTP/2 connects without the server's answer: a paused process would be
            // taken. A health check proves that it serves.
            health_check(channel.clone()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(channel)
        };
        match tokio::time::timeout(CONNECT_ATTEMPT, attempt).await {
            Ok(Ok(channel)) => return Ok((channel, url.clone())),
            Err(_) => last = format!("{url}: no answer within {CONNECT_ATTEMPT:?}"),
            Ok(Err(e)) => last = format!("{url}: {}", root_cause(&*e)),
        }
    }
    Err(last)
}

/// The innermost cause of an error ("Connection refused (os error 111)") is what a
/// person can act on; the outer layers of a transport error only say "transport error".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `grpc.health.v1.Health/Check` of the whole server (any answer will do: the process
/// serves).
async fn health_check(
    channel: tonic::transport::Channel,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct HealthCheckRequest {
        #[prost(string, tag = "1")]
        service: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct HealthCheckResponse {
        #[prost(int32, tag = "1")]
        status: i32,
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let codec: tonic_prost::ProstCodec<HealthCheckRequest, HealthCheckResponse> =
        tonic_prost::ProstCodec::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let answer = grpc
        .unary(
            tonic::Request::new(HealthCheckRequest::default()),
            path,
            codec,
        )
        .await;
    match answer {
        // Any answer of the server's own proves it serves (one without a health
        // service says Unimplemented); a broken connection is Unavailable or Unknown.
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ) =>
        {
            Err(s.into())
        }
        _ => Ok(()),
    }
}

/// gRPC metadata key that names the kind of a control-plane error beyond its code, so
/// that clients never match on message text.
pub const ERROR_KIND: &str = "ember-error";
/// [`ERROR_KIND`] of a change that could not be persisted (e.g. the disk is full).
pub const ERROR_PERSISTENCE: &str = "persistence";
/// [`ERROR_KIND`] of a change refused because no control plane leads (an election
/// under way, or etcd has no quorum): retry later.
pub const ERROR_NO_LEADER: &str = "no-leader";
/// [`ERROR_KIND`] of a change sent to a control plane that does not lead; the leader's
/// URL is in the [`LEADER_URL`] metadata.
pub const ERROR_NOT_LEADER: &str = "not-leader";
/// gRPC metadata key naming the leading control plane's URL (with [`ERROR_NOT_LEADER`]).
pub const LEADER_URL: &str = "ember-leader";
/// [`ERROR_KIND`] of a migration refused only because `--max-migrations` are running:
/// wait and retry.
pub const ERROR_BUSY: &str = "busy";
/// [`ERROR_KIND`] of a refused function-library change: the message is Redis's (a node
/// answers its client `ERR` and the message).
pub const ERROR_FUNCTION: &str = "function";

/// Largest admin API message (both ways): a GetState of a very large cluster, or an
/// import-state document, must always fit.
pub const MAX_ADMIN_MESSAGE: usize = 256 << 20;
