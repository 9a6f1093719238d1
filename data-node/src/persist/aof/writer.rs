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

use ember_proto::pb::{self, repl_item::Item};
use tokio::sync::oneshot;

use super::file::{AofFile, FILE};
use super::{Fsync, Pos};
use crate::replication::fullsync::{self, Record, Sink};
use crate::replication::log::{Frame, History, ReplId};
use crate::replication::wire;
use crate::state::ServerState;

/// Frames read from the log at once.
const FRAMES_PER_READ: usize = 1024;
/// A rewrite writes its items in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;
/// `everysec`'s period.
const EVERY: Duration = Duration::from_secs(1);
/// With `everysec` and `no`, frames are taken this often (what a kill -9 can lose
/// beyond what the kernel holds).
const BATCH: Duration = Duration::from_millis(5);
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
    };
    rt.block_on(w.run());
}

/// A finished rewrite: its file, and where in the log it ends.
struct Rewritten {
    file: AofFile,
    pos: Pos,
    began: Instant,
}

struct Writer {
    state: Arc<ServerState>,
    dir: PathBuf,
    /// The file appended to (none before the first rewrite of a node without one).
    file: Option<AofFile>,
    /// Where the file is in the log (none: the history broke, a rewrite must follow).
    pos: Option<Pos>,
    last_sync: Instant,
    /// Something was written since the last sync.
    unsynced: bool,
    rewrite: Option<oneshot::Receiver<Result<Rewritten, String>>>,
    /// No rewrite of a broken file before this (after a failure).
    retry_at: Option<Instant>,
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
            aof.always.store(fsync == Fsync::Always, Ordering::Release);
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
                state.repl.pin(u64::MAX);
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
        self.state.repl.pin(file.min(rewrite));
    }

    /// Writes the next frames to the file; whether there may be more right away.
    fn append(&mut self) -> bool {
        let (Some(file), Some(pos)) = (self.file.as_mut(), self.pos.as_mut()) else {
            return false;
        };
        let placed = self
            .state
            .repl
            .read_history(pos.cursor, FRAMES_PER_READ)
            .map_err(|e| format!("{e:?}"))
            .and_then(|(frames, h)| {
                let n = frames.len();
                place(pos, frames, h).map(|chunks| (n, chunks))
            });
        let (n, chunks) = match placed {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(
                    "the append-only file no longer follows the log ({why}): rewriting it"
                );
                self.pos = None;
                return false;
            }
        };
        queue(file, chunks);
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

    fn outcome(&self, r: std::io::Result<u64>, what: &str) {
        let mut s = self.state.persist.aof.stats.lock();
        match r {
            Ok(size) => {
                s.current_size = size;
                s.last_write_failed = false;
            }
            Err(e) => {
                s.last_write_failed = true;
                tracing::error!("cannot {what} the append-only file: {e}");
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
            state.repl.pin(0);
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
                let r = rewrite(&state, &dir, history, start).map(|(file, pos)| Rewritten {
                    file,
                    pos,
                    began,
                });
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
            let (frames, h) = self
                .state
                .repl
                .read_history(r.pos.cursor, FRAMES_PER_READ)
                .map_err(|e| format!("the history moved on during the rewrite ({e:?})"))?;
            let n = frames.len();
            queue(&mut r.file, place(&mut r.pos, frames, h)?);
            if n < FRAMES_PER_READ {
                break;
            }
        }
        let shown = r.file.path.display().to_string();
        let io = |e: std::io::Error| format!("{shown}: {e}");
        r.file.write().map_err(io)?;
        r.file.sync().map_err(io)?;
        let path = self.dir.join(FILE);
        std::fs::rename(&r.file.path, &path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        r.file.path = path;
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

fn rewrite_path(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE}.rewrite"))
}

/// What goes into the file for some frames of the log.
enum Piece {
    Frames(Vec<Frame>),
    /// The history goes on under `id` from offset `at` (a chunk naming it).
    History {
        id: ReplId,
        at: u64,
    },
}

/// The pieces for `frames`, read from the log with history `h`, moving `pos` past
/// them. An error if the frames do not continue `pos`'s history.
fn place(pos: &mut Pos, frames: Vec<Frame>, h: History) -> Result<Vec<Piece>, String> {
    if h.generation != pos.generation {
        return Err("the log started a new history".into());
    }
    let mut pieces = Vec::new();
    let mut run = Vec::with_capacity(frames.len());
    for f in frames {
        let id = match h.previous {
            _ if h.id == pos.id => h.id,
            Some((prev, until)) if prev == pos.id => match f.end <= until {
                true => prev,
                false => h.id,
            },
            _ => return Err("the log's history changed twice".into()),
        };
        if id != pos.id {
            if !run.is_empty() {
                pieces.push(Piece::Frames(std::mem::take(&mut run)));
            }
            pieces.push(Piece::History { id, at: pos.cursor });
            pos.id = id;
        }
        pos.cursor = f.end;
        run.push(f);
    }
    if !run.is_empty() {
        pieces.push(Piece::Frames(run));
    }
    Ok(pieces)
}

fn queue(file: &mut AofFile, pieces: Vec<Piece>) {
    for p in pieces {
        match p {
            Piece::Frames(frames) => file.queue_frames(&frames),
            Piece::History { id, at } => file.queue(&pb::ReplicationChunk {
                replid: id.to_string(),
                offset: at,
                ..Default::default()
            }),
        }
    }
}

fn records_chunk(items: Vec<pb::ReplItem>) -> pb::ReplicationChunk {
    pb::ReplicationChunk {
        items,
        ..Default::default()
    }
}

/// Writes a new file of the whole keyspace, from log offset `start` of `history` on
/// (see [`fullsync`]); returns it, unsynced, with where it ends in the log.
fn rewrite(
    state: &ServerState,
    dir: &Path,
    history: History,
    start: u64,
) -> Result<(AofFile, Pos), String> {
    let path = rewrite_path(dir);
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = AofFile::create(path.clone()).map_err(io)?;
    file.queue(&pb::ReplicationChunk {
        format: wire::FORMAT,
        replid: history.id.to_string(),
        offset: start,
        full_sync: true,
        keys_total: state.db.dbsize() as u64,
        ..Default::default()
    });
    let mut sink = FileSink {
        state,
        file,
        chunk: Vec::new(),
        bytes: 0,
        pos: Pos {
            cursor: start,
            id: history.id,
            generation: history.generation,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(fullsync::sync_all(state, &mut sink))?;
    sink.flush()?;
    let FileSink { mut file, pos, .. } = sink;
    file.queue(&pb::ReplicationChunk {
        sync_done: true,
        ..Default::default()
    });
    file.write().map_err(io)?;
    Ok((file, pos))
}

/// A rewrite's sink: items into chunks into the new file.
struct FileSink<'a> {
    state: &'a ServerState,
    file: AofFile,
    chunk: Vec<pb::ReplItem>,
    bytes: usize,
    pos: Pos,
}

impl FileSink<'_> {
    /// Queues the records gathered (before what comes after them).
    fn queue_records(&mut self) {
        if !self.chunk.is_empty() {
            self.file
                .queue(&records_chunk(std::mem::take(&mut self.chunk)));
        }
    }

    fn push(&mut self, item: Item, bytes: usize) -> Result<(), String> {
        self.chunk.push(pb::ReplItem { item: Some(item) });
        self.bytes += bytes;
        if self.bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.state.persist.aof.stop.load(Ordering::Acquire) {
            return Err("the append-only file was turned off".into());
        }
        self.queue_records();
        self.bytes = 0;
        self.file
            .write()
            .map_err(|e| format!("{}: {e}", self.file.path.display()))
    }
}

impl Sink for FileSink<'_> {
    fn cursor(&self) -> u64 {
        self.pos.cursor
    }

    async fn frames(&mut self, frames: Vec<Frame>) -> Result<(), String> {
        if frames.is_empty() {
            return Ok(());
        }
        let (history, _) = self.state.repl.history();
        let before = self.pos.cursor;
        let pieces = place(&mut self.pos, frames, history)?;
        self.queue_records();
        queue(&mut self.file, pieces);
        self.state
            .persist
            .aof
            .rewrite_cursor
            .store(self.pos.cursor, Ordering::Release);
        self.bytes += (self.pos.cursor - before) as usize;
        if self.bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    async fn record(&mut self, slot: u16, record: Record) -> Result<(), String> {
        let (part, clear) = match record {
            Record::Clear => (None, true),
            Record::Part(p) => (Some(p), false),
        };
        let bytes = part.as_ref().map_or(8, crate::migration::codec::part_bytes);
        let record = pb::SnapshotRecord {
            slot: u32::from(slot),
            part,
            clear,
        };
        self.push(Item::Record(record), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::observe::argv;
    use crate::db::Effect;

    fn frame(end: u64) -> Frame {
        Frame {
            end,
            slot: 0,
            effects: Arc::from([Effect::Command(argv([b"SET", b"k", b"v"]))]),
        }
    }

    /// Frames of the file's history go on; across a promotion the new id is named where
    /// the old history ended; anything else (a new generation, two switches) is refused.
    #[test]
    fn frames_are_placed_in_their_history() {
        let (old, new) = (ReplId::random(), ReplId::random());
        let mut pos = Pos {
            cursor: 10,
            id: old,
            generation: 3,
        };
        let same = History {
            id: old,
            previous: None,
            generation: 3,
        };
        let pieces = place(&mut pos, vec![frame(20), frame(30)], same).unwrap();
        assert!(matches!(&pieces[..], [Piece::Frames(f)] if f.len() == 2));
        assert_eq!(pos.cursor, 30);

        let promoted = History {
            id: new,
            previous: Some((old, 40)),
            generation: 3,
        };
        let pieces = place(&mut pos, vec![frame(40), frame(50)], promoted).unwrap();
        match &pieces[..] {
            [Piece::Frames(a), Piece::History { id, at: 40 }, Piece::Frames(b)] => {
                assert_eq!((a.len(), *id, b.len()), (1, new, 1))
            }
            _ => panic!("not split at the promotion"),
        }
        assert_eq!((pos.id, pos.cursor), (new, 50));

        let broken = History {
            generation: 4,
            ..promoted
        };
        assert!(place(&mut pos.clone(), vec![frame(60)], broken).is_err());
        let twice = History {
            id: ReplId::random(),
            previous: Some((ReplId::random(), 55)),
            generation: 3,
        };
        assert!(place(&mut pos, vec![frame(60)], twice).is_err());
    }
}
