//! Set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SMEMBERS, SCARD, SPOP, SRANDMEMBER,
//! SINTER, SUNION, SDIFF (and their STORE forms), SMOVE, SSCAN, SINTERCARD.

use bytes::Bytes;

use super::lists::positive_count;
use super::{eq_ic, get_set, get_set_mut, glob_match, parse_cursor, parse_scan_opts, Ctx, SetVal};
use crate::db::{positions, SlotTable, Value};
use crate::resp::Reply;
use crate::tri;

/// # Format
/// `SADD key member [member ...]`
pub fn sadd(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let s = tri!(get_set_mut(t, &args[1], ctx.now, true)).expect("created");
    let n = args[2..].iter().filter(|m| s.insert(m)).count();
    ctx.noop = n == 0;
    Reply::Integer(n as i64)
}

/// # Format
/// `SREM key member [member ...]`
pub fn srem(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let Some(s) = tri!(get_set_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    let n = args[2..].iter().filter(|m| s.remove(m)).count();
    ctx.noop = n == 0;
    t.remove_if_empty(&args[1]);
    Reply::Integer(n as i64)
}

/// # Format
/// `SISMEMBER key member`
pub fn sismember(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let s = tri!(get_set(t, &args[1], ctx.now));
    Reply::Integer(s.is_some_and(|s| s.contains(&args[2][..])) as i64)
}

/// # Format
/// `SMISMEMBER key member [member ...]`
pub fn smismember(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let s = tri!(get_set(t, &args[1], ctx.now));
    Reply::Array(
        args[2..]
            .iter()
            .map(|m| Reply::Integer(s.is_some_and(|s| s.contains(&m[..])) as i64))
            .collect(),
    )
}

fn members(s: &SetVal) -> Reply {
    Reply::Set(s.iter().map(Reply::bulk).collect())
}

/// # Format
/// `SMEMBERS key`
pub fn smembers(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    match tri!(get_set(t, &args[1], ctx.now)) {
        Some(s) => members(s),
        None => Reply::Set(vec![]),
    }
}

/// # Format
/// `SCARD key`
pub fn scard(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Integer(tri!(get_set(t, &args[1], ctx.now)).map_or(0, |s| s.len()) as i64)
}

/// # Format
/// `SPOP key [count]`
///
/// O(1), or O(count): each pop removes a random position (its place is taken by the
/// last member), so the members popped are a uniformly random subset. A count of at
/// least the set's size pops the whole set.
pub fn spop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::syntax();
    }
    let count = if args.len() == 3 {
        Some(tri!(positive_count(&args[2])))
    } else {
        None
    };
    let Some(s) = tri!(get_set_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return if count.is_some() {
            Reply::Set(vec![])
        } else {
            Reply::Null
        };
    };
    ctx.noop = count == Some(0);
    let n = count.unwrap_or(1).min(s.len());
    let all = n == s.len();
    let picked = if all {
        s.take_all()
    } else {
        (0..n)
            .map(|_| {
                let i = positions::one(s.len()).expect("a member is left");
                s.swap_remove_index(i)
            })
            .collect()
    };
    t.remove_if_empty(&args[1]);
    // Propagated as what it did: the key gone, or `SREM`s of the members chosen (in
    // batches, as Redis does).
    if all {
        ctx.propagate(|| super::argv([b"DEL", &args[1]]));
    } else {
        for batch in picked.chunks(SREM_BATCH) {
            ctx.propagate(|| {
                let mut srem = super::argv([b"SREM", &args[1]]);
                srem.extend(batch.iter().map(|m| Bytes::copy_from_slice(m)));
                srem
            });
        }
    }
    match count {
        None => picked.first().map_or(Reply::Null, |m| Reply::bulk(m)),
        Some(_) => Reply::Set(picked.iter().map(|m| Reply::bulk(m)).collect()),
    }
}

/// Members per `SREM` that `SPOP` propagates.
const SREM_BATCH: usize = 1024;

/// # Format
/// `SRANDMEMBER key [count]` (a negative count repeats members, at most
/// [`MAX_RANDOM_REPEATS`](super::MAX_RANDOM_REPEATS) of them)
///
/// O(1), or O(|count|): random positions ([`positions::random`]).
pub fn srandmember(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::syntax();
    }
    let count = if args.len() == 3 {
        Some(tri!(super::random_count(&args[2], false)))
    } else {
        None
    };
    let Some(s) = tri!(get_set(t, &args[1], ctx.now)) else {
        return if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Null
        };
    };
    match count {
        None => positions::one(s.len())
            .and_then(|i| s.get_index(i))
            .map_or(Reply::Null, Reply::bulk),
        Some(c) => Reply::Array(
            positions::random(s.len(), c)
                .into_iter()
                .filter_map(|i| s.get_index(i))
                .map(Reply::bulk)
                .collect(),
        ),
    }
}

/// The set operation over `keys`; `None` for a missing key is the empty set.
fn compute(t: &mut SlotTable, keys: &[Bytes], now: u64, op: u8) -> Result<SetVal, Reply> {
    let mut sets: Vec<Option<SetVal>> = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(get_set(t, k, now)?.cloned());
    }
    let mut it = sets.into_iter();
    let mut acc = it.next().flatten().unwrap_or_default();
    for s in it {
        match op {
            b'i' => match s {
                Some(s) => acc.retain(|m| s.contains(m)),
                None => acc.clear(),
            },
            b'u' => {
                if let Some(s) = s {
                    acc.extend(s.iter());
                }
            }
            _ => {
                if let Some(s) = s {
                    acc.retain(|m| !s.contains(m));
                }
            }
        }
    }
    Ok(acc)
}

/// # Format
/// `SINTER key [key ...]`, `SUNION ...`, `SDIFF ...`,
/// `SINTERSTORE destination key [key ...]`, `SUNIONSTORE ...`, `SDIFFSTORE ...`
pub fn setop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let op = name[1].to_ascii_lowercase();
    let store = name.len() > 6;
    let keys = if store { &args[2..] } else { &args[1..] };
    let r = tri!(compute(t, keys, ctx.now, op));
    if store {
        let n = r.len();
        let existed = t.remove(&args[1], ctx.now).is_some();
        ctx.noop = n == 0 && !existed;
        if n > 0 {
            t.set(&args[1], Value::Set(Box::new(r)));
        }
        Reply::Integer(n as i64)
    } else {
        members(&r)
    }
}

/// # Format
/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`
pub fn sintercard(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let n = super::parse_i64_arg(&args[1]).unwrap_or(0) as usize;
    let keys = &args[2..2 + n];
    let mut limit = 0usize;
    let mut i = 2 + n;
    while i < args.len() {
        if eq_ic(&args[i], "limit") && i + 1 < args.len() {
            match crate::resp::parse::parse_i64(&args[i + 1]) {
                Some(l) if l >= 0 => limit = l as usize,
                _ => return Reply::err("ERR LIMIT can't be negative"),
            }
            i += 2;
        } else {
            return Reply::syntax();
        }
    }
    let r = tri!(compute(t, keys, ctx.now, b'i'));
    let c = if limit > 0 {
        r.len().min(limit)
    } else {
        r.len()
    };
    Reply::Integer(c as i64)
}

/// # Format
/// `SMOVE source destination member`
pub fn smove(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (src, dst, m) = (&args[1], &args[2], &args[3][..]);
    let has = match tri!(get_set(t, src, ctx.now)) {
        Some(s) => s.contains(m),
        None => {
            ctx.noop = true;
            return Reply::Integer(0);
        }
    };
    tri!(get_set(t, dst, ctx.now));
    if !has || src == dst {
        // Nothing moves: no key is touched (a WATCH on either still holds).
        ctx.noop = true;
        return Reply::Integer(has as i64);
    }
    if let Some(s) = tri!(get_set_mut(t, src, ctx.now, false)) {
        s.remove(m);
    }
    t.remove_if_empty(src);
    tri!(get_set_mut(t, dst, ctx.now, true))
        .expect("created")
        .insert(m);
    Reply::Integer(1)
}

/// # Format
/// `SSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// The cursor is a position ([`positions::scan`]): every member present for the whole
/// scan is returned, whatever is added or removed between calls.
pub fn sscan(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let cursor = tri!(parse_cursor(&args[2]));
    let o = tri!(parse_scan_opts(args, 3, false));
    let mut next = 0;
    let mut out = Vec::new();
    if let Some(s) = tri!(get_set(t, &args[1], ctx.now)) {
        let (n, page) = positions::scan(s.len(), cursor, o.count);
        next = n;
        for m in page.filter_map(|i| s.get_index(i)) {
            if o.pattern.as_ref().is_none_or(|p| glob_match(p, m, false)) {
                out.push(Reply::bulk(m));
            }
        }
    }
    Reply::Array(vec![Reply::bulk_str(&next.to_string()), Reply::Array(out)])
}
