//! Persistence of a data node's keyspace: snapshots on disk (`SAVE`, `BGSAVE`, `save`
//! points, `SHUTDOWN SAVE`, loaded at start), optional and off by default as for a
//! cache. The file format is [`snapshot`]'s.
//!
//! - **Without a fork**: a save reads the keyspace slot by slot, each slot under its
//!   lock for as long as it takes to encode its keys (writes to that slot wait that
//!   long, the others go on), so the file is consistent per slot and per key, not as
//!   of one instant (Redis's fork gives one instant). `SAVE` writes on the caller's
//!   thread; `BGSAVE` and the `save` points on a thread of their own.
//! - **Loaded before the node serves**: `main` loads the data directory's snapshot,
//!   if there is one, before it listens; a corrupt or truncated file stops the node
//!   with its path and the offset (nothing is loaded in part). Keys of slots the
//!   topology no longer gives the node stay in the keyspace, invisible (every command
//!   on them is redirected), until the slot's data comes back with a migration or a
//!   full sync, which replace them.

pub mod aof;
pub(crate) mod copy;
pub mod file;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::state::ServerState;

/// Where the node saves, and how its saves went (`INFO persistence`, `LASTSAVE`).
pub struct Persistence {
    /// The node's `--data-dir` (unset in the command engine's tests: no saving).
    dir: OnceLock<PathBuf>,
    /// Writes since the last successful save (`rdb_changes_since_last_save`).
    pub dirty: AtomicU64,
    /// Unix seconds of the last successful save (or of the start, as Redis).
    last_save: AtomicU64,
    last_ok: AtomicBool,
    /// Seconds the last background save took (-1: none yet).
    last_bg_secs: AtomicI64,
    /// When the running background save started (ms since the epoch; 0: none).
    bg_started: AtomicU64,
    /// One save at a time.
    saving: Mutex<()>,
    /// A `SHUTDOWN` saved already, or asked not to.
    pub shutdown_done: AtomicBool,
    /// `BGSAVE SCHEDULE` while one ran: another once it is done.
    scheduled: AtomicBool,
    /// Unix seconds of the last attempt (a failed save is retried after 5 s).
    last_try: AtomicU64,
    /// The node, for background saves.
    node: OnceLock<std::sync::Weak<ServerState>>,
    /// The append-only file.
    pub aof: aof::Aof,
    /// Slots whose keys came from the snapshot loaded at start and that the topology
    /// has not given this node since: their keys are kept (orphaned), not freed.
    loaded: Mutex<std::collections::BTreeSet<u16>>,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            dir: OnceLock::new(),
            dirty: AtomicU64::new(0),
            last_save: AtomicU64::new(unix_secs()),
            last_ok: AtomicBool::new(true),
            last_bg_secs: AtomicI64::new(-1),
            bg_started: AtomicU64::new(0),
            saving: Mutex::new(()),
            shutdown_done: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            last_try: AtomicU64::new(0),
            node: OnceLock::new(),
            aof: aof::Aof::default(),
            loaded: Mutex::default(),
        }
    }
}

/// Why a save was not made.
#[derive(Debug, thiserror::Error)]
pub enum SaveRefused {
    #[error("ERR this node has no data directory to save to")]
    NoDirectory,
    #[error("ERR Background save already in progress")]
    InProgress,
    #[error("ERR {0}")]
    Failed(#[from] snapshot::SaveError),
}

impl Persistence {
    /// The data directory saves go to (`main` sets it).
    pub fn set_dir(&self, dir: PathBuf, node: &Arc<ServerState>) {
        let _ = self.dir.set(dir);
        let _ = self.node.set(Arc::downgrade(node));
    }

    /// The node itself (set with the data directory).
    pub fn node(&self) -> Option<Arc<ServerState>> {
        self.node.get().and_then(std::sync::Weak::upgrade)
    }

    /// The slots a snapshot just filled (see `loaded`).
    pub fn loaded(&self, slots: impl Iterator<Item = u16>) {
        self.loaded.lock().extend(slots);
    }

    /// Whether `slot`'s keys, not held by this node by the topology, are a snapshot's
    /// to keep; `held` slots stop being so (their keys are the node's own again).
    pub fn keep_unheld(&self, slot: u16, held: bool) -> bool {
        let mut loaded = self.loaded.lock();
        match held {
            true => {
                loaded.remove(&slot);
                false
            }
            false => loaded.contains(&slot),
        }
    }

    /// `BGSAVE SCHEDULE`: one more background save once the running one is done.
    pub fn schedule(&self) {
        self.scheduled.store(true, Ordering::Relaxed);
    }

    pub fn dir(&self) -> Option<&PathBuf> {
        self.dir.get()
    }

    /// Unix seconds of the last successful save (`LASTSAVE`).
    pub fn last_save(&self) -> u64 {
        self.last_save.load(Ordering::Relaxed)
    }

    /// A write happened (counted for the `save` points).
    pub fn changed(&self, n: u64) {
        self.dirty.fetch_add(n, Ordering::Relaxed);
    }

    /// `INFO persistence`.
    pub fn info(&self) -> String {
        let bg = self.bg_started.load(Ordering::Relaxed);
        let current = match bg {
            0 => -1,
            t => (crate::db::now_ms().saturating_sub(t) / 1000) as i64,
        };
        format!(
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{current}\r\n{}\r\n",
            self.dirty.load(Ordering::Relaxed),
            u8::from(bg != 0),
            self.last_save.load(Ordering::Relaxed),
            if self.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
            self.last_bg_secs.load(Ordering::Relaxed),
            self.aof.info(),
        )
    }
}

/// Redis's refusal of writes after a failed `BGSAVE` (with `save` points and
/// `stop-writes-on-bgsave-error yes`).
pub const SAVE_FAILED: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Whether a primary refuses writes (and `PING`) because its data cannot reach the
/// disk, as Redis does: its last snapshot failed while it has `save` points and
/// `stop-writes-on-bgsave-error yes` (until a save succeeds), or the append-only
/// file's last write failed (until a write succeeds; with `appendfsync always` the
/// node stops instead). Replicas are never refused: they apply what their primary
/// decided.
pub fn refuse_writes(state: &ServerState) -> Option<crate::resp::Reply> {
    let p = &state.persist;
    let save_failed = !p.last_ok.load(Ordering::Relaxed);
    let aof_failed = p.aof.failing.load(Ordering::Relaxed);
    if (!save_failed && !aof_failed) || state.cluster.role() != ember_core::Role::Primary {
        return None;
    }
    if save_failed && state.config.stop_writes_on_bgsave_error() && state.config.has_save_points() {
        return Some(crate::resp::Reply::err(SAVE_FAILED));
    }
    let why = p.aof.write_error()?;
    Some(crate::resp::Reply::error(format!(
        "MISCONF Errors writing to the AOF file: {why}"
    )))
}

/// Keys this node holds in slots the applied topology does not give it (loaded from a
/// snapshot after the slot moved on): invisible, kept, reported to the control plane
/// (`emberctl nodes`). 0 before a topology.
pub fn orphaned_keys(state: &ServerState) -> u64 {
    state
        .db
        .nonempty_slots()
        .filter(|&s| state.cluster.holds(s) == Some(false))
        .map(|s| state.db.count_in_slot(s) as u64)
        .sum()
}

fn unix_secs() -> u64 {
    crate::db::now_ms() / 1000
}

/// `SAVE`: writes the snapshot now, on this thread (refused while a background save
/// runs, as Redis).
pub fn save(state: &ServerState) -> Result<snapshot::Done, SaveRefused> {
    let p = &state.persist;
    let dir = p.dir().ok_or(SaveRefused::NoDirectory)?;
    if p.bg_started.load(Ordering::Relaxed) != 0 {
        return Err(SaveRefused::InProgress);
    }
    let _one = p.saving.lock();
    save_locked(state, dir)
}

/// The save of a `SHUTDOWN` (or a signal): after the running background save, if any.
pub fn save_at_shutdown(state: &ServerState) -> Result<snapshot::Done, SaveRefused> {
    let p = &state.persist;
    let dir = p.dir().ok_or(SaveRefused::NoDirectory)?;
    let _one = p.saving.lock();
    save_locked(state, dir)
}

fn save_locked(state: &ServerState, dir: &std::path::Path) -> Result<snapshot::Done, SaveRefused> {
    let p = &state.persist;
    p.last_try.store(unix_secs(), Ordering::Relaxed);
    let dirty = p.dirty.load(Ordering::Relaxed);
    match snapshot::save(state, dir) {
        Ok(done) => {
            // Writes during the save may or may not be in it: count them for the next.
            p.dirty.fetch_sub(dirty, Ordering::Relaxed);
            p.last_save.store(unix_secs(), Ordering::Relaxed);
            p.last_ok.store(true, Ordering::Relaxed);
            tracing::info!(
                keys = done.keys,
                bytes = done.bytes,
                ms = done.took.as_millis() as u64,
                "snapshot saved"
            );
            Ok(done)
        }
        Err(e) => {
            p.last_ok.store(false, Ordering::Relaxed);
            tracing::error!("snapshot not saved: {e}");
            Err(e.into())
        }
    }
}

/// `BGSAVE`: starts writing the snapshot on a thread of its own.
pub fn bgsave(state: &ServerState) -> Result<(), SaveRefused> {
    let p = &state.persist;
    p.dir().ok_or(SaveRefused::NoDirectory)?;
    let state = p.node().ok_or(SaveRefused::NoDirectory)?;
    if p.bg_started.load(Ordering::Relaxed) != 0 || p.saving.is_locked() {
        return Err(SaveRefused::InProgress);
    }
    p.bg_started.store(crate::db::now_ms(), Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("ember-bgsave".into())
        .spawn(move || {
            let p = &state.persist;
            let began = std::time::Instant::now();
            if let Some(dir) = p.dir() {
                let _one = p.saving.lock();
                let _ = save_locked(&state, dir);
            }
            p.last_bg_secs
                .store(began.elapsed().as_secs() as i64, Ordering::Relaxed);
            p.bg_started.store(0, Ordering::Relaxed);
        });
    if spawned.is_err() {
        p.bg_started.store(0, Ordering::Relaxed);
        return Err(SaveRefused::InProgress);
    }
    Ok(())
}

/// Parses `save`'s value: pairs of `seconds changes` (validated by `CONFIG SET`).
fn save_points(s: &str) -> Vec<(u64, u64)> {
    let n: Vec<u64> = s
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    n.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

/// The node's `save` points.
fn node_save_points(state: &ServerState) -> Vec<(u64, u64)> {
    save_points(&state.config.get("save").unwrap_or_default())
}

/// Whether `save` has points (a plain `SHUTDOWN` then saves, as in Redis).
pub fn has_save_points(state: &ServerState) -> bool {
    !node_save_points(state).is_empty()
}

/// Starts a background save when a `save` point is reached (`N` seconds since the last
/// save and at least `M` changes), checked every second; after a failed save, waits 5
/// seconds before trying again (as Redis).
pub async fn scheduler(state: Arc<ServerState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let p = &state.persist;
        if p.dir().is_none() || p.bg_started.load(Ordering::Relaxed) != 0 {
            continue;
        }
        if p.scheduled.swap(false, Ordering::Relaxed) {
            let _ = bgsave(&state);
            continue;
        }
        let since = unix_secs().saturating_sub(p.last_save());
        let tried = unix_secs().saturating_sub(p.last_try.load(Ordering::Relaxed));
        if !p.last_ok.load(Ordering::Relaxed) && tried < 5 {
            continue;
        }
        let dirty = p.dirty.load(Ordering::Relaxed);
        let points = node_save_points(&state);
        if points
            .iter()
            .any(|&(secs, changes)| dirty >= changes && since >= secs)
        {
            tracing::info!(
                changes = dirty,
                seconds = since,
                "a save point is reached: saving"
            );
            let _ = bgsave(&state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;

    fn node(dir: &std::path::Path) -> Arc<ServerState> {
        let state = Arc::new(ServerState::new(
            Arc::new(Cluster::standalone()),
            crate::Config::default(),
        ));
        state.persist.set_dir(dir.to_path_buf(), &state);
        state
    }

    /// `SAVE` and `BGSAVE` are refused while a background save runs; a shutdown's save
    /// waits for it instead; a save clears the change count.
    #[test]
    fn one_save_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = node(dir.path());
        state.persist.changed(3);
        state.persist.bg_started.store(1, Ordering::Relaxed);
        assert!(matches!(save(&state), Err(SaveRefused::InProgress)));
        assert!(matches!(bgsave(&state), Err(SaveRefused::InProgress)));
        save_at_shutdown(&state).unwrap();
        assert_eq!(state.persist.dirty.load(Ordering::Relaxed), 0);
        assert!(snapshot::exists(dir.path()));
    }

    #[test]
    fn save_points_are_pairs() {
        assert_eq!(save_points("3600 1 300 100"), [(3600, 1), (300, 100)]);
        assert!(save_points("").is_empty());
    }
}
