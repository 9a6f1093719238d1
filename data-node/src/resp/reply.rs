//! The reply type and its encoding for RESP2 and RESP3.
//!
//! Commands build a [`Reply`]; the connection encodes it for the protocol the client
//! negotiated with `HELLO`. RESP2 degrades the RESP3-only types the way Redis does:
//! maps become flat arrays, sets arrays, doubles bulk strings, booleans integers,
//! verbatim strings bulk strings, and both nulls `$-1` / `*-1`.

use std::borrow::Cow;

use bytes::Bytes;

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`
    Simple(Cow<'static, str>),
    /// `-text` (the text includes the error code, e.g. `ERR syntax error`).
    Error(Cow<'static, str>),
    Integer(i64),
    Bulk(Bytes),
    /// `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `*-1` in RESP2, `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Boolean(bool),
    /// A verbatim string with its three-letter format (`txt`).
    Verbatim(&'static str, Bytes),
    /// Out-of-band data (pub/sub messages, `subscribe` confirmations): a push frame
    /// (`>`) in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, one after the other (`SUBSCRIBE a b` confirms
    /// each channel).
    Many(Vec<Reply>),
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }
    pub fn simple(s: &'static str) -> Reply {
        Reply::Simple(Cow::Borrowed(s))
    }
    pub fn err(s: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(s))
    }
    pub fn error(s: String) -> Reply {
        Reply::Error(Cow::Owned(s))
    }
    pub fn wrongtype() -> Reply {
        Reply::err(WRONGTYPE)
    }
    pub fn syntax() -> Reply {
        Reply::err(SYNTAX)
    }
    pub fn not_integer() -> Reply {
        Reply::err(NOT_INTEGER)
    }
    pub fn not_float() -> Reply {
        Reply::err(NOT_FLOAT)
    }
    /// A bulk string copied from `b` (values in the keyspace are never shared).
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }
    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
    /// `ERR wrong number of arguments for 'name' command`.
    pub fn arity(name: &str) -> Reply {
        Reply::error(format!(
            "ERR wrong number of arguments for '{name}' command"
        ))
    }

    /// Appends the encoding of this reply to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, resp3: bool) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Integer(i) => int_line(out, b':', *i),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::NullArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Reply::Array(items) => {
                int_line(out, b'*', items.len() as i64);
                for i in items {
                    i.encode(out, resp3);
                }
            }
            Reply::Push(items) => {
                int_line(out, if resp3 { b'>' } else { b'*' }, items.len() as i64);
                for i in items {
                    i.encode(out, resp3);
                }
            }
            Reply::Many(replies) => {
                for r in replies {
                    r.encode(out, resp3);
                }
            }
            Reply::Set(items) => {
                int_line(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
                for i in items {
                    i.encode(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    int_line(out, b'%', pairs.len() as i64);
                } else {
                    int_line(out, b'*', pairs.len() as i64 * 2);
                }
                for (k, v) in pairs {
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Double(d) => {
                let s = fmt_double(*d);
                if resp3 {
                    line(out, b',', s.as_bytes());
                } else {
                    bulk(out, s.as_bytes());
                }
            }
            Reply::Boolean(b) => {
                if resp3 {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    int_line(out, b':', *b as i64);
                }
            }
            Reply::Verbatim(fmt, b) => {
                if resp3 {
                    int_line(out, b'=', b.len() as i64 + 4);
                    out.extend_from_slice(fmt.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(b);
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, b);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, prefix: u8, s: &[u8]) {
    out.push(prefix);
    // A status or error line must not contain CR/LF: replace them like Redis does.
    if s.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            s.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(b"\r\n");
}

fn int_line(out: &mut Vec<u8>, prefix: u8, i: i64) {
    out.push(prefix);
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    int_line(out, b'$', b.len() as i64);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double like C's `%.17g` (what Redis 7.0 uses for scores), with `inf` and
/// `-inf` for the infinities.
pub fn fmt_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Integral scores (the common case) print as their digits: `%.17g` uses fixed
    // notation for them up to 17 digits.
    if d.fract() == 0.0 && d.abs() < 1e17 {
        return itoa::Buffer::new().format(d as i64).to_string();
    }
    let e = format!("{:.16e}", d);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let mant = strip_zeros(mant);
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let s = format!("{:.*}", (16 - exp) as usize, d);
        strip_zeros(&s).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats the result of `INCRBYFLOAT` / `HINCRBYFLOAT` (Redis: `%.17Lf` with trailing
/// zeros removed). ember computes in `f64`, so the shortest round-trip form is used;
/// it equals Redis's output whenever the result is exactly representable.
pub fn fmt_human_double(d: f64) -> String {
    if d == 0.0 {
        return "0".into();
    }
    if d.fract() == 0.0 {
        // Exact integer digits, as `%.17Lf` prints them (shortest form would pad with
        // zeros past 17 significant digits).
        return format!("{d:.0}");
    }
    format!("{d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_like_printf_g17() {
        assert_eq!(fmt_double(1.0), "1");
        assert_eq!(fmt_double(1.5), "1.5");
        assert_eq!(fmt_double(1.1), "1.1000000000000001");
        assert_eq!(fmt_double(-2.5), "-2.5");
        assert_eq!(fmt_double(1e20), "1e+20");
        assert_eq!(fmt_double(-42.0), "-42");
        assert_eq!(fmt_double(99999999999999999.0), "1e+17");
        assert_eq!(fmt_double(9007199254740993.0), "9007199254740992");
        assert_eq!(fmt_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(fmt_double(0.0001), "0.0001");
        assert_eq!(fmt_double(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(fmt_double(f64::INFINITY), "inf");
        assert_eq!(fmt_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(fmt_human_double(10.5), "10.5");
        assert_eq!(fmt_human_double(3.0), "3");
    }

    fn enc(r: &Reply, resp3: bool) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v, resp3);
        v
    }

    #[test]
    fn resp2_and_resp3() {
        let m = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Integer(1))]);
        assert_eq!(enc(&m, false), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, true), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Null, false), b"$-1\r\n");
        assert_eq!(enc(&Reply::NullArray, false), b"*-1\r\n");
        assert_eq!(enc(&Reply::Null, true), b"_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), false), b"$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), true), b",1.5\r\n");
        assert_eq!(enc(&Reply::Boolean(true), true), b"#t\r\n");
        assert_eq!(enc(&Reply::Boolean(true), false), b":1\r\n");
        assert_eq!(
            enc(&Reply::Verbatim("txt", Bytes::from_static(b"hi")), true),
            b"=6\r\ntxt:hi\r\n"
        );
        assert_eq!(enc(&Reply::Set(vec![]), true), b"~0\r\n");
    }
}
