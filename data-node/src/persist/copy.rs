//! A consistent copy of the whole keyspace as a data file ([`super::file`]), written
//! by the full-sync engine ([`crate::replication::fullsync`]) while writes go on (the
//! append-only file's rewrite, and the snapshot), and such a file read back into the
//! keyspace. Frames carry their replication history: a file names the id its frames
//! belong to, and a chunk naming another id says where the history went on under it.

use std::path::{Path, PathBuf};

use ember_proto::pb::{self, repl_item::Item};

use super::file::{self, ChunkFile, FileError, Loaded};
use crate::replication::fullsync::{self, Record, Sink};
use crate::replication::log::{Frame, History, ReplId};
use crate::replication::wire;
use crate::state::ServerState;

/// A copy writes its items in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// Where a file is in the log: the offset after its last frame, the history its frames
/// belong to, and the log's generation they were read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub cursor: u64,
    pub id: ReplId,
    pub generation: u64,
}

/// What goes into the file for some frames of the log.
pub(crate) enum Piece {
    Frames(Vec<Frame>),
    /// The history goes on under `id` from offset `at` (a chunk naming it).
    History {
        id: ReplId,
        at: u64,
    },
}

/// The pieces for `frames`, read from the log with history `h`, moving `pos` past
/// them. An error if the frames do not continue `pos`'s history.
pub(crate) fn place(pos: &mut Pos, frames: Vec<Frame>, h: History) -> Result<Vec<Piece>, String> {
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

/// Queues into `file` at most `max` frames of the log after `pos`, moving `pos` past
/// them: how many there were. An error if the log no longer continues `pos`.
pub(crate) fn take_frames(
    state: &ServerState,
    file: &mut ChunkFile,
    pos: &mut Pos,
    max: usize,
) -> Result<usize, String> {
    let (frames, h) = state
        .repl
        .read_history(pos.cursor, max)
        .map_err(|e| format!("{e:?}"))?;
    let n = frames.len();
    queue(file, place(pos, frames, h)?);
    Ok(n)
}

pub(crate) fn queue(file: &mut ChunkFile, pieces: Vec<Piece>) {
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

/// Writes a new file at `path` holding the whole keyspace, from log offset `start` of
/// `history` on (see [`fullsync`]): `progress` is told how far in the log the copy is
/// (the caller pins the log there), `stopped` may end it early. Returns the file,
/// unsynced, with where it ends in the log.
pub(crate) fn write(
    state: &ServerState,
    path: PathBuf,
    history: History,
    start: u64,
    progress: &(dyn Fn(u64) + Sync),
    stopped: &(dyn Fn() -> bool + Sync),
) -> Result<(ChunkFile, Pos), String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = ChunkFile::create(path.clone()).map_err(io)?;
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
        progress,
        stopped,
        file,
        chunk: Vec::new(),
        bytes: 0,
        pos: Pos {
            cursor: start,
            id: history.id,
            generation: history.generation,
        },
    };
    // The engine's awaits are yields only: it runs to the end on a thread of its own,
    // outside any tokio runtime (a yield inside one, here blocked, would never wake).
    std::thread::scope(|s| {
        s.spawn(|| futures::executor::block_on(fullsync::sync_all(state, &mut sink)))
            .join()
            .unwrap_or_else(|_| Err("the copy's thread panicked".into()))
    })?;
    sink.flush()?;
    let FileSink { mut file, pos, .. } = sink;
    file.queue(&pb::ReplicationChunk {
        sync_done: true,
        ..Default::default()
    });
    file.write().map_err(io)?;
    Ok((file, pos))
}

/// A copy's sink: items into chunks into the new file.
struct FileSink<'a> {
    state: &'a ServerState,
    progress: &'a (dyn Fn(u64) + Sync),
    stopped: &'a (dyn Fn() -> bool + Sync),
    file: ChunkFile,
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
        if (self.stopped)() {
            return Err("stopped".into());
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
        (self.progress)(self.pos.cursor);
        self.bytes += (self.pos.cursor - before) as usize;
        if self.bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    async fn record(&mut self, slot: u16, record: Record) -> Result<(), String> {
        let (record, bytes) = record.into_pb(slot);
        self.push(Item::Record(record), bytes)
    }
}

/// What reading a data file into the keyspace found.
pub(crate) struct Read {
    pub read: Loaded,
    /// Where the data is in its replication history.
    pub pos: Pos,
    /// The file holds a whole copy (its snapshot part ended).
    pub complete: bool,
}

/// Reads the data file at `path` into the keyspace (as a replica applies its primary's
/// stream); the log follows the file's history. A torn last record is dropped if
/// `truncated_ok`.
pub(crate) fn load(
    state: &ServerState,
    path: &Path,
    truncated_ok: bool,
) -> Result<Read, FileError> {
    let mut applier = crate::replication::replica::Applier::new(state, None);
    let mut pos: Option<Pos> = None;
    let mut complete = false;
    let read = file::read(path, truncated_ok, &mut |chunk| {
        let id = (!chunk.replid.is_empty())
            .then(|| ReplId::parse(&chunk.replid).ok_or("a bad replication id"))
            .transpose()?;
        match (&mut pos, id) {
            (None, Some(id)) if chunk.full_sync => {
                if chunk.format != wire::FORMAT {
                    return Err(format!(
                        "its records are of stream format {}; this node reads {}",
                        chunk.format,
                        wire::FORMAT
                    ));
                }
                state.repl.follow(id, chunk.offset, true);
                applier.set_syncing(true);
                pos = Some(Pos {
                    cursor: chunk.offset,
                    id,
                    generation: 0,
                });
            }
            (None, _) => return Err("the file does not start with its history".into()),
            (Some(p), Some(id)) => {
                if chunk.offset != state.repl.end() {
                    return Err(format!(
                        "history {id} starts at offset {} where the file is at {}",
                        chunk.offset,
                        state.repl.end()
                    ));
                }
                state.repl.follow(id, chunk.offset, false);
                p.id = id;
            }
            (Some(_), None) => {}
        }
        applier.apply_items(chunk.items)?;
        if chunk.sync_done {
            applier.set_syncing(false);
            complete = true;
        }
        Ok(())
    })?;
    if applier.errors() > 0 {
        tracing::warn!(
            errors = applier.errors(),
            path = %path.display(),
            "commands of the file failed while loading"
        );
    }
    let mut pos = pos.ok_or_else(|| FileError::Corrupt {
        path: path.to_path_buf(),
        offset: read.valid,
        what: "it holds no records".into(),
    })?;
    let (history, end) = state.repl.history();
    pos.cursor = end;
    pos.generation = history.generation;
    Ok(Read {
        read,
        pos,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
