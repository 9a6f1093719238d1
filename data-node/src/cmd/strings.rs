//! String commands: GET, SET, SETNX, SETEX, PSETEX, MGET, MSET, MSETNX, GETSET, GETDEL,
//! GETEX, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT, APPEND, STRLEN, GETRANGE, SETRANGE.

use bytes::Bytes;

use super::{arg_int, argv, eq_ic, get_str, parse_f64, pexpireat, Ctx};
use crate::db::{SlotTable, Value};
use crate::resp::parse::parse_i64;
use crate::resp::reply::fmt_human_double;
use crate::resp::Reply;
use crate::tri;

fn str_value(b: &[u8]) -> Value {
    Value::Str(b.into())
}

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// # Format
/// `GET key`
pub fn get(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    match tri!(get_str(t, &args[1], ctx.now)) {
        Some(v) => Reply::bulk(v),
        None => Reply::Null,
    }
}

/// An expiry option: relative or absolute, seconds or milliseconds.
enum Expiry {
    Keep,
    None,
    At(u64),
    Persist,
    /// `GETEX` parses the value after looking the key up: the option's index.
    Deferred(usize),
}

/// Options of `SET` (`set`) or `GETEX` (`!set`).
struct Opts {
    nx: bool,
    xx: bool,
    get: bool,
    exp: Expiry,
}

/// Redis's `parseExtendedStringArgumentsOrReply`: an option may repeat (the last value
/// wins) but not combine with a conflicting one; values are parsed after the syntax.
fn parse_opts(
    args: &[Bytes],
    start: usize,
    set: bool,
    now: u64,
    cname: &str,
) -> Result<Opts, Reply> {
    let mut o = Opts {
        nx: false,
        xx: false,
        get: false,
        exp: Expiry::None,
    };
    // 0: none, 1..=4: EX PX EXAT PXAT, 5: KEEPTTL, 6: PERSIST
    let mut kind = 0u8;
    let mut raw: Option<usize> = None;
    let mut i = start;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        let exp_kind = ["ex", "px", "exat", "pxat"]
            .iter()
            .position(|x| eq_ic(a, x))
            .map(|p| p as u8 + 1);
        if set && eq_ic(a, "nx") && !o.xx {
            o.nx = true;
        } else if set && eq_ic(a, "xx") && !o.nx {
            o.xx = true;
        } else if set && eq_ic(a, "get") {
            o.get = true;
        } else if set && eq_ic(a, "keepttl") && (kind == 0 || kind == 5) {
            kind = 5;
        } else if !set && eq_ic(a, "persist") && (kind == 0 || kind == 6) {
            kind = 6;
        } else if let Some(k) = exp_kind.filter(|&k| has_next && (kind == 0 || kind == k)) {
            kind = k;
            raw = Some(i);
            i += 1;
        } else {
            return Err(Reply::syntax());
        }
        i += 1;
    }
    o.exp = match kind {
        0 => Expiry::None,
        5 => Expiry::Keep,
        6 => Expiry::Persist,
        _ if !set => Expiry::Deferred(raw.unwrap_or(start)),
        _ => {
            let i = raw.unwrap_or(start);
            match parse_expiry(&args[i], &args[i + 1], now, cname) {
                Some(Ok(at)) => Expiry::At(at),
                Some(Err(r)) => return Err(r),
                None => return Err(Reply::syntax()),
            }
        }
    };
    Ok(o)
}

/// Parses `EX s | PX ms | EXAT ts | PXAT ms-ts` at `args[i]` (the value is `args[i+1]`).
fn parse_expiry(opt: &[u8], val: &[u8], now: u64, cname: &str) -> Option<Result<u64, Reply>> {
    let (ms, abs) = if eq_ic(opt, "ex") {
        (false, false)
    } else if eq_ic(opt, "px") {
        (true, false)
    } else if eq_ic(opt, "exat") {
        (false, true)
    } else if eq_ic(opt, "pxat") {
        (true, true)
    } else {
        return None;
    };
    let invalid = || Reply::error(format!("ERR invalid expire time in '{cname}' command"));
    Some((|| {
        let v = arg_int(val)?;
        if v <= 0 {
            return Err(invalid());
        }
        let v = if ms {
            v
        } else {
            v.checked_mul(1000).ok_or_else(invalid)?
        };
        let at = if abs {
            v
        } else {
            v.checked_add(now as i64).ok_or_else(invalid)?
        };
        Ok(at as u64)
    })())
}

/// # Format
/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds
/// | PXAT unix-time-milliseconds | KEEPTTL]`
pub fn set(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let o = tri!(parse_opts(args, 3, true, ctx.now, "set"));
    let (nx, xx, get, exp) = (o.nx, o.xx, o.get, o.exp);
    let key = &args[1];
    let old = if get {
        match tri!(get_str(t, key, ctx.now)) {
            Some(v) => Reply::bulk(v),
            None => Reply::Null,
        }
    } else {
        Reply::Null
    };
    let exists = t.contains(key, ctx.now);
    if (nx && exists) || (xx && !exists) {
        ctx.noop = true;
        return old;
    }
    let value = &args[2];
    match exp {
        Expiry::Keep => {
            t.set_keep_ttl(key, str_value(value));
            ctx.propagate(|| argv([b"SET", key, value, b"KEEPTTL"]));
        }
        Expiry::At(at) => {
            t.set(key, str_value(value));
            t.set_expire_at(key, at);
            ctx.propagate(|| set_pxat(key, value, at));
        }
        _ => {
            t.set(key, str_value(value));
            ctx.propagate(|| argv([b"SET", key, value]));
        }
    }
    if get {
        old
    } else {
        Reply::ok()
    }
}

/// # Format
/// `SETNX key value`
pub fn setnx(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if t.contains(&args[1], ctx.now) {
        ctx.noop = true;
        return Reply::Integer(0);
    }
    t.set(&args[1], str_value(&args[2]));
    Reply::Integer(1)
}

/// # Format
/// `SETEX key seconds value`, `PSETEX key milliseconds value`
pub fn setex(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (opt, cname) = if eq_ic(&args[0], "setex") {
        ("ex", "setex")
    } else {
        ("px", "psetex")
    };
    let at = match parse_expiry(opt.as_bytes(), &args[2], ctx.now, cname) {
        Some(Ok(at)) => at,
        Some(Err(r)) => return r,
        None => return Reply::syntax(),
    };
    t.set(&args[1], str_value(&args[3]));
    t.set_expire_at(&args[1], at);
    ctx.propagate(|| set_pxat(&args[1], &args[3], at));
    Reply::ok()
}

/// The effect `SET key value PXAT at`.
fn set_pxat(key: &[u8], value: &[u8], at: u64) -> crate::db::Argv {
    argv([
        b"SET",
        key,
        value,
        b"PXAT",
        itoa::Buffer::new().format(at).as_bytes(),
    ])
}

/// # Format
/// `MGET key [key ...]`
pub fn mget(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Array(
        args[1..]
            .iter()
            .map(|k| match t.get(k, ctx.now) {
                Some(Value::Str(v)) => Reply::bulk(v),
                _ => Reply::Null,
            })
            .collect(),
    )
}

/// # Format
/// `MSET key value [key value ...]`, `MSETNX key value [key value ...]`
pub fn mset(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let nx = eq_ic(&args[0], "msetnx");
    if args.len().is_multiple_of(2) {
        return Reply::arity(if nx { "msetnx" } else { "mset" });
    }
    if nx && args[1..].chunks(2).any(|p| t.contains(&p[0], ctx.now)) {
        ctx.noop = true;
        return Reply::Integer(0);
    }
    for p in args[1..].chunks(2) {
        t.set(&p[0], str_value(&p[1]));
    }
    if nx {
        Reply::Integer(1)
    } else {
        Reply::ok()
    }
}

/// # Format
/// `GETSET key value`
pub fn getset(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let old = match tri!(get_str(t, &args[1], ctx.now)) {
        Some(v) => Reply::bulk(v),
        None => Reply::Null,
    };
    t.set(&args[1], str_value(&args[2]));
    old
}

/// # Format
/// `GETDEL key`
pub fn getdel(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let old = match tri!(get_str(t, &args[1], ctx.now)) {
        Some(v) => Reply::bulk(v),
        None => {
            ctx.noop = true;
            return Reply::Null;
        }
    };
    t.remove(&args[1], ctx.now);
    old
}

/// # Format
/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT
/// unix-time-milliseconds | PERSIST]`
pub fn getex(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let mut exp = tri!(parse_opts(args, 2, false, ctx.now, "getex")).exp;
    let key = &args[1];
    let v = match tri!(get_str(t, key, ctx.now)) {
        Some(v) => Reply::bulk(v),
        None => {
            ctx.noop = true;
            return Reply::Null;
        }
    };
    if let Expiry::Deferred(i) = exp {
        exp = match parse_expiry(&args[i], &args[i + 1], ctx.now, "getex") {
            Some(Ok(at)) => Expiry::At(at),
            Some(Err(r)) => return r,
            None => return Reply::syntax(),
        };
    }
    match exp {
        Expiry::At(at) if at <= ctx.now => {
            t.remove(key, ctx.now);
            ctx.propagate(|| argv([b"DEL", key]));
        }
        Expiry::At(at) => {
            t.set_expire_at(key, at);
            ctx.propagate(|| pexpireat(key, at));
        }
        Expiry::Persist => {
            ctx.noop = !t.persist(key);
            ctx.propagate(|| argv([b"PERSIST", key]));
        }
        _ => ctx.noop = true,
    }
    v
}

/// # Format
/// `INCR key`, `DECR key`, `INCRBY key increment`, `DECRBY key decrement`
pub fn incr(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let by = if eq_ic(name, "incr") {
        1
    } else if eq_ic(name, "decr") {
        -1
    } else {
        let v = tri!(arg_int(&args[2]));
        if eq_ic(name, "decrby") {
            match v.checked_neg() {
                Some(v) => v,
                None => return Reply::err("ERR decrement would overflow"),
            }
        } else {
            v
        }
    };
    let key = &args[1];
    let cur = match tri!(get_str(t, key, ctx.now)) {
        Some(v) => tri!(parse_i64(v).ok_or_else(Reply::not_integer)),
        None => 0,
    };
    let Some(new) = cur.checked_add(by) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    t.set_keep_ttl(key, str_value(itoa::Buffer::new().format(new).as_bytes()));
    Reply::Integer(new)
}

/// # Format
/// `INCRBYFLOAT key increment`
pub fn incrbyfloat(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let cur_raw = tri!(get_str(t, key, ctx.now));
    // Integers add exactly (Redis's long double is exact below 2^64; f64 is not).
    let exact = exact_float_add(cur_raw.unwrap_or(b"0"), &args[2]);
    if let Some(s) = exact {
        t.set_keep_ttl(key, str_value(s.as_bytes()));
        ctx.propagate(|| argv([b"SET", key, s.as_bytes(), b"KEEPTTL"]));
        return Reply::bulk(s.as_bytes());
    }
    let cur = match cur_raw {
        Some(v) => tri!(parse_f64(v).ok_or_else(Reply::not_float)),
        None => 0.0,
    };
    let by = tri!(super::arg_float(&args[2]));
    let new = cur + by;
    if !new.is_finite() {
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let s = fmt_human_double(new);
    t.set_keep_ttl(key, str_value(s.as_bytes()));
    ctx.propagate(|| argv([b"SET", key, s.as_bytes(), b"KEEPTTL"]));
    Reply::bulk(s.as_bytes())
}

/// # Format
/// `APPEND key value`
pub fn append(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let max = ctx.state.config.proto_max_bulk_len();
    let cur = tri!(get_str(t, key, ctx.now));
    let mut v = cur.map(|c| c.to_vec()).unwrap_or_default();
    if v.len() + args[2].len() > max {
        return Reply::err(TOO_BIG);
    }
    v.extend_from_slice(&args[2]);
    let n = v.len();
    t.set_keep_ttl(key, Value::Str(v.into_boxed_slice()));
    Reply::Integer(n as i64)
}

/// # Format
/// `STRLEN key`
pub fn strlen(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Integer(tri!(get_str(t, &args[1], ctx.now)).map_or(0, |v| v.len()) as i64)
}

/// # Format
/// `GETRANGE key start end`
pub fn getrange(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let mut start = tri!(arg_int(&args[2]));
    let mut end = tri!(arg_int(&args[3]));
    let v = tri!(get_str(t, &args[1], ctx.now)).unwrap_or(b"");
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::bulk(b"");
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return Reply::bulk(b"");
    }
    Reply::bulk(&v[start as usize..=end as usize])
}

/// # Format
/// `SETRANGE key offset value`
pub fn setrange(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let off = tri!(arg_int(&args[2]));
    if off < 0 {
        return Reply::err("ERR offset is out of range");
    }
    let key = &args[1];
    let val = &args[3];
    let cur = tri!(get_str(t, key, ctx.now));
    let cur_len = cur.map_or(0, |c| c.len());
    if val.is_empty() {
        ctx.noop = true;
        return Reply::Integer(cur_len as i64);
    }
    let off = off as usize;
    let end = match off.checked_add(val.len()) {
        Some(end) if end <= ctx.state.config.proto_max_bulk_len() => end,
        _ => return Reply::err(TOO_BIG),
    };
    // `proto-max-bulk-len` may be set as high as i64::MAX: an impossible size is an
    // error, never an abort.
    let len = end.max(cur_len);
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        return Reply::error(format!("ERR out of memory allocating {len} bytes"));
    }
    v.extend_from_slice(cur.unwrap_or_default());
    v.resize(len, 0);
    v[off..end].copy_from_slice(val);
    let n = v.len();
    t.set_keep_ttl(key, Value::Str(v.into_boxed_slice()));
    Reply::Integer(n as i64)
}

/// Fixed-point scale of [`parse_decimal`]: 17 fractional digits, as `%.17Lf`.
const SCALE: i128 = 100_000_000_000_000_000;

/// Parses `-?digits[.digits]` as a fixed-point number (rounded to 17 decimals).
fn parse_decimal(b: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(b).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let plain = !int.is_empty()
        && int.len() <= 20
        && frac.len() <= 30
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit());
    if !plain {
        // `1e2`, `0.5e1`...: exact when the double has at most 17 binary fraction digits.
        let v = parse_f64(b)?;
        let n = v * 131072.0;
        if !(n.fract() == 0.0 && n.abs() < 2f64.powi(80)) {
            return None;
        }
        return Some(n as i128 * 5i128.pow(17));
    }
    let mut v: i128 = int.parse::<i128>().ok()? * SCALE;
    if !frac.is_empty() {
        let (head, tail) = frac.split_at(frac.len().min(17));
        v += head.parse::<i128>().ok()? * 10i128.pow(17 - head.len() as u32);
        // More than 17 decimals: round to nearest (what `%.17Lf` would show).
        if tail.as_bytes().first().is_some_and(|&c| c >= b'5') {
            v += 1;
        }
    }
    Some(if neg { -v } else { v })
}

/// Rounds a fixed-point value the way an x87 long double (64-bit mantissa, ties to
/// even) would hold it. `None` when that cannot be emulated here: a non-dyadic
/// fraction (like 0.1) with an integer part of 128 or more, where `%.17Lf` would show
/// the binary rounding error.
fn ld_round(v: i128) -> Option<i128> {
    let five17 = 5i128.pow(17);
    if v % five17 != 0 {
        return (v.unsigned_abs() / (SCALE as u128) < 128).then_some(v);
    }
    // v = g / 2^17 exactly.
    let g = (v / five17).unsigned_abs();
    let bits = 128 - g.leading_zeros();
    let g = if bits > 64 {
        let shift = bits - 64;
        let mut m = g >> shift;
        let rem = g & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && m & 1 == 1) {
            m += 1;
        }
        m.checked_shl(shift)?
    } else {
        g
    };
    let g = i128::try_from(g).ok()?;
    g.checked_mul(five17).map(|x| if v < 0 { -x } else { x })
}

/// Formats a fixed-point value like Redis's `%.17Lf` with trailing zeros trimmed.
fn fmt_decimal(v: i128) -> String {
    let int = v.unsigned_abs() / SCALE as u128;
    let frac = v.unsigned_abs() % SCALE as u128;
    let mut f = format!("{frac:017}");
    while f.ends_with('0') {
        f.pop();
    }
    let sign = if v < 0 { "-" } else { "" };
    if f.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{f}")
    }
}

/// `cur + by` as Redis's long double arithmetic prints it, when it can be computed
/// exactly here (decimal inputs); `None` means "use f64".
pub fn exact_float_add(cur: &[u8], by: &[u8]) -> Option<String> {
    let (a, b) = (parse_decimal(cur)?, parse_decimal(by)?);
    let sum = ld_round(ld_round(a)? + ld_round(b)?)?;
    Some(fmt_decimal(sum))
}

#[cfg(test)]
mod tests {
    use super::exact_float_add;

    #[test]
    fn float_increments_print_like_redis_long_double() {
        // Values checked against redis-server 7.0 (x87 long double, `%.17Lf`).
        let add = |a: &str, b: &str| exact_float_add(a.as_bytes(), b.as_bytes());
        assert_eq!(add("10.5", "0.1").as_deref(), Some("10.6"));
        assert_eq!(add("0", "3").as_deref(), Some("3"));
        assert_eq!(add("1.5", "-1.5").as_deref(), Some("0"));
        assert_eq!(
            add("9223372036854775807", "3").as_deref(),
            Some("9223372036854775810")
        );
        assert_eq!(
            add("9223372036854775807", "-0.25").as_deref(),
            Some("9223372036854775807")
        );
        assert_eq!(
            add("9223372036854775807", "0.5").as_deref(),
            Some("9223372036854775807.5")
        );
        assert_eq!(add("1", "1e2").as_deref(), Some("101"));
        assert_eq!(add("abc", "1"), None);
    }
}
