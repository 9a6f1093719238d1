//! The snapshot file (`dump.ember`): a consistent copy of the whole keyspace in the
//! data-file format that the append-only file and a replica's full sync use
//! ([`super::file`]), written by the full-sync engine ([`super::copy`]): slot after
//! slot under short locks, big values in pieces, while writes go on, and consistent at
//! one position of the replication log (which the file names, so a node restarted from
//! it can resume replication partially). Written to a temporary file, synced, renamed.
//!
//! Loading refuses any damage (a snapshot has no safe prefix): a record that is torn,
//! fails its checksum or does not decode, or a file that ends before its copy does,
//! stops the node with the path and the offset. Files of the first format (`EMBRSNAP`,
//! `length | slot | KeyPart` records, a CRC-64 at the end) are still read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crc::{Crc, CRC_64_REDIS};
use ember_proto::pb;
use prost::Message;

use crate::db::{now_ms, Db};
use crate::migration::codec;
use crate::replication::log::Reader;
use crate::state::ServerState;

const MAGIC: &[u8; 8] = b"EMBRSNAP";
/// The version this node writes and reads.
pub const VERSION: u32 = 1;
const END: u32 = u32::MAX;
/// Largest record accepted (a part is at most 256 KB of payload, or 4096 elements).
const MAX_RECORD: u32 = 512 * 1024 * 1024;
const CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_REDIS);

/// The snapshot's file name in the node's `--data-dir`.
pub const FILE: &str = "dump.ember";

/// What a save or a load did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub keys: u64,
    pub bytes: u64,
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the copy of the keyspace failed: {0}")]
    Copy(String),
    #[error("a full sync from the primary is filling this replica's keyspace: save after it")]
    Syncing,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ember snapshot")]
    NotASnapshot { path: PathBuf },
    #[error(
        "{path} is a snapshot of format version {found}; this node reads versions {VERSION} and {}",
        super::file::VERSION
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is truncated: it ends at byte {offset}, inside {what}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("{path} is corrupt at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
}

/// Writes the keyspace to `dir/FILE` (through a temporary file, synced, then renamed
/// over the old one: a crash leaves the old snapshot or the new one).
pub fn save(state: &ServerState, dir: &Path) -> Result<Done, SaveError> {
    let began = Instant::now();
    if state.cluster.is_partial() {
        return Err(SaveError::Syncing);
    }
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |source| SaveError::Io {
        path: path.clone(),
        source,
    };
    let keys = state.db.dbsize() as u64;
    // The engine pairs each slot with the log's end: the log must record every write
    // meanwhile (a replica's is filled by its primary's stream).
    let log = &state.repl;
    let _recording = (!crate::db::is_replica()).then(|| log.hold(&state.db));
    // Ordering: the log keeps every frame from the copy's start on before the start is
    // read.
    log.pin(Reader::Save, 0);
    let (history, start) = log.history();
    log.pin(Reader::Save, start);
    let progress = |at| log.pin(Reader::Save, at);
    let written = super::copy::write(state, tmp.clone(), history, start, &progress, &|| false);
    log.pin(Reader::Save, u64::MAX);
    let (mut file, _) = written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SaveError::Copy(e)
    })?;
    file.install(path.clone()).map_err(io)?;
    Ok(Done {
        keys,
        bytes: file.size,
        took: began.elapsed(),
    })
}

/// Whether `dir` holds a snapshot.
pub fn exists(dir: &Path) -> bool {
    dir.join(FILE).exists()
}

/// Loads `dir/FILE` into the keyspace (nothing damaged is accepted, see the module).
/// A file of the current format also gives the log its position.
pub fn load(state: &ServerState, dir: &Path) -> Result<Done, LoadError> {
    let began = Instant::now();
    let path = dir.join(FILE);
    let mut magic = [0u8; 8];
    let first = File::open(&path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        });
    if first.is_err() || &magic != MAGIC {
        let read = super::copy::load(state, &path, false).map_err(|e| from_file_error(e, &path))?;
        if !read.complete {
            return Err(LoadError::Truncated {
                path,
                offset: read.read.valid,
                what: "the copy (its last records are missing)",
            });
        }
        state.repl.mark_loaded();
        return Ok(Done {
            keys: state.db.dbsize() as u64,
            bytes: read.read.valid,
            took: began.elapsed(),
        });
    }
    load_v1(&state.db, &path, began)
}

fn from_file_error(e: super::file::FileError, path: &Path) -> LoadError {
    use super::file::FileError;
    match e {
        FileError::Io { path, source } => LoadError::Io { path, source },
        FileError::NotOurs { path } => LoadError::NotASnapshot { path },
        FileError::Version { path, found } => LoadError::Version { path, found },
        FileError::Truncated { offset, .. } => LoadError::Truncated {
            path: path.to_path_buf(),
            offset,
            what: "its last record",
        },
        FileError::Corrupt { path, offset, what } => LoadError::Corrupt { path, offset, what },
    }
}

/// Loads a file of the first format (checked whole first).
fn load_v1(db: &Db, path: &Path, began: Instant) -> Result<Done, LoadError> {
    let path = path.to_path_buf();
    let keys = read(&path, &mut |_, _| Ok(()))?;
    let now = now_ms();
    read(&path, &mut |slot, part| {
        db.with_slot(slot, |t| codec::apply(t, part, now))
            .map_err(|e| e.to_string())
    })?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Done {
        keys,
        bytes,
        took: began.elapsed(),
    })
}

/// Reads the snapshot at `path`, handing every record to `each`; returns the key count.
fn read(
    path: &Path,
    each: &mut dyn FnMut(u16, pb::KeyPart) -> Result<(), String>,
) -> Result<u64, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut r = V1Reader {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: CRC64.digest(),
        offset: 0,
        path,
    };
    let mut magic = [0u8; 8];
    r.exact(&mut magic, "the header")?;
    if &magic != MAGIC {
        return Err(LoadError::NotASnapshot {
            path: path.to_path_buf(),
        });
    }
    let version = r.u32("the header")?;
    if version != VERSION {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    r.u64("the header")?;
    let mut keys = 0u64;
    let mut record = Vec::new();
    loop {
        let at = r.offset;
        let len = r.u32("a record's length")?;
        if len == END {
            break;
        }
        if len > MAX_RECORD {
            return Err(r.corrupt(at, format!("a record of {len} bytes")));
        }
        let slot = r.u16("a record's slot")?;
        if usize::from(slot) >= crate::db::SLOTS {
            return Err(r.corrupt(at, format!("slot {slot}")));
        }
        record.resize(len as usize, 0);
        r.exact(&mut record, "a record")?;
        let part = pb::KeyPart::decode(&record[..])
            .map_err(|e| r.corrupt(at, format!("a record that does not decode: {e}")))?;
        keys += u64::from(part.first);
        each(slot, part).map_err(|e| r.corrupt(at, e))?;
    }
    let at = r.offset;
    let count = r.u64("the key count")?;
    if count != keys {
        return Err(r.corrupt(at, format!("{keys} keys where the end says {count}")));
    }
    let expected = r.crc.clone().finalize();
    let at = r.offset;
    let mut crc = [0u8; 8];
    r.inner
        .read_exact(&mut crc)
        .map_err(|_| r.truncated("the checksum"))?;
    if u64::from_le_bytes(crc) != expected {
        return Err(r.corrupt(at, "the checksum does not match".into()));
    }
    if r.inner.read(&mut [0u8; 1]).map_err(io)? != 0 {
        return Err(r.corrupt(at + 8, "bytes after the checksum".into()));
    }
    Ok(keys)
}

struct V1Reader<'p, 'c> {
    inner: BufReader<File>,
    crc: crc::Digest<'c, u64>,
    offset: u64,
    path: &'p Path,
}

impl V1Reader<'_, '_> {
    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), LoadError> {
        self.inner
            .read_exact(buf)
            .map_err(|_| self.truncated(what))?;
        self.crc.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, LoadError> {
        let mut b = [0u8; 2];
        self.exact(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, LoadError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, LoadError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn truncated(&self, what: &'static str) -> LoadError {
        LoadError::Truncated {
            path: self.path.to_path_buf(),
            offset: self.offset,
            what,
        }
    }

    fn corrupt(&self, offset: u64, what: String) -> LoadError {
        LoadError::Corrupt {
            path: self.path.to_path_buf(),
            offset,
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufWriter, Write};

    use super::*;
    use crate::cluster::Cluster;

    /// The first format's writer (kept for the tests that read such files).
    fn save_v1(db: &Db, dir: &Path) -> Result<Done, SaveError> {
        let began = Instant::now();
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let io = |source| SaveError::Io {
            path: path.clone(),
            source,
        };
        let file = File::create(&tmp).map_err(io)?;
        let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
        out.write(MAGIC).map_err(io)?;
        out.write(&VERSION.to_le_bytes()).map_err(io)?;
        out.write(&now_ms().to_le_bytes()).map_err(io)?;
        let mut keys = 0u64;
        let mut record = Vec::new();
        for slot in db.nonempty_slots() {
            let now = now_ms();
            let parts = db.with_slot(slot, |t| {
                let mut parts = Vec::with_capacity(t.len());
                for (key, value) in t.iter() {
                    let at = t.expire_at(key);
                    if at.is_some_and(|at| at <= now) {
                        continue;
                    }
                    for i in 0..codec::piece_count(value) {
                        parts.push(codec::encode_piece(key, value, at, i));
                    }
                }
                parts
            });
            for part in parts {
                keys += u64::from(part.first);
                record.clear();
                part.encode(&mut record).expect("a Vec grows");
                out.write(&(record.len() as u32).to_le_bytes())
                    .map_err(io)?;
                out.write(&slot.to_le_bytes()).map_err(io)?;
                out.write(&record).map_err(io)?;
            }
        }
        out.write(&END.to_le_bytes()).map_err(io)?;
        out.write(&keys.to_le_bytes()).map_err(io)?;
        let crc = out.crc.finalize();
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes()).map_err(io)?;
        let bytes = out.written + 8;
        let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Done {
            keys,
            bytes,
            took: began.elapsed(),
        })
    }

    /// A writer that checksums and counts what goes through it.
    struct Checksummed<'c, W> {
        inner: W,
        crc: crc::Digest<'c, u64>,
        written: u64,
    }

    impl<W: Write> Checksummed<'_, W> {
        fn new(inner: W) -> Self {
            Checksummed {
                inner,
                crc: CRC64.digest(),
                written: 0,
            }
        }

        fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
            self.crc.update(b);
            self.written += b.len() as u64;
            self.inner.write_all(b)
        }
    }

    fn node() -> std::sync::Arc<ServerState> {
        std::sync::Arc::new(ServerState::new(
            std::sync::Arc::new(Cluster::standalone()),
            crate::Config::default(),
        ))
    }

    fn fill(state: &ServerState) {
        state.db.with_slot(7, |t| {
            t.set(b"a", crate::db::Value::Str(b"1".to_vec().into()));
            t.set_expire_at(b"a", now_ms() + 3_600_000);
        });
        state.db.with_slot(9000, |t| {
            t.set(b"b", crate::db::Value::Str(b"2".to_vec().into()));
        });
    }

    /// A snapshot saved and loaded back holds the same keys and deadlines; so does a file
    /// of the first format; a file cut short of its end is refused.
    #[test]
    fn both_formats_load_and_a_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = node();
        fill(&a);
        let deadline = a.db.with_slot(7, |t| t.expire_at(b"a"));
        for v1 in [false, true] {
            match v1 {
                true => save_v1(&a.db, dir.path()).map(drop).unwrap(),
                false => save(&a, dir.path()).map(drop).unwrap(),
            }
            let b = node();
            load(&b, dir.path()).unwrap();
            assert_eq!(b.db.dbsize(), 2, "v1: {v1}");
            assert_eq!(b.db.with_slot(7, |t| t.expire_at(b"a")), deadline);
        }
        save(&a, dir.path()).unwrap();
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        assert!(matches!(
            load(&node(), dir.path()),
            Err(LoadError::Truncated { .. })
        ));
    }
}
