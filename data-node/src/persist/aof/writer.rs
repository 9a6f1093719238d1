//! The append-only file's thread: takes the log's new frames, writes and syncs them by
//! `appendfsync`, and runs rewrites (each on a thread of its own) and the switch to
//! their file.
//!
//! Ordering: the log keeps every frame after `min(file cursor, rewrite cursor)` (its
//! pin), and a rewrite's start is read from the log only once the pin is at or before
//! it; a rewritten file replaces the old one only once it holds every frame the old
//! one had (the frames after the rewrite's end are appended to it first) and is synced.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Fsync, FILE};
use crate::persist::copy::{self, Pos};
use crate::persist::file::ChunkFile;
use crate::replication::log::Reader;
use crate::state::ServerState;

/// Frames read from the log at once.
const FRAMES_PER_READ: usize = 1024;
/// `everysec`'s period.
const EVERY: Duration = Duration::from_secs(1);
/// With `everysec` and `no`, frames are taken this often (what a kill -9 can lose
/// beyond what the kernel holds).
const BATCH: Duration = Duration::from_millis(5);
/// A write or sync that keeps failing is logged this often.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);
/// Wait before trying again after a failed rewrite.
const RETRY: Duration = Duration::from_secs(1);

pub(super) fn run(state: Arc<ServerState>, dir: PathBuf) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("cannot start the append-only file's runtime");
    let (file, pos) = state.persist.aof.loaded.lock().take().unzip();
    let w = Writer {
        state,
        dir,
        file,
        pos,
        last_sync: Instant::now(),
        unsynced: false,
        rewrite: None,
        retry_at: None,
        logged_failure: None,
    };
    rt.block_on(w.run());
}

/// A finished rewrite: its file, and where in the log it ends.
struct Rewritten {
    file: ChunkFile,
    pos: Pos,
    began: Instant,
}

struct Writer {
    state: Arc<ServerState>,
    dir: PathBuf,
    /// The file appended to (none before the first rewrite of a node without one).
    file: Option<ChunkFile>,
    /// Where the file is in the log (none: the history broke, a rewrite must follow).
    pos: Option<Pos>,
    last_sync: Instant,
    /// Something was written since the last sync.
    unsynced: bool,
    rewrite: Option<oneshot::Receiver<Result<Rewritten, String>>>,
    /// No rewrite of a broken file before this (after a failure).
    retry_at: Option<Instant>,
    /// When a failing write or sync was last logged (none: the last one succeeded).
    logged_failure: Option<Instant>,
}

impl Writer {
    async fn run(mut self) {
        let state = self.state.clone();
        let aof = &state.persist.aof;
        loop {
            let appended = state.repl.appended.notified();
            let woken = aof.wake.notified();
            tokio::pin!(appended, woken);
            appended.as_mut().enable();
            woken.as_mut().enable();
            let stopping = aof.stop.load(Ordering::Acquire);
            if let Some(done) = self.rewrite.as_mut().and_then(|rx| rx.try_recv().ok()) {
                self.rewrite = None;
                self.finish_rewrite(done);
            }
            if !stopping && self.rewrite.is_none() && self.wants_rewrite() {
                self.start_rewrite();
            }
            self.update_pin();
            let more = self.append();
            let fsync = state.config.aof.fsync();
            self.sync(fsync, stopping);
            if stopping {
                if more {
                    continue;
                }
                // Everything logged so far is in the file, synced. Replies still waiting
                // (writes after this point, at a shutdown) stay held: `reconcile` releases
                // them when the file is turned off at run time.
                self.sync(Fsync::Always, true);
                aof.running.store(false, Ordering::Release);
                state.repl.pin(Reader::Aof, u64::MAX);
                aof.rewrite_cursor.store(u64::MAX, Ordering::Release);
                return;
            }
            if more {
                continue;
            }
            let tick = match self.unsynced {
                true => EVERY.saturating_sub(self.last_sync.elapsed()),
                false => EVERY,
            };
            if fsync == Fsync::Always {
                tokio::select! {
                    _ = &mut appended => {}
                    _ = &mut woken => {}
                    _ = tokio::time::sleep(tick) => {}
                }
            } else {
                // Nobody waits for the file: take the frames in batches rather than be
                // woken (across threads) for every turn of commands.
                tokio::select! {
                    _ = &mut woken => {}
                    _ = tokio::time::sleep(tick.min(BATCH)) => {}
                }
            }
        }
    }

    /// Whether a rewrite should start: asked for, the file has no valid position (none
    /// yet, or the history broke) or it grew past `auto-aof-rewrite-*`.
    fn wants_rewrite(&self) -> bool {
        let aof = &self.state.persist.aof;
        if self.state.cluster.is_partial() {
            // A replica's full sync is filling the keyspace outside the log: after it.
            return false;
        }
        if aof.rewrite_wanted.load(Ordering::Acquire) {
            return true;
        }
        if self.pos.is_none() {
            return self.retry_at.is_none_or(|t| Instant::now() >= t);
        }
        let settings = &self.state.config.aof;
        let pct = settings.auto_percentage.load(Ordering::Relaxed);
        let min = settings.auto_min_size.load(Ordering::Relaxed);
        let base = aof.stats.lock().base_size;
        let size = self.file.as_ref().map_or(0, |f| f.size);
        pct > 0 && base > 0 && size >= min && (size - base) * 100 / base >= pct
    }

    /// The log keeps what the file and the rewrite have not taken.
    fn update_pin(&self) {
        let rewrite = self
            .state
            .persist
            .aof
            .rewrite_cursor
            .load(Ordering::Acquire);
        let file = self.pos.map_or(u64::MAX, |p| p.cursor);
        self.state.repl.pin(Reader::Aof, file.min(rewrite));
    }

    /// Writes the next frames to the file; whether there may be more right away.
    fn append(&mut self) -> bool {
        let (Some(file), Some(pos)) = (self.file.as_mut(), self.pos.as_mut()) else {
            return false;
        };
        let n = match copy::take_frames(&self.state, file, pos, FRAMES_PER_READ) {
            Ok(n) => n,
            Err(why) => {
                tracing::warn!(
                    "the append-only file no longer follows the log ({why}): rewriting it"
                );
                self.pos = None;
                return false;
            }
        };
        self.write();
        n == FRAMES_PER_READ
    }

    /// Writes what is queued; a failure keeps it queued (the file is cut back to its
    /// last whole record) and, with `always`, stops the node: acknowledged writes must
    /// be on disk.
    fn write(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.queued() == 0 {
            return;
        }
        let r = file.write();
        let size = file.size;
        self.outcome(r.map(|_| size), "write");
        self.unsynced = true;
    }

    fn outcome(&mut self, r: std::io::Result<u64>, what: &str) {
        let aof = &self.state.persist.aof;
        aof.failing.store(r.is_err(), Ordering::Relaxed);
        let mut s = aof.stats.lock();
        match r {
            Ok(size) => {
                s.current_size = size;
                if s.last_write_error.take().is_some() {
                    tracing::warn!("the append-only file is written again: writes are accepted");
                }
                self.logged_failure = None;
            }
            Err(e) => {
                // Tried again every few milliseconds: logged when it starts, then every
                // 30 s, as Redis.
                if self
                    .logged_failure
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY)
                {
                    tracing::error!("cannot {what} the append-only file: {e} (writes are refused with MISCONF until it can be written)");
                    self.logged_failure = Some(Instant::now());
                }
                s.last_write_error = Some(os_words(&e));
                if self.state.config.aof.fsync() == Fsync::Always {
                    tracing::error!("cannot recover from an append-only file error with appendfsync always: exiting");
                    std::process::exit(1);
                }
            }
        }
    }

    /// Syncs by the policy (`force`: whatever it is).
    fn sync(&mut self, fsync: Fsync, force: bool) {
        let (Some(file), Some(pos)) = (self.file.as_ref(), self.pos) else {
            return;
        };
        let due = match fsync {
            Fsync::Always => self.unsynced,
            Fsync::EverySec => self.unsynced && (force || self.last_sync.elapsed() >= EVERY),
            Fsync::No => force && self.unsynced,
        };
        if due {
            let r = file.sync();
            let size = file.size;
            self.outcome(r.map(|_| size), "sync");
            self.last_sync = Instant::now();
            self.unsynced = false;
        }
        let aof = &self.state.persist.aof;
        if !self.unsynced || fsync == Fsync::No {
            aof.synced.fetch_max(pos.cursor, Ordering::AcqRel);
            aof.durable.notify_waiters();
        }
    }

    fn start_rewrite(&mut self) {
        let state = self.state.clone();
        let aof = &state.persist.aof;
        aof.rewrite_wanted.store(false, Ordering::Release);
        // Ordering: the log keeps every frame from the rewrite's start on before that
        // start is read (with a valid file position the pin is at or before it already).
        if self.pos.is_none() {
            state.repl.pin(Reader::Aof, 0);
        }
        let (history, start) = state.repl.history();
        aof.rewrite_cursor.store(start, Ordering::Release);
        self.update_pin();
        aof.stats.lock().rewriting_since = Some(Instant::now());
        let (tx, rx) = oneshot::channel();
        self.rewrite = Some(rx);
        let dir = self.dir.clone();
        tracing::info!(
            offset = start,
            keys = state.db.dbsize(),
            "rewriting the append-only file"
        );
        let spawned = std::thread::Builder::new()
            .name("ember-aof-rewrite".into())
            .spawn(move || {
                let began = Instant::now();
                let aof = &state.persist.aof;
                let progress = |at| aof.rewrite_cursor.store(at, Ordering::Release);
                let stopped = || aof.stop.load(Ordering::Acquire);
                let r = copy::write(
                    &state,
                    rewrite_path(&dir),
                    history,
                    start,
                    &progress,
                    &stopped,
                )
                .map(|(file, pos)| Rewritten { file, pos, began });
                let _ = tx.send(r);
                state.persist.aof.wake.notify_one();
            });
        if let Err(e) = spawned {
            self.finish_rewrite(Err(format!("cannot start its thread: {e}")));
        }
    }

    /// Switches to a finished rewrite's file (see the module's ordering), or records
    /// its failure.
    fn finish_rewrite(&mut self, done: Result<Rewritten, String>) {
        let state = self.state.clone();
        let aof = &state.persist.aof;
        aof.rewrite_cursor.store(u64::MAX, Ordering::Release);
        let tmp = rewrite_path(&self.dir);
        let switched = done.and_then(|r| self.switch(r));
        let mut s = aof.stats.lock();
        s.rewriting_since = None;
        match switched {
            Ok(secs) => {
                s.rewrites += 1;
                s.consecutive_failures = 0;
                s.last_rewrite_failed = false;
                s.last_rewrite_secs = Some(secs);
                s.base_size = s.current_size;
                self.retry_at = None;
                tracing::info!(bytes = s.current_size, secs, "append-only file rewritten");
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                s.consecutive_failures += 1;
                s.last_rewrite_failed = true;
                self.retry_at = Some(Instant::now() + RETRY);
                tracing::warn!("the append-only file's rewrite failed: {e}");
            }
        }
    }

    /// Appends the frames written since the rewrite's end to its file, syncs it and
    /// renames it over the old one. The rewrite's duration in seconds.
    fn switch(&mut self, mut r: Rewritten) -> Result<u64, String> {
        loop {
            let n = copy::take_frames(&self.state, &mut r.file, &mut r.pos, FRAMES_PER_READ)
                .map_err(|e| format!("the history moved on during the rewrite ({e})"))?;
            if n < FRAMES_PER_READ {
                break;
            }
        }
        let shown = r.file.path.display().to_string();
        r.file
            .install(self.dir.join(FILE))
            .map_err(|e| format!("{shown}: {e}"))?;
        let aof = &self.state.persist.aof;
        aof.stats.lock().current_size = r.file.size;
        aof.synced.fetch_max(r.pos.cursor, Ordering::AcqRel);
        aof.durable.notify_waiters();
        self.file = Some(r.file);
        self.pos = Some(r.pos);
        self.unsynced = false;
        self.update_pin();
        Ok(r.began.elapsed().as_secs())
    }
}

/// An I/O error in `strerror`'s words, as Redis's `MISCONF` reply shows it ("No space
/// left on device"), without Rust's " (os error N)".
fn os_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_string(),
        _ => text,
    }
}

fn rewrite_path(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE}.rewrite"))
}
