//! Durable storage of [`ClusterState`], behind one trait ([`StateStore`]): load, and
//! commit of the next state conditioned on the version it replaces.
//!
//! - [`file`]: one JSON document in the data dir, replaced atomically (the default: one
//!   control-plane process).
//! - [`etcd`]: the same document in etcd, committed by the elected leader only, in a
//!   transaction fenced by its term (several control-plane processes).
//!
//! The document (`{"format": 1, "state": {...}}`, versioned so that a later release can
//! migrate it) is the same in both, and is what `emberctl export-state` prints and
//! `import-state` reads. A state is stored before anyone is told about it (see
//! `authority.rs`).

pub mod etcd;
pub mod file;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::ClusterState;

const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use data dir {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is corrupt: {source}")]
    Corrupt {
        file: PathBuf,
        source: serde_json::Error,
    },
    #[error("{file} has format {found}, this build reads format {FORMAT}")]
    Format { file: PathBuf, found: u32 },
    #[error("{file} holds an inconsistent state: {reason}")]
    Inconsistent { file: PathBuf, reason: String },
    #[error(
        "{dir} held the state of cluster {cluster_id} (see {marker} there) but {file} is \
         missing. The data nodes keep serving meanwhile. To restore it, copy a backup of \
         {file} back, or start the control plane with an empty --data-dir and run \
         `emberctl import-state BACKUP` (or `emberctl import-state` to rebuild the topology \
         from the nodes' reports). To start a brand-new cluster instead, empty {dir}",
        marker = file::MARKER,
        file = file::FILE
    )]
    Lost { dir: PathBuf, cluster_id: String },
    /// The stored state is not the version this process replaces: another process
    /// committed since (this one's copy is stale).
    #[error("the stored state is at version {found:?}, not {expected:?}: another control plane committed meanwhile")]
    Conflict {
        expected: Option<u64>,
        found: Option<u64>,
    },
    /// This process does not lead (any more): it may not commit.
    #[error("this control plane is not the leader")]
    NotLeader,
    /// The store cannot be reached (etcd: no quorum, or no member answers).
    #[error("etcd is unavailable ({0})")]
    Unavailable(String),
}

#[derive(Serialize, Deserialize)]
struct Document {
    format: u32,
    state: ClusterState,
}

/// Encodes a state as the stored document.
pub fn encode(state: &ClusterState) -> Vec<u8> {
    let doc = Document {
        format: FORMAT,
        state: state.clone(),
    };
    serde_json::to_vec_pretty(&doc).expect("state serializes")
}

/// Decodes and checks a stored document; `source` names it in errors.
pub fn decode(bytes: &[u8], source: &Path) -> Result<ClusterState, StoreError> {
    #[derive(Deserialize)]
    struct Header {
        format: u32,
    }
    let corrupt = |e| StoreError::Corrupt {
        file: source.into(),
        source: e,
    };
    let header: Header = serde_json::from_slice(bytes).map_err(corrupt)?;
    if header.format != FORMAT {
        return Err(StoreError::Format {
            file: source.into(),
            found: header.format,
        });
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(corrupt)?;
    doc.state
        .consistency_check()
        .map_err(|reason| StoreError::Inconsistent {
            file: source.into(),
            reason,
        })?;
    Ok(doc.state)
}

/// Where the cluster's state is stored.
#[tonic::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The stored state (`None`: the store is empty), read linearizably: a state
    /// committed before this call began is seen.
    async fn load(&self) -> Result<Option<ClusterState>, StoreError>;

    /// Durably replaces the stored state of version `expected` (`None`: an empty store)
    /// with `next`; returns only once it survives a crash. Refused with
    /// [`StoreError::Conflict`] when the stored version is another, and with
    /// [`StoreError::NotLeader`] when this process may not write.
    async fn commit(&self, expected: Option<u64>, next: &ClusterState) -> Result<(), StoreError>;

    /// Where the state is (for logs): a directory, or etcd's endpoints and prefix.
    fn describe(&self) -> String;
}
