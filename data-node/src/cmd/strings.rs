//! String commands: GET, SET, SETNX, SETEX, PSETEX, MGET, MSET, MSETNX, GETSET, GETDEL,
//! GETEX, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT, APPEND, STRLEN, GETRANGE, SETRANGE.

use bytes::Bytes;

use super::{arg_int, eq_ic, get_str, parse_f64, Ctx};
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
        let v = if ms { v } else { v.checked_mul(1000).ok_or_else(invalid)? };
        let at = if abs { v } else { v.checked_add(now as i64).ok_or_else(invalid)? };
        Ok(at as u64)
    })())
}

/// # Format
/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds
/// | PXAT unix-time-milliseconds | KEEPTTL]`
pub fn set(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut exp = Expiry::None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "nx") && !xx {
            nx = true;
        } else if eq_ic(a, "xx") && !nx {
            xx = true;
        } else if eq_ic(a, "get") {
            get = true;
        } else if eq_ic(a, "keepttl") && matches!(exp, Expiry::None) {
            exp = Expiry::Keep;
        } else if i + 1 < args.len() && matches!(exp, Expiry::None) {
            match parse_expiry(a, &args[i + 1], ctx.now, "set") {
                Some(Ok(at)) => exp = Expiry::At(at),
                Some(Err(r)) => return r,
                None => return Reply::syntax(),
            }
            i += 1;
        } else {
            return Reply::syntax();
        }
        i += 1;
    }
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
        return Reply::Null;
    }
    match exp {
        Expiry::Keep => t.set_keep_ttl(key, str_value(&args[2])),
        Expiry::At(at) => {
            t.set(key, str_value(&args[2]));
            t.set_expire_at(key, at);
        }
        _ => t.set(key, str_value(&args[2])),
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
    Reply::ok()
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
        None => return Reply::Null,
    };
    t.remove(&args[1], ctx.now);
    old
}

/// # Format
/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT
/// unix-time-milliseconds | PERSIST]`
pub fn getex(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let mut exp = Expiry::None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "persist") && matches!(exp, Expiry::None) {
            exp = Expiry::Persist;
        } else if i + 1 < args.len() && matches!(exp, Expiry::None) {
            match parse_expiry(a, &args[i + 1], ctx.now, "getex") {
                Some(Ok(at)) => exp = Expiry::At(at),
                Some(Err(r)) => return r,
                None => return Reply::syntax(),
            }
            i += 1;
        } else {
            return Reply::syntax();
        }
        i += 1;
    }
    let key = &args[1];
    let v = match tri!(get_str(t, key, ctx.now)) {
        Some(v) => Reply::bulk(v),
        None => return Reply::Null,
    };
    match exp {
        Expiry::At(at) if at <= ctx.now => {
            t.remove(key, ctx.now);
        }
        Expiry::At(at) => t.set_expire_at(key, at),
        Expiry::Persist => {
            t.persist(key);
        }
        _ => {}
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
    let by = tri!(super::arg_float(&args[2]));
    let key = &args[1];
    let cur = match tri!(get_str(t, key, ctx.now)) {
        Some(v) => tri!(parse_f64(v).ok_or_else(Reply::not_float)),
        None => 0.0,
    };
    let new = cur + by;
    if !new.is_finite() {
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let s = fmt_human_double(new);
    t.set_keep_ttl(key, str_value(s.as_bytes()));
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
        return Reply::Integer(cur_len as i64);
    }
    let off = off as usize;
    if off.saturating_add(val.len()) > ctx.state.config.proto_max_bulk_len() {
        return Reply::err(TOO_BIG);
    }
    let mut v = cur.map(|c| c.to_vec()).unwrap_or_default();
    if v.len() < off + val.len() {
        v.resize(off + val.len(), 0);
    }
    v[off..off + val.len()].copy_from_slice(val);
    let n = v.len();
    t.set_keep_ttl(key, Value::Str(v.into_boxed_slice()));
    Reply::Integer(n as i64)
}
