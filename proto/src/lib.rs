//! ember's gRPC contract and the one place where prost types meet domain types.
//!
//! - [`pb`]: the generated messages, clients and servers (`ember.v1`).
//! - [`convert`]: `Topology`, `NodeInfo`, `SlotRange` to and from their messages. The rest
//!   of the code base speaks `ember_core` types only.

pub mod convert;

/// Generated code for `proto/ember.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ember.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ember_descriptor");

pub use convert::ConvertError;
