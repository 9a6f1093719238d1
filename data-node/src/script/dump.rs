//! The `FUNCTION DUMP` payload, in Redis's format so that a dump moves between Redis and
//! ember both ways: per library the function opcode (245) and its code as an RDB string,
//! then the RDB version (2 bytes, little-endian) and the CRC64 (Jones, as Redis's) of
//! everything before it (8 bytes, little-endian).
//!
//! ember writes plain strings and RDB version 10 (Redis 7.0), which every Redis 7 loads;
//! it reads plain, integer-encoded and LZF-compressed strings (what Redis writes).

use crc::{Crc, CRC_64_REDIS};

/// The RDB version ember writes (Redis 7.0's).
const RDB_VERSION: u16 = 10;
/// The newest RDB version read (Redis 7.4's): function payloads have not changed since 7.0.
const NEWEST_READ: u16 = 12;
const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const OPCODE_FUNCTION: u8 = 245;

const CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_REDIS);

/// Why a payload was refused, in Redis's words (without `ERR `).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("can not read data type")]
    Type,
    #[error("Pre-GA function format not supported")]
    PreGa,
    #[error("given type is not a function")]
    NotAFunction,
    #[error("failed loading the given functions payload")]
    Bad,
}

/// The payload of libraries with this code.
pub fn encode<'a>(codes: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION);
        put_len(&mut out, code.len() as u64);
        out.extend_from_slice(code.as_bytes());
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' code in a payload.
pub fn decode(payload: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let n = payload.len();
    if n < 10 {
        return Err(PayloadError::VersionOrChecksum);
    }
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    let crc = u64::from_le_bytes(payload[n - 8..].try_into().expect("8 bytes"));
    if version > NEWEST_READ || CRC64.checksum(&payload[..n - 8]) != crc {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut r = Reader {
        data: &payload[..n - 10],
        at: 0,
    };
    let mut codes = Vec::new();
    while r.at < r.data.len() {
        match r.byte().ok_or(PayloadError::Type)? {
            OPCODE_FUNCTION => codes.push(r.string().ok_or(PayloadError::Bad)?),
            OPCODE_FUNCTION_PRE_GA => return Err(PayloadError::PreGa),
            _ => return Err(PayloadError::NotAFunction),
        }
    }
    Ok(codes)
}

/// RDB's length encoding: 6 bits, 14 bits, 32 or 64 bits big-endian.
fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&[0x40 | (len >> 8) as u8, len as u8]);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

/// A length, or one of the special string encodings (the low 6 bits of a `11xxxxxx`).
enum Len {
    Plain(u64),
    Special(u8),
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.data.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn len(&mut self) -> Option<Len> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3f)),
            1 => Len::Plain(u64::from(first & 0x3f) << 8 | u64::from(self.byte()?)),
            2 if first == 0x80 => Len::Plain(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().ok()?,
            ))),
            2 if first == 0x81 => Len::Plain(u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            3 => Len::Special(first & 0x3f),
            _ => return None,
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        match self.len()? {
            Len::Plain(n) => usize::try_from(n).ok(),
            Len::Special(_) => None,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Len::Plain(n) => Some(self.take(usize::try_from(n).ok()?)?.to_vec()),
            // Integers, 1, 2 or 4 bytes little-endian, as decimal text.
            Len::Special(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Len::Special(1) => {
                let v = i16::from_le_bytes(self.take(2)?.try_into().ok()?);
                Some(v.to_string().into_bytes())
            }
            Len::Special(2) => {
                let v = i32::from_le_bytes(self.take(4)?.try_into().ok()?);
                Some(v.to_string().into_bytes())
            }
            Len::Special(3) => {
                let compressed = self.plain_len()?;
                let len = self.plain_len()?;
                lzf_decompress(self.take(compressed)?, len)
            }
            Len::Special(_) => None,
        }
    }
}

/// LZF: a control byte below 32 starts a run of that many + 1 literal bytes; above, its
/// top 3 bits (7: plus the next byte) + 2 bytes are copied from an offset back (its low 5
/// bits and the next byte, + 1).
fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            out.extend_from_slice(input.get(i..i + ctrl + 1)?);
            i += ctrl + 1;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let from = out.len().checked_sub(back)?;
            for k in 0..n + 2 {
                out.push(out[from + k]);
            }
        }
        if out.len() > len {
            return None;
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let long = format!("#!lua name=b\n{}", "x".repeat(20_000));
        let codes = [
            "#!lua name=a\nredis.register_function('f', function() end)",
            &long,
        ];
        let payload = encode(codes);
        let back = decode(&payload).unwrap();
        assert_eq!(back, codes.map(|c| c.as_bytes().to_vec()));
        assert_eq!(decode(&encode([])).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn bad_payloads_are_refused() {
        let mut payload = encode(["#!lua name=a\n"]);
        assert_eq!(decode(b"xxx"), Err(PayloadError::VersionOrChecksum));
        let n = payload.len();
        payload[n - 1] ^= 1;
        assert_eq!(decode(&payload), Err(PayloadError::VersionOrChecksum));
        // A string key's DUMP (type 0) with a valid trailer is no function.
        let mut other = vec![0u8, 1, b'x'];
        other.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = CRC64.checksum(&other);
        other.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&other), Err(PayloadError::NotAFunction));
    }

    /// A payload redis-server 7.0.15 wrote (`FUNCTION DUMP` of one library, its code
    /// LZF-compressed) loads.
    #[test]
    fn redis_payloads_load() {
        let code = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return redis.call('get', keys[1]) end)";
        let payload = redis_dump_of_lib1();
        assert_eq!(decode(&payload).unwrap(), vec![code.as_bytes().to_vec()]);
    }

    fn redis_dump_of_lib1() -> Vec<u8> {
        let hex = include_str!("dump_lib1.hex").trim();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}
