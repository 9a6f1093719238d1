//! The format of ember's data files (the append-only file and the snapshot): the
//! replication stream, written down.
//!
//! ```text
//! "EMBERAOF" | version: u32 (little-endian)
//! record*    : length: u32 | CRC-32C of the payload: u32 | payload
//! ```
//!
//! Each payload is a `ReplicationChunk` (protobuf), exactly what a replica receives: the
//! first says where the file's history starts (`full_sync`, `replid`, `offset`), then
//! come the snapshot records and frames of the rewrite that made the file (ended by a
//! chunk with `sync_done`), then the frames appended since, in log order. A chunk that
//! names another `replid` (and no `full_sync`) says that the history goes on under that
//! id from its `offset` (a promotion). Reading the file back is applying a replication
//! stream ([`crate::replication::replica::Applier`]), so the two cannot drift apart.
//!
//! Each record is checked on its own, so a file cut short by a crash is recognised as
//! such at its last whole record (a torn last record, short or failing its checksum, is
//! a truncation); a record that fails its checksum with more after it is corruption.

use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crc::{Crc, CRC_32_ISCSI};
use ember_proto::pb;
use prost::Message;

use crate::replication::log::Frame;
use crate::replication::wire;

/// What a data file starts with.
pub const MAGIC: &[u8; 8] = b"EMBERAOF";
/// The version this node writes and reads.
pub const VERSION: u32 = 1;
const HEADER: u64 = 12;
/// Largest record accepted: a chunk of 64 KB of items plus one big value's piece.
const MAX_RECORD: u32 = 512 * 1024 * 1024;
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// An open data file.
pub struct ChunkFile {
    file: File,
    pub path: PathBuf,
    /// Bytes in the file.
    pub size: u64,
    buf: Vec<u8>,
}

impl ChunkFile {
    /// A new file at `path` (replacing any), with its header.
    pub fn create(path: PathBuf) -> std::io::Result<ChunkFile> {
        let mut file = File::create(&path)?;
        file.write_all(MAGIC)?;
        file.write_all(&VERSION.to_le_bytes())?;
        Ok(ChunkFile {
            file,
            path,
            size: HEADER,
            buf: Vec::new(),
        })
    }

    /// The file at `path`, `size` bytes of it valid (as [`load`] found), to append to.
    pub fn open(path: PathBuf, size: u64) -> std::io::Result<ChunkFile> {
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(ChunkFile {
            file,
            path,
            size,
            buf: Vec::new(),
        })
    }

    /// Queues a chunk; [`ChunkFile::write`] writes what is queued.
    pub fn queue(&mut self, chunk: &pb::ReplicationChunk) {
        self.record(|buf| chunk.encode(buf).expect("a Vec grows"));
    }

    /// Queues the chunk of these frames (encoded straight from them).
    pub fn queue_frames(&mut self, frames: &[Frame]) {
        self.record(|buf| wire::encode_frames_chunk(frames, buf));
    }

    /// Queues the record whose payload `encode` appends.
    fn record(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        encode(&mut self.buf);
        let len = (self.buf.len() - at - 8) as u32;
        let crc = CRC32.checksum(&self.buf[at + 8..]);
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Bytes queued and not written.
    pub fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Writes what is queued (to the kernel: [`ChunkFile::sync`] makes it durable); after
    /// a failure the file is cut back and everything stays queued.
    pub fn write(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // Nothing torn stays behind: the next try writes after the last whole record.
            let _ = self.file.set_len(self.size);
            let _ = self.file.seek(std::io::SeekFrom::Start(self.size));
            return Err(e);
        }
        self.size += self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf.shrink_to(1 << 20);
        }
        Ok(())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Writes what is queued, syncs, and renames the file to `path` (replacing what is
    /// there), the directory synced too: a crash leaves the old file or this one.
    pub fn install(&mut self, path: PathBuf) -> std::io::Result<()> {
        self.write()?;
        self.sync()?;
        std::fs::rename(&self.path, &path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.path = path;
        Ok(())
    }
}

/// Why a file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ember data file (no EMBERAOF at its start)")]
    NotOurs { path: PathBuf },
    #[error("{path} is a data file of format version {found}; this node reads version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path} is truncated: its last record, at byte {offset}, is incomplete ({lost} bytes)"
    )]
    Truncated {
        path: PathBuf,
        offset: u64,
        lost: u64,
    },
    #[error("{path} is corrupt at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
}

/// What reading a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Chunks handed over.
    pub chunks: u64,
    /// Bytes of whole records (where appending goes on).
    pub valid: u64,
    /// A torn last record was dropped: the bytes the file had after `valid`.
    pub dropped: u64,
}

/// Reads the file at `path`, handing every chunk to `each` in order. A torn last record
/// is dropped if `truncated_ok` (reported in [`Loaded::dropped`]), an error otherwise;
/// anything else wrong is an error with the offset of the record.
pub fn read(
    path: &Path,
    truncated_ok: bool,
    each: &mut dyn FnMut(pb::ReplicationChunk) -> Result<(), String>,
) -> Result<Loaded, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let corrupt = |offset, what: String| FileError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what,
    };
    let mut header = [0u8; HEADER as usize];
    if r.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
        return Err(FileError::NotOurs {
            path: path.to_path_buf(),
        });
    }
    let found = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if found != VERSION {
        return Err(FileError::Version {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut at = HEADER;
    let mut chunks = 0;
    let mut payload = Vec::new();
    let torn = |at: u64, chunks: u64| -> Result<Loaded, FileError> {
        match truncated_ok {
            true => Ok(Loaded {
                chunks,
                valid: at,
                dropped: total - at,
            }),
            false => Err(FileError::Truncated {
                path: path.to_path_buf(),
                offset: at,
                lost: total - at,
            }),
        }
    };
    while at < total {
        let mut head = [0u8; 8];
        if at + 8 > total {
            return torn(at, chunks);
        }
        r.read_exact(&mut head).map_err(io)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let end = at + 8 + u64::from(len);
        if len == 0 || len > MAX_RECORD {
            // A zero-filled or garbled tail (a crash before the data reached the disk)
            // is torn when it runs to the end; anything else is corruption.
            return match end >= total || len == 0 && zeros_to_end(&mut r) {
                true => torn(at, chunks),
                false => Err(corrupt(at, format!("a record of {len} bytes"))),
            };
        }
        if end > total {
            return torn(at, chunks);
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).map_err(io)?;
        if CRC32.checksum(&payload) != crc {
            return match end == total {
                true => torn(at, chunks),
                false => Err(corrupt(at, "a record fails its checksum".into())),
            };
        }
        let chunk = pb::ReplicationChunk::decode(&payload[..])
            .map_err(|e| corrupt(at, format!("a record that does not decode: {e}")))?;
        each(chunk).map_err(|e| corrupt(at, e))?;
        chunks += 1;
        at = end;
    }
    Ok(Loaded {
        chunks,
        valid: at,
        dropped: 0,
    })
}

/// Whether the rest of `r` is zeros.
fn zeros_to_end(r: &mut impl Read) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) if buf[..n].iter().all(|&b| b == 0) => {}
            _ => return false,
        }
    }
}

/// Cuts the file at `path` to `len` bytes, durably.
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64) -> pb::ReplicationChunk {
        pb::ReplicationChunk {
            offset,
            replid: "x".repeat(40),
            ..Default::default()
        }
    }

    fn write(dir: &Path, n: u64) -> PathBuf {
        let mut f = ChunkFile::create(dir.join("f")).unwrap();
        for i in 0..n {
            f.queue(&chunk(i));
        }
        f.write().unwrap();
        f.sync().unwrap();
        f.path
    }

    fn offsets(path: &Path, ok: bool) -> Result<(Vec<u64>, Loaded), FileError> {
        let mut seen = Vec::new();
        let r = read(path, ok, &mut |c| {
            seen.push(c.offset);
            Ok(())
        })?;
        Ok((seen, r))
    }

    #[test]
    fn reads_back_what_was_written_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 3);
        let (seen, r) = offsets(&path, false).unwrap();
        assert_eq!(seen, [0, 1, 2]);
        let mut f = ChunkFile::open(path.clone(), r.valid).unwrap();
        f.queue(&chunk(3));
        f.write().unwrap();
        assert_eq!(f.size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(offsets(&path, false).unwrap().0, [0, 1, 2, 3]);
    }

    /// Every cut inside the last record is a truncation: refused, or dropped when
    /// allowed; the records before it are read either way.
    #[test]
    fn a_torn_last_record_is_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 3);
        let whole = std::fs::read(&path).unwrap();
        let other = tempfile::tempdir().unwrap();
        let last = std::fs::metadata(write(other.path(), 2)).unwrap().len();
        for cut in last + 1..whole.len() as u64 {
            std::fs::write(&path, &whole[..cut as usize]).unwrap();
            match offsets(&path, false) {
                Err(FileError::Truncated { offset, lost, .. }) => {
                    assert_eq!((offset, lost), (last, cut - last))
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
            let (seen, r) = offsets(&path, true).unwrap();
            assert_eq!(seen, [0, 1], "cut at {cut}");
            assert_eq!((r.valid, r.dropped), (last, cut - last));
        }
        // A zero-filled tail (the file grew, its data never reached the disk).
        let mut padded = whole.clone();
        padded.extend_from_slice(&[0; 100]);
        std::fs::write(&path, &padded).unwrap();
        assert_eq!(offsets(&path, true).unwrap().0, [0, 1, 2]);
        assert!(matches!(
            offsets(&path, false),
            Err(FileError::Truncated { .. })
        ));
    }

    #[test]
    fn corruption_before_the_end_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 3);
        let mut bytes = std::fs::read(&path).unwrap();
        let other = tempfile::tempdir().unwrap();
        let second = std::fs::metadata(write(other.path(), 1)).unwrap().len() as usize;
        bytes[second + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        for ok in [false, true] {
            match offsets(&path, ok) {
                Err(FileError::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
                other => panic!("{other:?}"),
            }
        }
        std::fs::write(&path, b"EMBRSNAP\x01\0\0\0").unwrap();
        assert!(matches!(
            offsets(&path, true),
            Err(FileError::NotOurs { .. })
        ));
    }
}
