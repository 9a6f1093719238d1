//! Request parsing: RESP multibulk arrays of bulk strings, and inline commands.
//!
//! The parser works on the connection's read buffer in place and is resumable: when a
//! command is incomplete it remembers how far it got, so a large command arriving in
//! many reads is not rescanned from its start each time. A complete command is split
//! off the buffer and its arguments are `Bytes` slices of it (no copy); commands that
//! store data copy what they keep into owned allocations, so the keyspace never pins a
//! read buffer.
//!
//! Behaviour copies Redis's `processMultibulkBuffer` / `processInlineBuffer`, including
//! its error texts: `*0` / `*-1` and empty inline lines are skipped, the two bytes after
//! a bulk are skipped without being checked, and any protocol error is final (the
//! connection replies the error and closes). See [`crate::config`] for the limits.

use bytes::{Buf, Bytes, BytesMut};

use crate::config::{PROTO_INLINE_MAX_SIZE, PROTO_MAX_MULTIBULK_LEN};

/// A bulk this long (Redis's `PROTO_MBULK_BIG_ARG`) gets its buffer space reserved when
/// its header arrives.
const BIG_BULK: usize = 32 * 1024;
/// The most a bulk header makes the parser reserve ahead of the data (the connection
/// grows its buffer as usual past that).
pub const BIG_BULK_RESERVE: usize = 64 * 1024 * 1024;

/// Limits the parser enforces before allocating.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: usize,
}

/// A malformed request. `Display` is the Redis error line without the leading `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERR Protocol error: {}", self.0)
    }
}

fn perr(s: &str) -> ProtocolError {
    ProtocolError(s.to_string())
}

/// Resumable parser state for one connection.
#[derive(Debug, Default)]
pub struct Parser {
    /// Offset in the buffer where parsing of the current multibulk resumes.
    pos: usize,
    /// Bulk strings still expected by the current multibulk; `None` between commands.
    remaining: Option<usize>,
    /// Argument ranges (in the buffer) of the current multibulk parsed so far.
    args: Vec<(usize, usize)>,
}

/// Redis's `string2ll`: optional `-`, no `+`, no leading zeros, no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

impl Parser {
    /// Parses one command from the front of `buf` into `out` (which must be empty).
    ///
    /// Returns `Ok(true)` when a command was parsed (and removed from `buf`),
    /// `Ok(false)` when more input is needed. After an `Err` the connection must be
    /// closed: the parser state is unspecified.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        loop {
            if self.remaining.is_none() {
                if buf.is_empty() {
                    return Ok(false);
                }
                if buf[0] != b'*' {
                    match parse_inline_line(buf, out)? {
                        Some(true) => return Ok(true),
                        Some(false) => continue,
                        None => return Ok(false),
                    }
                }
                let Some(cr) = memchr::memchr(b'\r', buf) else {
                    if buf.len() > PROTO_INLINE_MAX_SIZE {
                        return Err(perr("too big mbulk count string"));
                    }
                    return Ok(false);
                };
                if cr + 1 >= buf.len() {
                    return Ok(false);
                }
                let n = parse_i64(&buf[1..cr]);
                let n = match n {
                    Some(n) if n <= PROTO_MAX_MULTIBULK_LEN as i64 => n,
                    _ => return Err(perr("invalid multibulk length")),
                };
                if n <= 0 {
                    buf.advance(cr + 2);
                    continue;
                }
                self.pos = cr + 2;
                self.remaining = Some(n as usize);
                self.args.clear();
                self.args.reserve((n as usize).min(1024));
            }
            let mut remaining = self.remaining.unwrap_or(0);
            while remaining > 0 {
                let pos = self.pos;
                if pos >= buf.len() {
                    self.remaining = Some(remaining);
                    return Ok(false);
                }
                let Some(off) = memchr::memchr(b'\r', &buf[pos..]) else {
                    if buf.len() - pos > PROTO_INLINE_MAX_SIZE {
                        return Err(perr("too big bulk count string"));
                    }
                    self.remaining = Some(remaining);
                    return Ok(false);
                };
                let cr = pos + off;
                if cr + 1 >= buf.len() {
                    self.remaining = Some(remaining);
                    return Ok(false);
                }
                if buf[pos] != b'$' {
                    return Err(ProtocolError(format!(
                        "expected '$', got '{}'",
                        buf[pos] as char
                    )));
                }
                let len = match parse_i64(&buf[pos + 1..cr]) {
                    Some(l) if l >= 0 && (l as u64) <= limits.max_bulk_len as u64 => l as usize,
                    _ => return Err(perr("invalid bulk length")),
                };
                let start = cr + 2;
                // No overflow: `len` is at most `i64::MAX` and `start` is small.
                let end = start + len;
                if buf.len() < end + 2 {
                    // Big bulk: make room for it at once rather than by doubling, but
                    // only up to `BIG_BULK_RESERVE` (the limit may be set as high as
                    // `i64::MAX`: a header alone must never make us allocate that).
                    let missing = end + 2 - buf.len();
                    if len >= BIG_BULK && buf.capacity() - buf.len() < missing {
                        buf.reserve(missing.min(BIG_BULK_RESERVE));
                    }
                    self.remaining = Some(remaining);
                    return Ok(false);
                }
                self.args.push((start, end));
                self.pos = end + 2;
                remaining -= 1;
            }
            let frame = buf.split_to(self.pos).freeze();
            out.extend(self.args.drain(..).map(|(s, e)| frame.slice(s..e)));
            self.pos = 0;
            self.remaining = None;
            return Ok(true);
        }
    }
}

/// One inline line: `Some(true)` a command, `Some(false)` a blank line (skipped),
/// `None` incomplete.
fn parse_inline_line(
    buf: &mut BytesMut,
    out: &mut Vec<Bytes>,
) -> Result<Option<bool>, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > PROTO_INLINE_MAX_SIZE {
            return Err(perr("too big inline request"));
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_args(line).ok_or_else(|| perr("unbalanced quotes in request"))?;
    buf.advance(nl + 1);
    if args.is_empty() {
        return Ok(Some(false));
    }
    out.extend(args.into_iter().map(Bytes::from));
    Ok(Some(true))
}

/// Redis's `sdssplitargs`: whitespace separated words, `"..."` with C escapes
/// (`\n`, `\xHH`, ...) and `'...'`; a closing quote must be followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(line[i + 2]) * 16 + h(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
    };

    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        parse_all_with(input, &LIMITS)
    }

    fn parse_all_with(input: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut buf = BytesMut::from(input);
        let mut p = Parser::default();
        let mut cmds = Vec::new();
        loop {
            let mut out = Vec::new();
            match p.parse(&mut buf, limits, &mut out) {
                Ok(true) => cmds.push(out.iter().map(|b| b.to_vec()).collect()),
                Ok(false) => return (cmds, None),
                Err(e) => return (cmds, Some(e)),
            }
        }
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn integers_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"9223372036854775808"[..],
            b"01",
            b"+1",
            b" 1",
            b"-0",
            b"",
            b"-",
            b"1x",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn multibulk_and_inline() {
        let (cmds, err) = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a \"b c\"\r\n");
        assert!(err.is_none());
        assert_eq!(
            cmds,
            vec![
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"PING".to_vec()],
                vec![b"set".to_vec(), b"a".to_vec(), b"b c".to_vec()]
            ]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_all(b"*abc\r\n").1,
            Some(perr("invalid multibulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").1,
            Some(perr("invalid bulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\n$536870913\r\n").1,
            Some(perr("invalid bulk length"))
        );
        assert_eq!(
            parse_all(b"*2147483648\r\n").1,
            Some(perr("invalid multibulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\nfoo\r\n").1,
            Some(perr("expected '$', got 'f'"))
        );
        assert_eq!(
            parse_all(b"PING \"a\r\n").1,
            Some(perr("unbalanced quotes in request"))
        );
        assert_eq!(
            parse_all(&vec![b'a'; 70000]).1,
            Some(perr("too big inline request"))
        );
        assert_eq!(parse_all(b"*0\r\n*-1\r\n").0.len(), 0);
    }

    /// The largest `proto-max-bulk-len` CONFIG SET accepts, and beyond.
    const EXTREME: [Limits; 2] = [
        Limits {
            max_bulk_len: i64::MAX as usize,
        },
        Limits {
            max_bulk_len: usize::MAX,
        },
    ];

    #[test]
    fn huge_bulk_headers_with_the_largest_limits() {
        for limits in &EXTREME {
            for len in [i64::MAX as u64, i64::MAX as u64 - 1, 1 << 62, 1 << 40] {
                let input = format!("*1\r\n${len}\r\nabc");
                let mut buf = BytesMut::from(input.as_bytes());
                let before = buf.capacity();
                let mut out = Vec::new();
                assert_eq!(
                    Parser::default().parse(&mut buf, limits, &mut out),
                    Ok(false),
                    "a bulk of {len} bytes is incomplete"
                );
                assert!(buf.capacity() <= before + 2 * BIG_BULK_RESERVE);
            }
            // Above i64::MAX is never a length, whatever the limit.
            assert_eq!(
                parse_all_with(b"*1\r\n$9223372036854775808\r\n", limits).1,
                Some(perr("invalid bulk length"))
            );
            assert_eq!(
                parse_all_with(b"*1\r\n$18446744073709551615\r\n", limits).1,
                Some(perr("invalid bulk length"))
            );
            assert_eq!(
                parse_all_with(b"*9223372036854775807\r\n", limits).1,
                Some(perr("invalid multibulk length"))
            );
        }
    }

    proptest! {
        #[test]
        fn extreme_limits_and_headers_never_panic(
            limits in proptest::sample::select(&EXTREME[..]),
            parts in proptest::collection::vec(prop_oneof![
                Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"\r\n"[..]), Just(&b"1"[..]),
                Just(&b"9223372036854775807"[..]), Just(&b"9223372036854775806"[..]),
                Just(&b"18446744073709551615"[..]), Just(&b"2147483647"[..]),
                Just(&b"4611686018427387904"[..]), Just(&b"-1"[..]), Just(&b"abc"[..]),
                Just(&b"0"[..])], 0..24)) {
            let input: Vec<u8> = parts.concat();
            let _ = parse_all_with(&input, &limits);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_all(&input);
        }

        #[test]
        fn arbitrary_resp_like_never_panics(parts in proptest::collection::vec(
            prop_oneof![Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"\r\n"[..]), Just(&b"3"[..]),
                        Just(&b"-1"[..]), Just(&b"abc"[..]), Just(&b" "[..]), Just(&b"\""[..])], 0..64)) {
            let input: Vec<u8> = parts.concat();
            let _ = parse_all(&input);
        }

        #[test]
        fn valid_commands_round_trip(cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..5)) {
            let input: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
            let (parsed, err) = parse_all(&input);
            prop_assert!(err.is_none());
            prop_assert_eq!(parsed, cmds);
        }

        #[test]
        fn split_reads_parse_the_same(cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..4), 1..4),
            cut in any::<proptest::sample::Index>()) {
            let input: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
            let cut = cut.index(input.len() + 1);
            let mut buf = BytesMut::from(&input[..cut]);
            let mut p = Parser::default();
            let mut got = Vec::new();
            let mut feed_rest = true;
            loop {
                let mut out = Vec::new();
                match p.parse(&mut buf, &LIMITS, &mut out) {
                    Ok(true) => got.push(out.iter().map(|b| b.to_vec()).collect::<Vec<_>>()),
                    Ok(false) if feed_rest => { buf.extend_from_slice(&input[cut..]); feed_rest = false; }
                    Ok(false) => break,
                    Err(e) => prop_assert!(false, "error {e}"),
                }
            }
            prop_assert_eq!(got, cmds);
        }
    }
}
