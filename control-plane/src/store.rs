//! Durable storage of [`ClusterState`]: one JSON document, replaced atomically.
//!
//! Format (`state.json`, versioned so that a later release can migrate it):
//! `{"format": 1, "state": {"topology": {...}, "pending": {...}}}`.
//!
//! Write protocol: write `state.json.tmp`, fsync it, rename it over `state.json`, fsync the
//! directory. A crash at any point leaves either the old or the new document, never a mix.
//! A state is persisted before anyone is told about it (see `authority.rs`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::ClusterState;

const FORMAT: u32 = 1;
const FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use data dir {dir}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is corrupt")]
    Corrupt {
        file: PathBuf,
        source: serde_json::Error,
    },
    #[error("{file} has format {found}, this build reads format {FORMAT}")]
    Format { file: PathBuf, found: u32 },
    #[error("{file} holds an inconsistent state: {reason}")]
    Inconsistent { file: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct Document {
    format: u32,
    state: ClusterState,
}

/// The data dir holding `state.json`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the data dir.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            dir: dir.into(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// The persisted state, or `None` on first start.
    pub fn load(&self) -> Result<Option<ClusterState>, StoreError> {
        let file = self.dir.join(FILE);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        #[derive(Deserialize)]
        struct Header {
            format: u32,
        }
        let header: Header =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                file: file.clone(),
                source,
            })?;
        if header.format != FORMAT {
            return Err(StoreError::Format {
                file,
                found: header.format,
            });
        }
        let doc: Document =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                file: file.clone(),
                source,
            })?;
        doc.state
            .consistency_check()
            .map_err(|reason| StoreError::Inconsistent { file, reason })?;
        Ok(Some(doc.state))
    }

    /// Durably replaces the persisted state. Returns only once the state survives a crash.
    pub fn save(&self, state: &ClusterState) -> Result<(), StoreError> {
        let doc = Document {
            format: FORMAT,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).expect("state serializes");
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut f = File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        fs::rename(&tmp, self.dir.join(FILE)).map_err(|e| self.io(e))?;
        // Ordering: the rename is durable only once the directory entry is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn round_trips_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.load().unwrap().is_none());
        let state = ClusterState::new(Uuid::new_v4());
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), state);

        fs::write(dir.path().join(FILE), b"{\"format\": 1, \"state\": {").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        fs::write(dir.path().join(FILE), b"{\"format\": 99}").unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::Format { found: 99, .. })
        ));
    }
}
