//! Hash commands: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HEXISTS, HLEN, HSTRLEN, HKEYS,
//! HVALS, HGETALL, HINCRBY, HINCRBYFLOAT, HRANDFIELD, HSCAN.

use bytes::Bytes;

use super::{
    arg_int, eq_ic, get_hash, get_hash_mut, glob_match, parse_cursor, parse_f64, parse_scan_opts,
    Ctx,
};
use crate::db::{positions, SlotTable};
use crate::resp::parse::parse_i64;
use crate::resp::reply::fmt_human_double;
use crate::resp::Reply;
use crate::tri;

/// # Format
/// `HSET key field value [field value ...]`, `HMSET key field value [field value ...]`
pub fn hset(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let hmset = eq_ic(&args[0], "hmset");
    if !args.len().is_multiple_of(2) {
        return Reply::arity(if hmset { "hmset" } else { "hset" });
    }
    let h = tri!(get_hash_mut(t, &args[1], ctx.now, true)).expect("created");
    let mut added = 0;
    for p in args[2..].chunks(2) {
        if let Some(v) = h.get_mut(&p[0][..]) {
            *v = p[1][..].into();
        } else {
            h.insert(&p[0], p[1][..].into());
            added += 1;
        }
    }
    if hmset {
        Reply::ok()
    } else {
        Reply::Integer(added)
    }
}

/// # Format
/// `HSETNX key field value`
pub fn hsetnx(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if let Some(h) = tri!(get_hash(t, &args[1], ctx.now)) {
        if h.contains_key(&args[2][..]) {
            ctx.noop = true;
            return Reply::Integer(0);
        }
    }
    let h = tri!(get_hash_mut(t, &args[1], ctx.now, true)).expect("created");
    h.insert(&args[2], args[3][..].into());
    Reply::Integer(1)
}

/// # Format
/// `HGET key field`
pub fn hget(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    match tri!(get_hash(t, &args[1], ctx.now)).and_then(|h| h.get(&args[2][..])) {
        Some(v) => Reply::bulk(v),
        None => Reply::Null,
    }
}

/// # Format
/// `HMGET key field [field ...]`
pub fn hmget(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let h = tri!(get_hash(t, &args[1], ctx.now));
    Reply::Array(
        args[2..]
            .iter()
            .map(|f| match h.and_then(|h| h.get(&f[..])) {
                Some(v) => Reply::bulk(v),
                None => Reply::Null,
            })
            .collect(),
    )
}

/// # Format
/// `HDEL key field [field ...]`
pub fn hdel(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let Some(h) = tri!(get_hash_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    let n = args[2..]
        .iter()
        .filter(|f| h.remove(&f[..]).is_some())
        .count();
    ctx.noop = n == 0;
    t.remove_if_empty(&args[1]);
    Reply::Integer(n as i64)
}

/// # Format
/// `HEXISTS key field`
pub fn hexists(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let h = tri!(get_hash(t, &args[1], ctx.now));
    Reply::Integer(h.is_some_and(|h| h.contains_key(&args[2][..])) as i64)
}

/// # Format
/// `HLEN key`
pub fn hlen(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Integer(tri!(get_hash(t, &args[1], ctx.now)).map_or(0, |h| h.len()) as i64)
}

/// # Format
/// `HSTRLEN key field`
pub fn hstrlen(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let h = tri!(get_hash(t, &args[1], ctx.now));
    Reply::Integer(h.and_then(|h| h.get(&args[2][..])).map_or(0, |v| v.len()) as i64)
}

/// # Format
/// `HGETALL key`, `HKEYS key`, `HVALS key`
pub fn hgetall(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let h = tri!(get_hash(t, &args[1], ctx.now));
    let name = &args[0];
    let Some(h) = h else {
        return if eq_ic(name, "hgetall") {
            Reply::Map(vec![])
        } else {
            Reply::Array(vec![])
        };
    };
    if eq_ic(name, "hkeys") {
        Reply::Array(h.keys().map(Reply::bulk).collect())
    } else if eq_ic(name, "hvals") {
        Reply::Array(h.values().map(|v| Reply::bulk(v)).collect())
    } else {
        Reply::Map(
            h.iter()
                .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                .collect(),
        )
    }
}

/// # Format
/// `HINCRBY key field increment`
pub fn hincrby(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let by = tri!(arg_int(&args[3]));
    let h = tri!(get_hash_mut(t, &args[1], ctx.now, true)).expect("created");
    let cur = match h.get(&args[2][..]) {
        Some(v) => match parse_i64(v) {
            Some(c) => c,
            None => return Reply::err("ERR hash value is not an integer"),
        },
        None => 0,
    };
    let Some(new) = cur.checked_add(by) else {
        t.remove_if_empty(&args[1]);
        return Reply::err("ERR increment or decrement would overflow");
    };
    h.insert(&args[2], itoa::Buffer::new().format(new).as_bytes().into());
    Reply::Integer(new)
}

/// # Format
/// `HINCRBYFLOAT key field increment`
pub fn hincrbyfloat(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let by = tri!(super::arg_float(&args[3]));
    if !by.is_finite() {
        return Reply::err("ERR value is NaN or Infinity");
    }
    let h = tri!(get_hash_mut(t, &args[1], ctx.now, true)).expect("created");
    let cur_raw = h.get(&args[2][..]).map(|v| v.to_vec());
    if cur_raw.as_deref().is_none_or(|v| parse_f64(v).is_some()) {
        if let Some(s) =
            super::strings::exact_float_add(cur_raw.as_deref().unwrap_or(b"0"), &args[3])
        {
            h.insert(&args[2], s.as_bytes().into());
            ctx.propagate(|| super::argv([b"HSET", &args[1], &args[2], s.as_bytes()]));
            return Reply::bulk(s.as_bytes());
        }
    }
    let cur = match h.get(&args[2][..]) {
        Some(v) => match parse_f64(v) {
            Some(c) => c,
            None => return Reply::err("ERR hash value is not a float"),
        },
        None => 0.0,
    };
    let new = cur + by;
    if !new.is_finite() {
        t.remove_if_empty(&args[1]);
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let s = fmt_human_double(new);
    h.insert(&args[2], s.as_bytes().into());
    ctx.propagate(|| super::argv([b"HSET", &args[1], &args[2], s.as_bytes()]));
    Reply::bulk(s.as_bytes())
}

/// # Format
/// `HRANDFIELD key [count [WITHVALUES]]`
///
/// The count is checked first (as in Redis, even for a missing key); a negative count
/// repeats fields, at most [`MAX_RANDOM_REPEATS`](super::MAX_RANDOM_REPEATS) of them.
/// With `WITHVALUES`, RESP3 gets `[field, value]` pairs, RESP2 a flat list.
/// O(1), or O(|count|): random positions ([`positions::random`]).
pub fn hrandfield(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let withvalues = args.len() == 4;
    let count = if args.len() >= 3 {
        Some(tri!(super::random_count(&args[2], withvalues)))
    } else {
        None
    };
    if args.len() > 4 || (withvalues && !eq_ic(&args[3], "withvalues")) {
        return Reply::syntax();
    }
    let h = tri!(get_hash(t, &args[1], ctx.now));
    let Some(h) = h else {
        return if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Null
        };
    };
    let Some(count) = count else {
        return positions::one(h.len())
            .and_then(|i| h.get_index(i))
            .map_or(Reply::Null, |(k, _)| Reply::bulk(k));
    };
    let picks = positions::random(h.len(), count)
        .into_iter()
        .filter_map(|i| h.get_index(i));
    if !withvalues {
        return Reply::Array(picks.map(|(k, _)| Reply::bulk(k)).collect());
    }
    pairs_reply(
        picks.map(|(k, v)| (Reply::bulk(k), Reply::bulk(v))),
        ctx.client.resp3,
    )
}

/// A list of pairs as Redis replies them: nested `[a, b]` arrays in RESP3, one flat
/// array in RESP2.
pub fn pairs_reply(pairs: impl Iterator<Item = (Reply, Reply)>, resp3: bool) -> Reply {
    if resp3 {
        Reply::Array(pairs.map(|(a, b)| Reply::Array(vec![a, b])).collect())
    } else {
        Reply::Array(pairs.flat_map(|(a, b)| [a, b]).collect())
    }
}

/// # Format
/// `HSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// The cursor is a position ([`positions::scan`]): every field present for the whole
/// scan is returned, whatever is added or removed between calls.
pub fn hscan(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let cursor = tri!(parse_cursor(&args[2]));
    let o = tri!(parse_scan_opts(args, 3, false));
    let mut next = 0;
    let mut out = Vec::new();
    if let Some(h) = tri!(get_hash(t, &args[1], ctx.now)) {
        let (n, page) = positions::scan(h.len(), cursor, o.count);
        next = n;
        for (k, v) in page.filter_map(|i| h.get_index(i)) {
            if o.pattern.as_ref().is_none_or(|p| glob_match(p, k, false)) {
                out.push(Reply::bulk(k));
                out.push(Reply::bulk(v));
            }
        }
    }
    Reply::Array(vec![Reply::bulk_str(&next.to_string()), Reply::Array(out)])
}
