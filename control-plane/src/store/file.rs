//! The file store: `DATA_DIR/state.json`, one JSON document replaced atomically.
//!
//! Write protocol: write `state.json.tmp`, fsync it, rename it over `state.json`, fsync the
//! directory. A crash at any point leaves either the old or the new document, never a mix.
//!
//! Beside it, `cluster-id` names the cluster whose state the dir holds, written once. A
//! dir with `cluster-id` but no `state.json` lost its state (deleted, or a bad restore):
//! that is an error with a way out, never silently a new cluster, since nodes of the old
//! cluster would then be told they belong nowhere. An empty or new dir starts a new state.
//!
//! One process owns the dir: the version a commit replaces is checked against the last
//! one this process loaded or stored.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{decode, encode, StateStore, StoreError};
use crate::state::ClusterState;

pub(super) const FILE: &str = "state.json";
pub(super) const MARKER: &str = "cluster-id";

/// The data dir holding `state.json`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The version stored last (as this process loaded or committed it).
    stored: Arc<Mutex<Option<u64>>>,
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
            stored: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// The persisted state, or `None` for an empty or new data dir.
    pub fn load(&self) -> Result<Option<ClusterState>, StoreError> {
        let file = self.dir.join(FILE);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match fs::read_to_string(self.dir.join(MARKER)) {
                    Ok(id) => Err(StoreError::Lost {
                        dir: self.dir.clone(),
                        cluster_id: id.trim().to_string(),
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(self.io(e)),
                };
            }
            Err(e) => return Err(self.io(e)),
        };
        decode(&bytes, &file).map(Some)
    }

    /// Durably replaces the persisted state. Returns only once the state survives a crash.
    pub fn save(&self, state: &ClusterState) -> Result<(), StoreError> {
        self.replace(FILE, &encode(state))?;
        let id = state.topology.cluster_id.to_string();
        let marker = fs::read_to_string(self.dir.join(MARKER)).unwrap_or_default();
        if marker.trim() != id {
            // Ordering: after state.json, so a marker never names a state that is not there.
            self.replace(MARKER, format!("{id}\n").as_bytes())?;
        }
        Ok(())
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        fs::rename(&tmp, self.dir.join(name)).map_err(|e| self.io(e))?;
        // Ordering: the rename is durable only once the directory entry is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[tonic::async_trait]
impl StateStore for Store {
    async fn load(&self) -> Result<Option<ClusterState>, StoreError> {
        let store = self.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load())
            .await
            .expect("load task panicked")?;
        *self.stored.lock().unwrap() = loaded.as_ref().map(ClusterState::version);
        Ok(loaded)
    }

    async fn commit(&self, expected: Option<u64>, next: &ClusterState) -> Result<(), StoreError> {
        let found = *self.stored.lock().unwrap();
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        let (store, next) = (self.clone(), next.clone());
        let version = next.version();
        tokio::task::spawn_blocking(move || store.save(&next))
            .await
            .expect("persist task panicked")?;
        *self.stored.lock().unwrap() = Some(version);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.dir.join(FILE).display())
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

    #[test]
    fn a_dir_that_lost_its_state_is_an_error_not_a_new_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = ClusterState::new(Uuid::new_v4());
        store.save(&state).unwrap();
        fs::remove_file(dir.path().join(FILE)).unwrap();
        match store.load() {
            Err(StoreError::Lost { cluster_id, .. }) => {
                assert_eq!(cluster_id, state.topology.cluster_id.to_string())
            }
            other => panic!("expected Lost, got {other:?}"),
        }
    }

    #[test]
    fn a_full_disk_fails_the_save_and_keeps_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = ClusterState::new(Uuid::new_v4());
        store.save(&state).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join("state.json.tmp")).unwrap();
        let mut next = state.clone();
        next.topology.version = 9;
        let err = store.save(&next).unwrap_err();
        assert!(
            matches!(err, StoreError::Io { ref source, .. } if source.raw_os_error() == Some(28))
        );
        assert_eq!(store.load().unwrap().unwrap(), state);
    }
}
