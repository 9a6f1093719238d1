//! Topology snapshots on the session stream: how the control plane encodes each version
//! once for every session, and how a node turns the messages back into topologies.
//!
//! Every message decodes to a complete, versioned `Topology` (never a patch to merge).
//! On the wire a snapshot is one of:
//!
//! - `topology`: the encoded `Topology` (small snapshots);
//! - `topology_zstd`: the same as one zstd frame (above [`COMPRESS_ABOVE`] bytes);
//! - `topology_delta`: a zstd frame compressed with the previous version's encoding as
//!   its prefix, sent only to a session whose last snapshot *on this stream* was that
//!   previous version. Like HPACK's per-connection table, the compression context lives
//!   and dies with the stream: a new stream always starts with a self-contained form.
//!   A change to one field of a 1,000-node topology (96 KB; 42 KB as zstd) travels in
//!   tens of bytes, which is what lets one control plane fan a change out to a thousand
//!   sessions in milliseconds.

use bytes::Bytes;
use ember_core::Topology;
use prost::Message;
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx};

use crate::convert::{topology_from_pb, topology_to_pb, ConvertError};
use crate::pb::{self, control_message::Msg};

/// Snapshots larger than this are sent zstd-compressed when self-contained.
pub const COMPRESS_ABOVE: usize = 4096;
/// zstd's default level: a 1,000-node snapshot takes well under a millisecond, once
/// per version, and shrinks to less than half.
const ZSTD_LEVEL: i32 = 3;
/// Largest decompressed snapshot accepted (far above any real cluster's).
pub const MAX_SNAPSHOT: usize = 256 << 20;

/// One committed version, encoded once for every session.
#[derive(Debug, Clone)]
pub struct Encoded {
    version: u64,
    /// The encoded `Topology`: the prefix the next version's delta is compressed against.
    raw: Bytes,
    /// The self-contained message (`topology` or `topology_zstd`).
    full: Msg,
    /// `topology_delta` against the previous version, when there is one.
    delta: Option<Msg>,
}

impl Encoded {
    /// Encodes `t`; `previous` is the encoding of the version published before it.
    pub fn new(t: &Topology, previous: Option<&Encoded>) -> Encoded {
        let raw = Bytes::from(topology_to_pb(t).encode_to_vec());
        let full = if raw.len() > COMPRESS_ABOVE {
            // (Compressing a buffer in memory does not fail; if it did, send it as is.)
            compress(&raw, None).map_or_else(|| Msg::Topology(raw.clone()), Msg::TopologyZstd)
        } else {
            Msg::Topology(raw.clone())
        };
        let delta = previous.and_then(|p| {
            let zstd = compress(&raw, Some(&p.raw))?;
            Some(Msg::TopologyDelta(pb::TopologyDelta {
                base_version: p.version,
                zstd,
            }))
        });
        Encoded {
            version: t.version,
            raw,
            full,
            delta,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The message for a session whose last snapshot on its current stream was
    /// `last_sent` (`None`: nothing yet on this stream).
    pub fn message_after(&self, last_sent: Option<u64>) -> Msg {
        match (&self.delta, last_sent) {
            (Some(d @ Msg::TopologyDelta(delta)), Some(v)) if v == delta.base_version => d.clone(),
            _ => self.full.clone(),
        }
    }

    /// The self-contained form (what a new stream gets).
    pub fn full(&self) -> &Msg {
        &self.full
    }
}

/// One zstd frame of `raw`, compressed against `prefix` if given.
fn compress(raw: &[u8], prefix: Option<&[u8]>) -> Option<Bytes> {
    let mut cctx = CCtx::try_create()?;
    cctx.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL))
        .ok()?;
    if let Some(p) = prefix {
        // The checksum makes decoding against any other base fail instead of yielding
        // other bytes.
        cctx.set_parameter(CParameter::ChecksumFlag(true)).ok()?;
        cctx.ref_prefix(p).ok()?;
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut out, raw).ok()?;
    Some(out.into())
}

/// Decompresses one zstd frame (against `prefix` if given). The frame must state its
/// size: anything above [`MAX_SNAPSHOT`] is refused before allocating.
fn decompress(frame: &[u8], prefix: Option<&[u8]>) -> Result<Vec<u8>, ConvertError> {
    let bad = |what: String| ConvertError::Decode(format!("compressed snapshot: {what}"));
    let size = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= MAX_SNAPSHOT as u64 => n as usize,
        Ok(Some(n)) => return Err(bad(format!("{n} bytes is too large"))),
        Ok(None) | Err(_) => return Err(bad("no valid zstd frame header".into())),
    };
    let mut dctx = DCtx::try_create().ok_or_else(|| bad("out of memory".into()))?;
    if let Some(p) = prefix {
        dctx.ref_prefix(p)
            .map_err(|c| bad(zstd_safe::get_error_name(c).into()))?;
    }
    let mut out = Vec::with_capacity(size);
    dctx.decompress(&mut out, frame)
        .map_err(|c| bad(zstd_safe::get_error_name(c).into()))?;
    if out.len() != size {
        return Err(bad(format!(
            "{} bytes where the frame said {size}",
            out.len()
        )));
    }
    Ok(out)
}

/// Why a snapshot message could not be turned into a topology.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The message itself is bad; the stream's state is unchanged.
    #[error(transparent)]
    Malformed(#[from] ConvertError),
    /// A delta against a version this stream does not hold (or one that does not
    /// decode against it): the stream must be reopened to resync.
    #[error("snapshot delta against version {base}, but this stream's last snapshot is {have:?}: {detail}")]
    BadBase {
        base: u64,
        have: Option<u64>,
        detail: String,
    },
}

/// The receiving end of one session stream (a node makes a new one per stream).
#[derive(Debug, Default)]
pub struct Receiver {
    /// The last snapshot received on this stream: its version and encoding.
    base: Option<(u64, Vec<u8>)>,
}

impl Receiver {
    /// The topology a snapshot message carries (`None` for a message that is not a
    /// snapshot). Every snapshot received becomes the base of the next delta, whether
    /// or not the caller applies it.
    pub fn receive(&mut self, msg: &Msg) -> Option<Result<Topology, ReceiveError>> {
        let raw = match msg {
            Msg::Topology(b) => Ok(b.to_vec()),
            Msg::TopologyZstd(b) => decompress(b, None).map_err(ReceiveError::from),
            Msg::TopologyDelta(d) => self.undelta(d),
            Msg::Welcome(_)
            | Msg::PromiseRequest(_)
            | Msg::LeaseGrant(_)
            | Msg::ReportNow(_)
            | Msg::StopGranting(_)
            | Msg::PauseWrites(_)
            | Msg::ResumeWrites(_) => return None,
        };
        Some(raw.and_then(|raw| {
            let t = pb::Topology::decode(raw.as_slice())
                .map_err(|e| ConvertError::Decode(e.to_string()))
                .and_then(|t| topology_from_pb(&t))?;
            self.base = Some((t.version, raw));
            Ok(t)
        }))
    }

    fn undelta(&self, d: &pb::TopologyDelta) -> Result<Vec<u8>, ReceiveError> {
        let have = self.base.as_ref().map(|(v, _)| *v);
        let bad = |detail: String| ReceiveError::BadBase {
            base: d.base_version,
            have,
            detail,
        };
        match &self.base {
            Some((v, raw)) if *v == d.base_version => {
                decompress(&d.zstd, Some(raw)).map_err(|e| bad(e.to_string()))
            }
            _ => Err(bad("no such base".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{NodeInfo, Role};
    use uuid::Uuid;

    fn big_topology(nodes: u16) -> Topology {
        let mut t = Topology::new(Uuid::new_v4());
        t.version = 7;
        for i in 0..nodes {
            let id = Uuid::new_v4();
            t.nodes.insert(
                id,
                NodeInfo {
                    id,
                    name: Some(format!("node-{i}")),
                    client_addr: format!("10.0.0.{}:7000", i % 250),
                    internal_addr: format!("10.0.0.{}:17000", i % 250),
                    role: Role::Primary,
                    failed: false,
                    config_epoch: i.into(),
                },
            );
            let per = 16384 / nodes;
            (i * per..(i + 1) * per).for_each(|s| t.slots.set(s, Some(id)));
        }
        t
    }

    #[test]
    fn big_snapshots_travel_compressed_and_small_ones_as_is() {
        let t = big_topology(200);
        let e = Encoded::new(&t, None);
        assert!(matches!(e.full(), Msg::TopologyZstd(_)));
        assert!(matches!(e.message_after(Some(6)), Msg::TopologyZstd(_)));
        let mut rx = Receiver::default();
        assert_eq!(rx.receive(e.full()).unwrap().unwrap(), t);

        let small = Topology::new(Uuid::new_v4());
        let e = Encoded::new(&small, None);
        assert!(matches!(e.full(), Msg::Topology(_)));
        assert_eq!(rx.receive(e.full()).unwrap().unwrap(), small);
    }

    #[test]
    fn malformed_frames_are_refused() {
        let e = Encoded::new(&big_topology(200), None);
        let Msg::TopologyZstd(bytes) = e.full() else {
            panic!("compressed")
        };
        let mut rx = Receiver::default();
        let cut = Msg::TopologyZstd(bytes.slice(..bytes.len() / 2));
        assert!(rx.receive(&cut).unwrap().is_err());
        let junk = Msg::TopologyZstd(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]));
        assert!(rx.receive(&junk).unwrap().is_err());
        // A frame that claims to hold more than MAX_SNAPSHOT is refused from its header:
        // magic, a descriptor for a single segment with an 8-byte content size, the size.
        let mut huge = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
        huge.extend_from_slice(&(MAX_SNAPSHOT as u64 + 1).to_le_bytes());
        let err = rx
            .receive(&Msg::TopologyZstd(huge.into()))
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn a_delta_carries_a_small_change_in_few_bytes() {
        let mut t = big_topology(1000);
        let first = Encoded::new(&t, None);
        t.version += 1;
        t.require_full_coverage = !t.require_full_coverage;
        let second = Encoded::new(&t, Some(&first));
        let Msg::TopologyDelta(d) = second.message_after(Some(first.version())) else {
            panic!("a session that has the previous version gets the delta");
        };
        assert_eq!(d.base_version, first.version());
        assert!(d.zstd.len() < 200, "delta of {} bytes", d.zstd.len());
        let mut rx = Receiver::default();
        rx.receive(first.full()).unwrap().unwrap();
        let got = rx.receive(&Msg::TopologyDelta(d)).unwrap().unwrap();
        assert_eq!(got, t);
        // A session on another version (or a new stream) gets the full form.
        assert!(matches!(second.message_after(None), Msg::TopologyZstd(_)));
        assert!(matches!(
            second.message_after(Some(first.version() - 1)),
            Msg::TopologyZstd(_)
        ));
    }

    #[test]
    fn a_delta_against_another_base_asks_for_a_resync() {
        let t = big_topology(50);
        let first = Encoded::new(&t, None);
        let mut next = t.clone();
        next.version += 1;
        let second = Encoded::new(&next, Some(&first));
        let delta = second.message_after(Some(first.version()));
        // Nothing received on this stream yet.
        let mut rx = Receiver::default();
        assert!(matches!(
            rx.receive(&delta).unwrap(),
            Err(ReceiveError::BadBase { have: None, .. })
        ));
        // A base with the right version number but other bytes fails to decode.
        let mut other = big_topology(50);
        other.version = t.version;
        rx.receive(Encoded::new(&other, None).full())
            .unwrap()
            .unwrap();
        assert!(matches!(
            rx.receive(&delta).unwrap(),
            Err(ReceiveError::BadBase { have: Some(7), .. })
        ));
    }
}
