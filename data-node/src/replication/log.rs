//! The replication log: the keyspace's effects ([`crate::db::observe`]) as frames at
//! offsets, the backlog of recent frames, and the identity of the dataset.
//!
//! A frame is one batch a consumer is given (one command, one `EXEC`, one expiry, one
//! slot cleared); its size is what its commands take as RESP arrays (as Redis counts its
//! replication offset in bytes of the stream), so `master_repl_offset` means what a Redis
//! user expects. A dataset version is `(replid, offset)`. After the node takes over a
//! shard ([`Log::promote`]) it keeps the previous id and the offset where that
//! history ended, so replicas that followed the same history resume from the backlog
//! (Redis's PSYNC2) instead of syncing in full.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;

use crate::db::{Consumer, Effect};

/// A replication id: 40 hex characters, new for each history.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplId([u8; 20]);

impl ReplId {
    pub fn random() -> ReplId {
        ReplId(rand::rng().random())
    }

    /// From its 40 hex characters.
    pub fn parse(s: &str) -> Option<ReplId> {
        let s = s.as_bytes();
        if s.len() != 40 {
            return None;
        }
        let mut id = [0u8; 20];
        for (i, pair) in s.chunks(2).enumerate() {
            id[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(ReplId(id))
    }
}

impl fmt::Display for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplId({self})")
    }
}

/// One batch of effects on one slot, ending at `end` (the offset after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub end: u64,
    pub slot: u16,
    pub effects: Arc<[Effect]>,
}

/// Bytes a `Clear` counts for in the offset (it is not a Redis command; a fixed size).
const CLEAR_BYTES: u64 = 32;

/// The size of `effects` in the stream: each command as a RESP array of bulk strings.
pub fn stream_bytes(effects: &[Effect]) -> u64 {
    fn line(prefix_and_number: usize) -> u64 {
        // `*N\r\n` or `$N\r\n`
        1 + itoa::Buffer::new().format(prefix_and_number).len() as u64 + 2
    }
    effects
        .iter()
        .map(|e| match e {
            Effect::Command(argv) => {
                line(argv.len())
                    + argv
                        .iter()
                        .map(|a| line(a.len()) + a.len() as u64 + 2)
                        .sum::<u64>()
            }
            Effect::Clear => CLEAR_BYTES,
            Effect::Staged(part) => CLEAR_BYTES + part.len() as u64,
        })
        .sum()
}

/// Why a replica at some position cannot resume from the backlog: it needs a full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullSync {
    /// Its id is none of this node's histories.
    OtherHistory,
    /// Its offset is past what this node's history shares with it (it saw writes this
    /// node never had: a diverged history).
    Diverged { shared_until: u64 },
    /// The frames after its offset are no longer in the backlog.
    Trimmed { oldest: u64 },
    /// Its offset is not at a frame boundary.
    NotAFrameBoundary,
}

struct Inner {
    id: ReplId,
    /// The previous history's id and the offset where it ended (PSYNC2).
    previous: Option<(ReplId, u64)>,
    /// The offset after the last frame.
    end: u64,
    frames: VecDeque<Frame>,
    /// Stream bytes of `frames`.
    kept: u64,
    /// Subscribed to the keyspace: this node is a primary whose writes are logged.
    attached: bool,
    /// Counts the breaks of the history: a new history that does not continue the
    /// dataset (a primary that starts recording afresh, a replica's full sync). A reader
    /// that follows the log across them (the append-only file) must start over.
    generation: u64,
    /// The keyspace is exactly `(id, end)` though nothing records it (it was just
    /// loaded from the append-only file): recording starts as a continuation.
    loaded: bool,
    /// Recording is for good ([`Log::attach`]: replicas, the append-only file), not
    /// only for the [`Hold`]s running.
    sticky: bool,
    /// [`Log::hold`]s running (a snapshot being saved).
    holds: u32,
}

/// A reader that must see every frame (see [`Log::pin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The append-only file and its rewrite.
    Aof = 0,
    /// A snapshot being saved.
    Save = 1,
}

/// Which history the frames of a [`Log::read_history`] belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub id: ReplId,
    pub previous: Option<(ReplId, u64)>,
    pub generation: u64,
}

impl Inner {
    /// The offset where the first frame kept starts.
    fn oldest(&self) -> u64 {
        self.end - self.kept
    }

    fn history(&self) -> History {
        History {
            id: self.id,
            previous: self.previous,
            generation: self.generation,
        }
    }
}

/// The log of one node.
pub struct Log {
    inner: Mutex<Inner>,
    /// Bytes of frames the backlog keeps: `repl-backlog-size`, shared with the runtime
    /// config, so `CONFIG SET` applies from the next write on.
    limit: Arc<AtomicU64>,
    /// `Inner::end`, readable without the lock (a client's write offset, for `WAIT`).
    end: AtomicU64,
    /// `Inner::kept`, readable without the lock (what `maxmemory` leaves out).
    kept: AtomicU64,
    /// Woken on new frames (stream tasks wait on it): at once, or, for frames appended
    /// on a connection thread, once at the end of the thread's turn ([`Log::wake`]).
    pub appended: tokio::sync::Notify,
    /// Frames were appended by a connection turn that has not called [`Log::wake`] yet.
    unwoken: std::sync::atomic::AtomicBool,
    /// The backlog never trims frames that end after these offsets: readers that must
    /// see every frame (the append-only file, a snapshot being written) have not read
    /// them yet. `u64::MAX`: none. One per [`Reader`].
    pins: [AtomicU64; 2],
    /// A replica's frames being applied to the keyspace and not yet appended here
    /// (see [`Log::applying`]).
    in_flight: std::sync::atomic::AtomicU32,
}

thread_local! {
    /// This thread runs client connections: it wakes the stream tasks once per turn of
    /// commands instead of once per write (a wake-up crosses to another thread).
    static DEFER_WAKE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Called on each connection thread at its start (see `DEFER_WAKE`).
pub fn defer_wakes_on_this_thread() {
    DEFER_WAKE.with(|d| d.set(true));
}

/// A replica was given a frame that does not continue its log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame ending at {end} does not follow offset {at} (expected {expected} bytes, got {got})")]
pub struct Gap {
    pub at: u64,
    pub end: u64,
    pub expected: u64,
    pub got: u64,
}

impl Log {
    /// An empty log of a new history, keeping up to `limit` bytes of frames.
    pub fn new(limit: Arc<AtomicU64>) -> Log {
        Log {
            inner: Mutex::new(Inner {
                id: ReplId::random(),
                previous: None,
                end: 0,
                frames: VecDeque::new(),
                kept: 0,
                attached: false,
                generation: 0,
                loaded: false,
                sticky: false,
                holds: 0,
            }),
            limit,
            end: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            appended: tokio::sync::Notify::new(),
            unwoken: std::sync::atomic::AtomicBool::new(false),
            pins: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            in_flight: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Keeps every frame after `offset` in the backlog for `reader`, whatever its size
    /// (`u64::MAX`: no pin).
    pub fn pin(&self, reader: Reader, offset: u64) {
        self.pins[reader as usize].store(offset, Ordering::Release);
    }

    /// A replica is about to apply one of its primary's frames to the keyspace, then
    /// [`Log::push`] it: until the guard drops, the keyspace may be ahead of the log,
    /// so a reader pairing a slot's content with the log's end must wait.
    pub fn applying(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Whether a replica's frame is between the keyspace and the log (see
    /// [`Log::applying`]).
    pub fn is_applying(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// The keyspace was just loaded and is exactly this log's position: the first
    /// [`Log::attach`] continues the history (under a new id, the loaded one as the
    /// previous) instead of starting a new one.
    pub fn mark_loaded(&self) {
        self.inner.lock().loaded = true;
    }

    /// Whether the keyspace is a loaded file's, at this log's position, and nothing has
    /// been recorded since.
    pub fn is_loaded(&self) -> bool {
        self.inner.lock().loaded
    }

    /// The position a replica reports to its primary: the previous history's when
    /// nothing was written under the current id (the same dataset, which the primary
    /// more likely knows by its older name).
    pub fn resume_position(&self) -> (ReplId, u64) {
        let i = self.inner.lock();
        match i.previous {
            Some((prev, until)) if until == i.end => (prev, until),
            _ => (i.id, i.end),
        }
    }

    /// Like [`Log::read`], with the history the frames belong to (read at once).
    pub fn read_history(&self, offset: u64, max: usize) -> Result<(Vec<Frame>, History), FullSync> {
        let i = self.inner.lock();
        let frames = frames_after(&i, offset)?.take(max).cloned().collect();
        Ok((frames, i.history()))
    }

    /// The current history, and the offset after its last frame.
    pub fn history(&self) -> (History, u64) {
        let i = self.inner.lock();
        (i.history(), i.end)
    }

    /// The bytes of frames the backlog keeps, and how many it holds now.
    pub fn backlog(&self) -> (u64, u64) {
        (
            self.limit.load(Ordering::Relaxed),
            self.kept.load(Ordering::Relaxed),
        )
    }

    /// `(replid, offset)`: the dataset version this node's keyspace is at.
    pub fn position(&self) -> (ReplId, u64) {
        let i = self.inner.lock();
        (i.id, i.end)
    }

    /// The previous history's id and where it ended, if this node took over one.
    pub fn previous(&self) -> Option<(ReplId, u64)> {
        self.inner.lock().previous
    }

    /// The offset after the last frame (without locking).
    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Whether this log records the node's own writes (it is a primary that replicas
    /// stream from, or a promoted replica).
    pub fn is_attached(&self) -> bool {
        self.inner.lock().attached
    }

    /// Makes this log record every write of `db` from now on. A log that was not
    /// recording starts a new history (writes it did not see make its old id mean
    /// nothing): replicas of the old id sync in full. Idempotent.
    pub fn attach(self: &Arc<Self>, db: &crate::db::Db) {
        self.start_recording(db, true, Self::reset_history);
    }

    /// Records every write while the returned hold lives (a snapshot being saved); then
    /// stops, unless something else needs the log ([`Log::attach`]). Recording that
    /// starts here starts a new history, as with `attach`.
    pub fn hold<'a>(self: &'a Arc<Self>, db: &'a crate::db::Db) -> Hold<'a> {
        self.start_recording(db, false, Self::reset_history);
        Hold { log: self, db }
    }

    /// How recording that starts anew names its history.
    fn reset_history(i: &mut Inner) {
        if i.loaded {
            return new_history(i);
        }
        i.id = ReplId::random();
        i.previous = None;
        i.frames.clear();
        i.kept = 0;
        i.generation += 1;
    }

    /// This replica becomes a primary: its history goes on under a new id, with the one
    /// it followed as the previous id (PSYNC2), and it records its own writes from now on.
    pub fn promote(self: &Arc<Self>, db: &crate::db::Db) {
        self.start_recording(db, true, new_history);
    }

    /// Unless already recording: `history` sets the id the recording goes on under,
    /// then the log subscribes to `db` (under the log's lock, so no write is recorded
    /// under the old id).
    fn start_recording(
        self: &Arc<Self>,
        db: &crate::db::Db,
        sticky: bool,
        history: impl FnOnce(&mut Inner),
    ) {
        let mut i = self.inner.lock();
        match sticky {
            true => i.sticky = true,
            false => i.holds += 1,
        }
        if i.attached {
            return;
        }
        i.attached = true;
        history(&mut i);
        i.loaded = false;
        self.kept.store(i.kept, Ordering::Relaxed);
        db.observers.subscribe(self.clone());
    }

    /// This node becomes a replica: it stops recording its own writes (its primary's
    /// frames are appended with [`Log::push`]); the dataset's position stays until the
    /// first sync says where the primary's stream goes on.
    pub fn detach(self: &Arc<Self>, db: &crate::db::Db) {
        let mut i = self.inner.lock();
        i.sticky = false;
        self.stop_recording(&mut i, db);
    }

    fn stop_recording(self: &Arc<Self>, i: &mut Inner, db: &crate::db::Db) {
        if !i.attached {
            return;
        }
        i.attached = false;
        let me: Arc<dyn Consumer> = self.clone();
        db.observers.unsubscribe(&me);
    }

    /// A replica starts following history `id` at `offset`: after a full sync from there,
    /// or a partial one under the primary's (possibly new) id. A new id keeps the old one
    /// as the previous history, ended here.
    pub fn follow(&self, id: ReplId, offset: u64, full: bool) {
        let mut i = self.inner.lock();
        i.loaded = false;
        if full {
            i.previous = None;
            i.frames.clear();
            i.kept = 0;
            i.generation += 1;
            self.kept.store(0, Ordering::Relaxed);
        } else if i.id != id {
            i.previous = Some((i.id, i.end));
        }
        i.id = id;
        i.end = offset;
        self.end.store(offset, Ordering::Release);
    }

    /// A replica appends its primary's frame (which must continue the log exactly).
    pub fn push(&self, frame: Frame) -> Result<(), Gap> {
        let size = stream_bytes(&frame.effects);
        let at = self.end();
        if frame.end != at + size {
            return Err(Gap {
                at,
                end: frame.end,
                expected: size,
                got: frame.end.wrapping_sub(at),
            });
        }
        self.append(frame.slot, frame.effects);
        Ok(())
    }

    /// At most `max` frames after `offset` (a frame boundary of the current history)
    /// that end at or before `upto`, for a stream that is at `offset`.
    pub fn read(&self, offset: u64, upto: u64, max: usize) -> Result<Vec<Frame>, FullSync> {
        let i = self.inner.lock();
        let frames = frames_after(&i, offset)?;
        Ok(frames
            .take_while(|f| f.end <= upto)
            .take(max)
            .cloned()
            .collect())
    }

    /// The offset of the oldest byte the backlog still has (`repl_backlog_first_byte_offset`
    /// is this + 1 in Redis's numbering).
    pub fn oldest(&self) -> u64 {
        self.inner.lock().oldest()
    }

    /// Whether a replica at `offset` of history `id` can resume from the backlog.
    pub fn check_resume(&self, id: ReplId, offset: u64) -> Result<(), FullSync> {
        let i = self.inner.lock();
        same_history(&i, id, offset)?;
        frames_after(&i, offset).map(|_| ())
    }

    fn append(&self, slot: u16, effects: Arc<[Effect]>) {
        let size = stream_bytes(&effects);
        {
            let mut i = self.inner.lock();
            i.end += size;
            i.kept += size;
            let end = i.end;
            self.end.store(end, Ordering::Release);
            i.frames.push_back(Frame { end, slot, effects });
            let limit = self.limit.load(Ordering::Relaxed);
            if i.kept > limit {
                // Read only when trimming: this runs for every write.
                let pin = self
                    .pins
                    .iter()
                    .map(|p| p.load(Ordering::Acquire))
                    .min()
                    .unwrap_or(u64::MAX);
                while i.kept > limit && i.frames.front().is_some_and(|f| f.end <= pin) {
                    let start = i.oldest();
                    let Some(old) = i.frames.pop_front() else {
                        break;
                    };
                    i.kept -= old.end - start;
                }
            }
            self.kept.store(i.kept, Ordering::Relaxed);
        }
        if DEFER_WAKE.with(|d| d.get()) {
            self.unwoken.store(true, Ordering::Release);
        } else {
            self.appended.notify_waiters();
        }
    }

    /// Wakes the stream tasks if this thread's turn appended frames.
    pub fn wake(&self) {
        if self.unwoken.swap(false, Ordering::AcqRel) {
            self.appended.notify_waiters();
        }
    }
}

/// Recording held for a while (see [`Log::hold`]).
pub struct Hold<'a> {
    log: &'a Arc<Log>,
    db: &'a crate::db::Db,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        // Ordering: under the log's lock, as `attach` takes it: a replica that attaches
        // meanwhile makes the recording sticky before this can stop it.
        let mut i = self.log.inner.lock();
        i.holds -= 1;
        if i.holds == 0 && !i.sticky {
            self.log.stop_recording(&mut i, self.db);
        }
    }
}

/// A replica's frame in flight (see [`Log::applying`]).
pub struct InFlight<'a>(&'a Log);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The old id becomes the previous one, ending at the current offset.
fn new_history(i: &mut Inner) {
    i.previous = Some((i.id, i.end));
    i.id = ReplId::random();
}

/// Whether `offset` of history `id` is a position of this node's history (the current
/// one, or the previous one up to where it ended).
fn same_history(i: &Inner, id: ReplId, offset: u64) -> Result<(), FullSync> {
    if id == i.id {
        return Ok(());
    }
    match i.previous {
        Some((prev, until)) if prev == id => {
            if offset > until {
                Err(FullSync::Diverged {
                    shared_until: until,
                })
            } else {
                Ok(())
            }
        }
        _ => Err(FullSync::OtherHistory),
    }
}

/// The frames after `offset` in `i`'s backlog, if `offset` is a frame boundary in it.
fn frames_after(i: &Inner, offset: u64) -> Result<impl Iterator<Item = &Frame>, FullSync> {
    if offset > i.end {
        return Err(FullSync::Diverged {
            shared_until: i.end,
        });
    }
    let oldest = i.oldest();
    if offset < oldest {
        return Err(FullSync::Trimmed { oldest });
    }
    // Frames are in offset order: the first one ending after `offset` must start there.
    let first = i.frames.partition_point(|f| f.end <= offset);
    let starts_at = match first {
        0 => oldest,
        n => i.frames[n - 1].end,
    };
    if starts_at != offset {
        return Err(FullSync::NotAFrameBoundary);
    }
    Ok(i.frames.range(first..))
}

impl Consumer for Log {
    fn observe(&self, slot: u16, effects: &Arc<[Effect]>) {
        self.append(slot, effects.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::observe::argv;

    fn log_keeping(bytes: u64) -> Log {
        Log::new(Arc::new(AtomicU64::new(bytes)))
    }

    /// What a replica at `offset` of history `id` is sent: the frames after it.
    fn resume(log: &Log, id: ReplId, offset: u64) -> Result<Vec<Frame>, FullSync> {
        log.check_resume(id, offset)?;
        log.read(offset, u64::MAX, usize::MAX)
    }

    fn set(k: &str, v: &str) -> Vec<Effect> {
        vec![Effect::Command(argv([b"SET", k.as_bytes(), v.as_bytes()]))]
    }

    #[test]
    fn offsets_count_resp_bytes() {
        // *3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n
        let want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n".len() as u64;
        assert_eq!(stream_bytes(&set("k", "vv")), want);
        let log = log_keeping(1 << 20);
        log.observe(1, &set("k", "vv").into());
        log.observe(2, &Arc::from([Effect::Clear]));
        assert_eq!(log.position().1, want + CLEAR_BYTES);
    }

    #[test]
    fn resumes_from_any_frame_boundary_in_the_backlog() {
        let log = log_keeping(1 << 20);
        let (id, _) = log.position();
        let mut ends = vec![0];
        for n in 0..10 {
            log.observe(n, &set(&format!("k{n}"), "v").into());
            ends.push(log.position().1);
        }
        for (i, &at) in ends.iter().enumerate() {
            let frames = resume(&log, id, at).unwrap();
            assert_eq!(frames.len(), 10 - i, "from {at}");
            assert!(frames.iter().zip(&ends[i + 1..]).all(|(f, e)| f.end == *e));
        }
        assert_eq!(
            resume(&log, id, ends[3] + 1),
            Err(FullSync::NotAFrameBoundary)
        );
        // A replica ahead of this node saw writes it never had.
        assert_eq!(
            resume(&log, id, ends[10] + 5),
            Err(FullSync::Diverged {
                shared_until: ends[10]
            })
        );
        assert_eq!(
            resume(&log, ReplId::random(), 0),
            Err(FullSync::OtherHistory)
        );
    }

    #[test]
    fn the_backlog_keeps_its_size_and_trims_the_oldest() {
        let one = stream_bytes(&set("k0", "v"));
        let log = log_keeping(one * 3);
        let (id, _) = log.position();
        for n in 0..10 {
            log.observe(0, &set(&format!("k{n}"), "v").into());
        }
        assert_eq!(log.oldest(), one * 7);
        assert_eq!(resume(&log, id, one * 7).unwrap().len(), 3);
        assert_eq!(
            resume(&log, id, one * 6),
            Err(FullSync::Trimmed { oldest: one * 7 })
        );
    }

    #[test]
    fn a_new_history_keeps_the_old_one_resumable_up_to_where_it_ended() {
        let log = Arc::new(log_keeping(1 << 20));
        let (old, _) = log.position();
        log.observe(0, &set("a", "1").into());
        let (_, switch) = log.position();
        log.promote(&crate::db::Db::new());
        let (new, at) = log.position();
        assert_ne!(new, old);
        assert_eq!(at, switch, "the offset goes on");
        log.observe(0, &set("b", "2").into());
        // A replica of the old history at the switch point, or before it, resumes.
        assert_eq!(resume(&log, old, switch).unwrap().len(), 1);
        assert_eq!(resume(&log, old, 0).unwrap().len(), 2);
        // One that saw more of the old history than this node did has diverged.
        assert_eq!(
            resume(&log, old, switch + 10),
            Err(FullSync::Diverged {
                shared_until: switch
            })
        );
        assert_eq!(log.previous(), Some((old, switch)));
        assert_eq!(format!("{new}").len(), 40);
    }

    /// A pinned log keeps every frame after the pin, whatever its size; unpinned, it
    /// trims to its size again.
    #[test]
    fn a_pin_keeps_what_a_reader_has_not_taken() {
        let one = stream_bytes(&set("k00", "v"));
        let log = log_keeping(one * 2);
        log.pin(Reader::Aof, 0);
        for n in 0..10 {
            log.observe(0, &set(&format!("k{n:02}"), "v").into());
        }
        assert_eq!(log.oldest(), 0, "nothing trimmed while pinned at 0");
        log.pin(Reader::Aof, one * 5);
        log.observe(0, &set("k10", "v").into());
        assert_eq!(log.oldest(), one * 5, "trimmed up to the pin");
        log.pin(Reader::Aof, u64::MAX);
        log.observe(0, &set("k11", "v").into());
        assert_eq!(log.oldest(), one * 10);
    }

    /// Data loaded at a position continues that history when recording starts (the
    /// loaded id becomes the previous one, and is what a replica reports while nothing
    /// was written since); a full sync breaks the history (a new generation).
    #[test]
    fn a_loaded_position_continues_and_a_full_sync_breaks_the_history() {
        let log = Arc::new(log_keeping(1 << 20));
        let loaded = ReplId::random();
        log.follow(loaded, 100, true);
        let (h, end) = log.history();
        assert_eq!((h.id, end), (loaded, 100));
        log.mark_loaded();
        log.attach(&crate::db::Db::new());
        let (after, _) = log.history();
        assert_ne!(after.id, loaded);
        assert_eq!(after.previous, Some((loaded, 100)));
        assert_eq!(after.generation, h.generation, "not a break");
        assert_eq!(log.resume_position(), (loaded, 100));
        log.observe(0, &set("a", "1").into());
        assert_eq!(log.resume_position().0, after.id);
        // Without a load, recording starts a new history: a break.
        log.detach(&crate::db::Db::new());
        log.follow(ReplId::random(), 500, true);
        assert_eq!(log.history().0.generation, h.generation + 1);
    }
}
