//! The append-only file (`appendonly yes`): every change of the keyspace, written as it
//! happens, so that a node restarted (even after kill -9) comes back with its data.
//!
//! - **Written from the replication log.** The log ([`crate::replication::log`]) already
//!   holds every write's effect, in order, at an offset; the file is those frames, in
//!   the replication stream's own format ([`file`]). With `appendonly yes` the log
//!   records the node's writes whether or not it has replicas, and it never trims a
//!   frame the file has not taken yet (so a slow disk costs memory, as Redis's AOF
//!   buffer does).
//! - **Its own thread.** The writer ([`writer`]) takes new frames as they come, writes
//!   them, and syncs the file by `appendfsync`: `always` syncs after every batch, and a
//!   client's replies wait until its writes are synced (one fsync shared by every client
//!   of the batch: group commit); `everysec` syncs once a second (up to about a second
//!   of writes can be lost); `no` leaves it to the kernel.
//! - **Rewritten in the background** (`BGREWRITEAOF`, `auto-aof-rewrite-percentage` /
//!   `-min-size`): the full-sync engine ([`crate::replication::fullsync`]) writes a new
//!   file from a consistent copy of the keyspace while writes go on, the frames written
//!   meanwhile follow it, and it replaces the old file by a rename once synced.
//! - **Loaded before the node serves**, in place of the snapshot: a torn last record is
//!   dropped (`aof-load-truncated yes`, the default, as Redis) or refused; corruption
//!   anywhere else stops the node with the file and the offset. The file also says which
//!   replication history and offset the data is at, so a node restarted from it resumes
//!   replication partially when its primary's backlog allows.

mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::copy::Pos;
use super::file::{self, ChunkFile, FileError};
use crate::state::ServerState;

/// The file's name in the node's `--data-dir` (`CONFIG GET appendfilename`).
pub const FILE: &str = "appendonly.ember";

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always = 0,
    EverySec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(v: &[u8]) -> Option<Fsync> {
        [Fsync::Always, Fsync::EverySec, Fsync::No]
            .into_iter()
            .find(|f| v.eq_ignore_ascii_case(f.name().as_bytes()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }

    fn from_u8(v: u8) -> Fsync {
        match v {
            0 => Fsync::Always,
            1 => Fsync::EverySec,
            _ => Fsync::No,
        }
    }
}

/// The settings (`CONFIG SET appendonly ...`), in the runtime config.
#[derive(Debug)]
pub struct Settings {
    appendonly: AtomicBool,
    fsync: AtomicU8,
    /// `auto-aof-rewrite-percentage` (0: no automatic rewrite).
    pub auto_percentage: AtomicU64,
    /// `auto-aof-rewrite-min-size` (bytes).
    pub auto_min_size: AtomicU64,
    /// `aof-load-truncated`.
    pub load_truncated: AtomicBool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            appendonly: AtomicBool::new(false),
            fsync: AtomicU8::new(Fsync::EverySec as u8),
            auto_percentage: AtomicU64::new(100),
            auto_min_size: AtomicU64::new(64 * 1024 * 1024),
            load_truncated: AtomicBool::new(true),
        }
    }
}

impl Settings {
    pub fn appendonly(&self) -> bool {
        self.appendonly.load(Ordering::Relaxed)
    }

    /// Takes effect with [`reconcile`].
    pub fn set_appendonly(&self, on: bool) {
        self.appendonly.store(on, Ordering::Relaxed)
    }

    pub fn fsync(&self) -> Fsync {
        Fsync::from_u8(self.fsync.load(Ordering::Relaxed))
    }

    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f as u8, Ordering::Relaxed)
    }
}

/// The file's run-time state (`INFO persistence`), and the hand-off to the writer.
#[derive(Default)]
pub struct Aof {
    /// The writer runs.
    running: AtomicBool,
    /// Replies wait for their writes to be synced (running, with `appendfsync always`).
    always: AtomicBool,
    /// The log offset up to which the file is synced.
    synced: AtomicU64,
    /// Woken when `synced` moves (or waiting stops making sense).
    durable: tokio::sync::Notify,
    /// Wakes the writer: stop, a rewrite asked for.
    wake: tokio::sync::Notify,
    stop: AtomicBool,
    rewrite_wanted: AtomicBool,
    /// The rewrite's position in the log (`u64::MAX`: none runs); the log keeps every
    /// frame after it.
    rewrite_cursor: AtomicU64,
    /// A file loaded at start, for the writer to go on with.
    loaded: Mutex<Option<(ChunkFile, Pos)>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(crate) stats: Mutex<Stats>,
    /// The last write or sync failed (`stats.last_write_error` says why): read before
    /// every write command.
    pub(crate) failing: AtomicBool,
}

/// What `INFO persistence` reports of the file.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub rewriting_since: Option<std::time::Instant>,
    pub last_rewrite_secs: Option<u64>,
    pub last_rewrite_failed: bool,
    pub rewrites: u64,
    pub consecutive_failures: u64,
    /// Why the last write or sync of the file failed (`strerror`'s words), until one
    /// succeeds: writes are refused with `MISCONF` meanwhile.
    pub last_write_error: Option<String>,
    pub current_size: u64,
    pub base_size: u64,
}

impl Aof {
    /// Whether a client that wrote up to log offset `woff` must wait before its replies
    /// go out (one load when the file is off or not `always`).
    pub fn must_wait(&self, woff: u64) -> bool {
        self.always.load(Ordering::Acquire) && self.synced.load(Ordering::Acquire) < woff
    }

    /// Until the file is synced up to `woff` (or stops being `always`).
    pub async fn wait_durable(&self, woff: u64) {
        loop {
            let synced = self.durable.notified();
            if !self.must_wait(woff) {
                return;
            }
            synced.await;
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Why the running file's last write or sync failed, if it did (Redis refuses
    /// writes until one succeeds again).
    pub fn write_error(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) || !self.is_running() {
            return None;
        }
        self.stats.lock().last_write_error.clone()
    }

    /// `BGREWRITEAOF`.
    pub fn request_rewrite(&self) -> Result<(), RewriteRefused> {
        if !self.is_running() {
            return Err(RewriteRefused::Off);
        }
        if self.stats.lock().rewriting_since.is_some()
            || self.rewrite_wanted.swap(true, Ordering::AcqRel)
        {
            return Err(RewriteRefused::InProgress);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// The `aof_*` lines of `INFO persistence`.
    pub fn info(&self) -> String {
        let s = self.stats.lock();
        let current = s
            .rewriting_since
            .map_or(-1, |t| t.elapsed().as_secs() as i64);
        format!(
            "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{current}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\n{}",
            u8::from(self.is_running()),
            u8::from(s.rewriting_since.is_some()),
            u8::from(self.rewrite_wanted.load(Ordering::Relaxed) && s.rewriting_since.is_none()),
            s.last_rewrite_secs.map_or(-1, |t| t as i64),
            if s.last_rewrite_failed { "err" } else { "ok" },
            s.rewrites,
            s.consecutive_failures,
            if s.last_write_error.is_some() { "err" } else { "ok" },
            match self.is_running() {
                true => format!(
                    "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                    s.current_size, s.base_size
                ),
                false => String::new(),
            }
        )
    }
}

/// Why `BGREWRITEAOF` did not start one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteRefused {
    #[error("ERR Background append only file rewriting already in progress")]
    InProgress,
    #[error("ERR the append-only file is off: turn it on with CONFIG SET appendonly yes (its first rewrite starts then)")]
    Off,
}

/// Starts or stops the writer as the `appendonly` setting says, and makes replies wait
/// for the file as `appendfsync` says. Starting it makes the log record this node's
/// writes (a primary's; a replica's log holds its primary's frames already) and, without
/// a file loaded at start, rewrites the file first.
pub fn reconcile(state: &Arc<ServerState>) {
    let aof = &state.persist.aof;
    let want = state.config.aof.appendonly();
    let mut thread = aof.thread.lock();
    match (want, thread.is_some()) {
        (true, false) => {
            let Some(dir) = state.persist.dir().cloned() else {
                tracing::warn!("appendonly yes without a data directory: nothing is written");
                return;
            };
            if !crate::db::is_replica() {
                state.repl.attach(&state.db);
            }
            aof.stop.store(false, Ordering::Release);
            aof.running.store(true, Ordering::Release);
            let state = state.clone();
            *thread = Some(
                std::thread::Builder::new()
                    .name("ember-aof".into())
                    .spawn(move || writer::run(state, dir))
                    .expect("cannot start the append-only file's thread"),
            );
            tracing::info!("append-only file on");
        }
        (false, true) => {
            stop_writer(aof, &mut thread);
            tracing::info!("append-only file off");
        }
        _ => {}
    }
    // From the next write on (not the writer's next turn), replies wait for the file
    // with `always`, and no longer wait without it.
    let always = thread.is_some() && state.config.aof.fsync() == Fsync::Always;
    aof.always.store(always, Ordering::Release);
    aof.durable.notify_waiters();
}

/// At shutdown: everything written so far goes to the file, synced, and the writer
/// stops.
pub fn flush_at_shutdown(state: &ServerState) {
    let aof = &state.persist.aof;
    stop_writer(aof, &mut aof.thread.lock());
}

/// Tells the writer to write and sync what the log holds, then stop; waits for it.
fn stop_writer(aof: &Aof, thread: &mut Option<std::thread::JoinHandle<()>>) {
    aof.stop.store(true, Ordering::Release);
    aof.wake.notify_one();
    if let Some(t) = thread.take() {
        let _ = t.join();
    }
}

/// Loads the file in `dir` into the keyspace (before the node serves): the data, and
/// the replication position it is at. What it read, or `None` without a file.
pub fn load(state: &ServerState, dir: &Path) -> Result<Option<file::Loaded>, FileError> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let truncated_ok = state.config.aof.load_truncated.load(Ordering::Relaxed);
    let super::copy::Read { read, pos, .. } = super::copy::load(state, &path, truncated_ok)?;
    let io = |source| FileError::Io {
        path: path.clone(),
        source,
    };
    if read.dropped > 0 {
        tracing::warn!(
            path = %path.display(),
            valid = read.valid,
            dropped = read.dropped,
            "the append-only file ends in an incomplete record (a crash while writing): loading what precedes it and cutting the file there (aof-load-truncated yes)"
        );
        file::truncate(&path, read.valid).map_err(io)?;
    }
    state.repl.mark_loaded();
    let f = ChunkFile::open(path.clone(), read.valid).map_err(io)?;
    {
        let mut s = state.persist.aof.stats.lock();
        s.current_size = read.valid;
        s.base_size = read.valid;
    }
    *state.persist.aof.loaded.lock() = Some((f, pos));
    Ok(Some(read))
}
