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
pub fn session_endpoint(
    url: String,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    use std::time::Duration;
    Ok(tonic::transport::Endpoint::from_shared(url)?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .initial_stream_window_size(Some(1 << 20))
        .initial_connection_window_size(Some(2 << 20)))
}

/// gRPC metadata key that names the kind of a control-plane error beyond its code, so
/// that clients never match on message text.
pub const ERROR_KIND: &str = "ember-error";
/// [`ERROR_KIND`] of a change that could not be persisted (e.g. the disk is full).
pub const ERROR_PERSISTENCE: &str = "persistence";
/// [`ERROR_KIND`] of a migration refused only because `--max-migrations` are running:
/// wait and retry.
pub const ERROR_BUSY: &str = "busy";
/// [`ERROR_KIND`] of a refused function-library change: the message is Redis's (a node
/// answers its client `ERR` and the message).
pub const ERROR_FUNCTION: &str = "function";

/// Largest admin API message (both ways): a GetState of a very large cluster, or an
/// import-state document, must always fit.
pub const MAX_ADMIN_MESSAGE: usize = 256 << 20;
