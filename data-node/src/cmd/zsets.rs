//! Sorted set commands: ZADD, ZINCRBY, ZSCORE, ZMSCORE, ZCARD, ZCOUNT, ZLEXCOUNT, ZRANK,
//! ZREVRANK, ZREM, ZRANGE (BYSCORE/BYLEX/REV/LIMIT/WITHSCORES) and the older
//! ZRANGEBYSCORE / ZREVRANGE / ZREVRANGEBYSCORE / ZRANGEBYLEX / ZREVRANGEBYLEX forms,
//! ZREMRANGEBYRANK/SCORE/LEX, ZPOPMIN, ZPOPMAX, ZMPOP, ZRANDMEMBER, ZSCAN.
//!
//! Scores are replied as doubles (`%.17g`, as Redis 7.0).

use std::ops::Range;

use bytes::Bytes;

use super::lists::positive_count;
use super::{
    arg_int, eq_ic, get_zset, get_zset_mut, glob_match, norm_range, parse_cursor, parse_f64,
    parse_scan_opts, Ctx,
};
use crate::db::positions::{self, SMALL};
use crate::db::{Key, SlotTable, ZSet};
use crate::resp::reply::fmt_double;
use crate::resp::Reply;
use crate::tri;

/// # Format
/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "nx") {
            nx = true;
        } else if eq_ic(a, "xx") {
            xx = true;
        } else if eq_ic(a, "gt") {
            gt = true;
        } else if eq_ic(a, "lt") {
            lt = true;
        } else if eq_ic(a, "ch") {
            ch = true;
        } else if eq_ic(a, "incr") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = args.len() - i;
    if !elements.is_multiple_of(2) || elements == 0 {
        return Reply::syntax();
    }
    if nx && xx {
        return Reply::err("ERR XX and NX options at the same time are not compatible");
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && elements > 2 {
        return Reply::err("ERR INCR option supports a single increment-element pair");
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for p in args[i..].chunks(2) {
        pairs.push((tri!(super::arg_float(&p[0])), &p[1]));
    }
    let key = &args[1];
    if tri!(get_zset(t, key, ctx.now)).is_none() && xx {
        ctx.noop = true;
        return if incr { Reply::Null } else { Reply::Integer(0) };
    }
    let z = tri!(get_zset_mut(t, key, ctx.now, true)).expect("created");
    let (mut added, mut changed) = (0, 0);
    let mut last: Option<f64> = None;
    for (score, member) in pairs {
        match z.score(member) {
            Some(cur) => {
                if nx {
                    continue;
                }
                let new = if incr { cur + score } else { score };
                if new.is_nan() {
                    t.remove_if_empty(key);
                    return Reply::err("ERR resulting score is not a number (NaN)");
                }
                if (gt && new <= cur) || (lt && new >= cur) {
                    continue;
                }
                if new != cur {
                    z.insert(member, new);
                    changed += 1;
                }
                last = Some(new);
            }
            None => {
                if xx {
                    continue;
                }
                z.insert(member, score);
                added += 1;
                last = Some(score);
            }
        }
    }
    t.remove_if_empty(key);
    ctx.noop = added + changed == 0;
    if incr {
        last.map_or(Reply::Null, Reply::Double)
    } else {
        Reply::Integer(if ch { added + changed } else { added })
    }
}

/// # Format
/// `ZINCRBY key increment member`
pub fn zincrby(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let by = tri!(super::arg_float(&args[2]));
    let key = &args[1];
    let z = tri!(get_zset_mut(t, key, ctx.now, true)).expect("created");
    let new = z.score(&args[3]).unwrap_or(0.0) + by;
    if new.is_nan() {
        t.remove_if_empty(key);
        return Reply::err("ERR resulting score is not a number (NaN)");
    }
    z.insert(&args[3], new);
    Reply::Double(new)
}

/// # Format
/// `ZSCORE key member`
pub fn zscore(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let z = tri!(get_zset(t, &args[1], ctx.now));
    z.and_then(|z| z.score(&args[2]))
        .map_or(Reply::Null, Reply::Double)
}

/// # Format
/// `ZMSCORE key member [member ...]`
pub fn zmscore(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let z = tri!(get_zset(t, &args[1], ctx.now));
    Reply::Array(
        args[2..]
            .iter()
            .map(|m| {
                z.and_then(|z| z.score(m))
                    .map_or(Reply::Null, Reply::Double)
            })
            .collect(),
    )
}

/// # Format
/// `ZCARD key`
pub fn zcard(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Integer(tri!(get_zset(t, &args[1], ctx.now)).map_or(0, |z| z.len()) as i64)
}

/// A score bound (`1.5`, `(1.5`, `-inf`, `+inf`).
#[derive(Clone, Copy)]
struct ScoreBound {
    v: f64,
    excl: bool,
}

fn parse_score_bound(b: &[u8]) -> Option<ScoreBound> {
    if let Some(rest) = b.strip_prefix(b"(") {
        parse_f64(rest).map(|v| ScoreBound { v, excl: true })
    } else {
        parse_f64(b).map(|v| ScoreBound { v, excl: false })
    }
}

fn score_range(min: &[u8], max: &[u8]) -> Result<(ScoreBound, ScoreBound), Reply> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Reply::err("ERR min or max is not a float")),
    }
}

impl ScoreBound {
    const ANY_MIN: ScoreBound = ScoreBound {
        v: f64::NEG_INFINITY,
        excl: false,
    };
    const ANY_MAX: ScoreBound = ScoreBound {
        v: f64::INFINITY,
        excl: false,
    };
}

/// The lowest (or, `max`, the highest) member and its score.
fn end(z: &ZSet, max: bool) -> Option<(Key, f64)> {
    let (m, s) = if max {
        z.iter().next_back()
    } else {
        z.iter().next()
    }?;
    Some((m.into(), s))
}

fn in_score(s: f64, min: ScoreBound, max: ScoreBound) -> bool {
    (if min.excl { s > min.v } else { s >= min.v })
        && (if max.excl { s < max.v } else { s <= max.v })
}

#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

fn parse_lex_bound(b: &Bytes) -> Option<LexBound> {
    match b.first() {
        Some(b'+') if b.len() == 1 => Some(LexBound::Max),
        Some(b'-') if b.len() == 1 => Some(LexBound::Min),
        Some(b'[') => Some(LexBound::Incl(b.slice(1..))),
        Some(b'(') => Some(LexBound::Excl(b.slice(1..))),
        _ => None,
    }
}

fn lex_range(min: &Bytes, max: &Bytes) -> Result<(LexBound, LexBound), Reply> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Reply::err("ERR min or max not valid string range item")),
    }
}

fn gte_min(m: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Incl(b) => m >= &b[..],
        LexBound::Excl(b) => m > &b[..],
    }
}

fn lte_max(m: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Incl(b) => m <= &b[..],
        LexBound::Excl(b) => m < &b[..],
    }
}

/// Redis's `zslIsInLexRange` negated: the range is empty, or the set's last member is
/// below it, or its first member above it.
fn lex_outside(z: &ZSet, min: &LexBound, max: &LexBound) -> bool {
    use std::cmp::Ordering::*;
    fn key(b: &LexBound) -> (i32, &[u8], bool) {
        match b {
            LexBound::Min => (0, &b""[..], false),
            LexBound::Max => (2, &b""[..], false),
            LexBound::Incl(x) => (1, &x[..], false),
            LexBound::Excl(x) => (1, &x[..], true),
        }
    }
    let (a, b) = (key(min), key(max));
    let cmp = (a.0, a.1).cmp(&(b.0, b.1));
    if cmp == Greater || (cmp == Equal && (a.2 || b.2)) {
        return true;
    }
    match (z.iter().next(), z.iter().next_back()) {
        (Some((first, _)), Some((last, _))) => !gte_min(last, min) || !lte_max(first, max),
        _ => true,
    }
}

/// # Format
/// `ZCOUNT key min max`
pub fn zcount(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (min, max) = tri!(score_range(&args[2], &args[3]));
    let z = tri!(get_zset(t, &args[1], ctx.now));
    Reply::Integer(z.map_or(0, |z| ranks(z, &Kind::Score(min, max), false).len()) as i64)
}

/// # Format
/// `ZLEXCOUNT key min max`
pub fn zlexcount(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (min, max) = tri!(lex_range(&args[2], &args[3]));
    let z = tri!(get_zset(t, &args[1], ctx.now));
    Reply::Integer(z.map_or(0, |z| ranks(z, &Kind::Lex(min, max), false).len()) as i64)
}

/// # Format
/// `ZRANK key member`, `ZREVRANK key member`
pub fn zrank(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let rev = eq_ic(&args[0], "zrevrank");
    let Some(z) = tri!(get_zset(t, &args[1], ctx.now)) else {
        return Reply::Null;
    };
    match z.rank(&args[2]) {
        Some(r) => Reply::Integer(if rev { z.len() - 1 - r } else { r } as i64),
        None => Reply::Null,
    }
}

/// # Format
/// `ZREM key member [member ...]`
pub fn zrem(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let Some(z) = tri!(get_zset_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    let n = args[2..].iter().filter(|m| z.remove(m)).count();
    ctx.noop = n == 0;
    t.remove_if_empty(&args[1]);
    Reply::Integer(n as i64)
}

enum Kind {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// The ascending ranks `kind` selects, in O(log n) (`rev`: a rank range counts from the
/// end, as `ZREVRANGE`'s).
fn ranks(z: &ZSet, kind: &Kind, rev: bool) -> Range<usize> {
    let len = z.len();
    match kind {
        Kind::Rank(start, stop) => match norm_range(*start, *stop, len) {
            Some((s, e)) if rev => len - 1 - e..len - s,
            Some((s, e)) => s..e + 1,
            None => 0..0,
        },
        Kind::Score(min, max) => {
            let lo = z.count_while(|s, _| !in_score(s, *min, ScoreBound::ANY_MAX));
            let hi = z.count_while(|s, _| in_score(s, ScoreBound::ANY_MIN, *max));
            lo..hi.max(lo)
        }
        Kind::Lex(min, max) if lex_outside(z, min, max) => 0..0,
        // Small sets are walked member by member, as Redis walks its compact encoding:
        // with mixed scores (where lex ranges are unspecified) both then agree exactly.
        Kind::Lex(min, max) if len <= SMALL && rev => {
            let end = len - z.iter().rev().take_while(|(m, _)| !lte_max(m, max)).count();
            let n = z
                .range(0..end)
                .rev()
                .take_while(|(m, _)| gte_min(m, min))
                .count();
            end - n..end
        }
        Kind::Lex(min, max) if len <= SMALL => {
            let start = z.iter().take_while(|(m, _)| !gte_min(m, min)).count();
            let n = z
                .range(start..len)
                .take_while(|(m, _)| lte_max(m, max))
                .count();
            start..start + n
        }
        Kind::Lex(min, max) => {
            let lo = z.count_while(|_, m| !gte_min(m, min));
            let hi = z.count_while(|_, m| lte_max(m, max));
            lo..hi.max(lo)
        }
    }
}

/// Members (with scores) selected by `kind`, in the requested direction, after
/// `LIMIT offset count`: O(log n + m).
fn select<'a>(
    z: &'a ZSet,
    kind: &Kind,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> Vec<(&'a [u8], f64)> {
    let Range { start, end } = ranks(z, kind, rev);
    let (offset, count) = match limit {
        Some((off, _)) if off < 0 => return Vec::new(),
        Some((off, count)) => (
            usize::try_from(off).unwrap_or(usize::MAX),
            usize::try_from(count).unwrap_or(usize::MAX),
        ),
        None => (0, usize::MAX),
    };
    let n = end - start;
    if offset >= n {
        return Vec::new();
    }
    let take = count.min(n - offset);
    if rev {
        z.range(end - offset - take..end - offset).rev().collect()
    } else {
        z.range(start + offset..start + offset + take).collect()
    }
}

fn with_scores(items: Vec<(&[u8], f64)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::bulk(m)).collect());
    }
    if resp3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::bulk(m), Reply::Double(s)]))
                .collect(),
        )
    } else {
        let mut out = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            out.push(Reply::bulk(m));
            out.push(Reply::Double(s));
        }
        Reply::Array(out)
    }
}

/// # Format
/// `ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`,
/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`,
/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`,
/// `ZREVRANGE key start stop [WITHSCORES]`, `ZRANGEBYLEX key min max [LIMIT offset count]`,
/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`
pub fn zrange(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    #[derive(PartialEq, Clone, Copy)]
    enum RT {
        Auto,
        Rank,
        Score,
        Lex,
    }
    let name = &args[0];
    let (mut rt, mut rev, fixed_rt, fixed_dir) = if eq_ic(name, "zrange") {
        (RT::Auto, false, false, false)
    } else if eq_ic(name, "zrangebyscore") {
        (RT::Score, false, true, true)
    } else if eq_ic(name, "zrevrangebyscore") {
        (RT::Score, true, true, true)
    } else if eq_ic(name, "zrevrange") {
        (RT::Rank, true, true, true)
    } else if eq_ic(name, "zrangebylex") {
        (RT::Lex, false, true, true)
    } else {
        (RT::Lex, true, true, true)
    };
    let mut withscores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut j = 4;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            let off = tri!(arg_int(&args[j + 1]));
            let cnt = tri!(arg_int(&args[j + 2]));
            limit = Some((off, cnt));
            j += 2;
        } else if !fixed_dir && eq_ic(a, "rev") {
            rev = true;
        } else if !fixed_rt && eq_ic(a, "bylex") {
            rt = RT::Lex;
        } else if !fixed_rt && eq_ic(a, "byscore") {
            rt = RT::Score;
        } else {
            return Reply::syntax();
        }
        j += 1;
    }
    if rt == RT::Auto {
        rt = RT::Rank;
    }
    if limit.is_some_and(|(_, c)| c != -1) && rt == RT::Rank {
        return Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && rt == RT::Lex {
        return Reply::err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut a, mut b) = (&args[2], &args[3]);
    if rev && rt != RT::Rank {
        std::mem::swap(&mut a, &mut b);
    }
    let kind = match rt {
        RT::Score => {
            let (min, max) = tri!(score_range(a, b));
            Kind::Score(min, max)
        }
        RT::Lex => {
            let (min, max) = tri!(lex_range(a, b));
            Kind::Lex(min, max)
        }
        _ => Kind::Rank(tri!(arg_int(a)), tri!(arg_int(b))),
    };
    let Some(z) = tri!(get_zset(t, &args[1], ctx.now)) else {
        return Reply::Array(vec![]);
    };
    let items = select(z, &kind, rev, if rt == RT::Rank { None } else { limit });
    with_scores(items, withscores, ctx.client.resp3)
}

/// # Format
/// `ZREMRANGEBYRANK key start stop`, `ZREMRANGEBYSCORE key min max`,
/// `ZREMRANGEBYLEX key min max`
pub fn zremrange(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let kind = if eq_ic(name, "zremrangebyrank") {
        Kind::Rank(tri!(arg_int(&args[2])), tri!(arg_int(&args[3])))
    } else if eq_ic(name, "zremrangebyscore") {
        let (min, max) = tri!(score_range(&args[2], &args[3]));
        Kind::Score(min, max)
    } else {
        let (min, max) = tri!(lex_range(&args[2], &args[3]));
        Kind::Lex(min, max)
    };
    let Some(z) = tri!(get_zset_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    let victims: Vec<Box<[u8]>> = select(z, &kind, false, None)
        .into_iter()
        .map(|(m, _)| m.into())
        .collect();
    for m in &victims {
        z.remove(m);
    }
    t.remove_if_empty(&args[1]);
    ctx.noop = victims.is_empty();
    Reply::Integer(victims.len() as i64)
}

/// # Format
/// `ZPOPMIN key [count]`, `ZPOPMAX key [count]`
pub fn zpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::syntax();
    }
    let max = eq_ic(&args[0], "zpopmax");
    let count = if args.len() == 3 {
        Some(tri!(positive_count(&args[2])))
    } else {
        None
    };
    let Some(z) = tri!(get_zset_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Array(vec![]);
    };
    let n = count.unwrap_or(1);
    let mut popped = Vec::new();
    for _ in 0..n {
        let Some((m, s)) = end(z, max) else { break };
        z.remove(&m);
        popped.push((m, s));
    }
    t.remove_if_empty(&args[1]);
    ctx.noop = popped.is_empty();
    let nested = ctx.client.resp3 && count.is_some();
    let mut out = Vec::new();
    for (m, s) in popped {
        if nested {
            out.push(Reply::Array(vec![Reply::bulk(&m), Reply::Double(s)]));
        } else {
            out.push(Reply::bulk(&m));
            out.push(Reply::Double(s));
        }
    }
    Reply::Array(out)
}

/// # Format
/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
pub fn zscan(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let cursor = tri!(parse_cursor(&args[2]));
    let o = tri!(parse_scan_opts(args, 3, false));
    let z = tri!(get_zset(t, &args[1], ctx.now));
    let Some(z) = z else {
        return Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(vec![])]);
    };
    let (next, page) = positions::scan(z.len(), cursor, o.count);
    let mut out = Vec::new();
    for (m, s) in page.map(|i| z.at(i)) {
        if o.pattern.as_ref().is_none_or(|p| glob_match(p, m, false)) {
            out.push(Reply::bulk(m));
            out.push(Reply::bulk(fmt_double(s).as_bytes()));
        }
    }
    Reply::Array(vec![Reply::bulk_str(&next.to_string()), Reply::Array(out)])
}

/// Parses `numkeys key [key ...] <where> [COUNT count]` (`LMPOP`, `ZMPOP`) from
/// `args[1]`: the keys, whether `where` is the first of `ends` (`LEFT|RIGHT`,
/// `MIN|MAX`), and the count (1 when absent). Errors as Redis's.
pub fn parse_mpop<'a>(
    args: &'a [Bytes],
    ends: [&str; 2],
) -> Result<(&'a [Bytes], bool, usize), Reply> {
    let n = match crate::resp::parse::parse_i64(&args[1]) {
        Some(n) if n > 0 => n as u64,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    if n > (args.len() - 2) as u64 {
        return Err(Reply::syntax());
    }
    let n = n as usize;
    let keys = &args[2..2 + n];
    let Some(end) = args.get(2 + n) else {
        return Err(Reply::syntax());
    };
    let first = if eq_ic(end, ends[0]) {
        true
    } else if eq_ic(end, ends[1]) {
        false
    } else {
        return Err(Reply::syntax());
    };
    let mut count = None;
    let mut i = 3 + n;
    while i < args.len() {
        if eq_ic(&args[i], "count") && count.is_none() && i + 1 < args.len() {
            match crate::resp::parse::parse_i64(&args[i + 1]) {
                Some(c) if c > 0 => count = Some(usize::try_from(c).unwrap_or(usize::MAX)),
                _ => return Err(Reply::err("ERR count should be greater than 0")),
            }
            i += 2;
        } else {
            return Err(Reply::syntax());
        }
    }
    Ok((keys, first, count.unwrap_or(1)))
}

/// # Format
/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`
///
/// Pops from the first non-empty sorted set: `[key, [[member, score], ...]]`, or a null
/// array when every set is empty.
pub fn zmpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (keys, min, count) = tri!(parse_mpop(args, ["min", "max"]));
    for key in keys {
        let Some(z) = tri!(get_zset_mut(t, key, ctx.now, false)) else {
            continue;
        };
        let mut popped = Vec::new();
        while popped.len() < count {
            let Some((m, s)) = end(z, !min) else { break };
            z.remove(&m);
            popped.push(Reply::Array(vec![Reply::bulk(&m), Reply::Double(s)]));
        }
        t.remove_if_empty(key);
        return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(popped)]);
    }
    ctx.noop = true;
    Reply::NullArray
}

/// # Format
/// `ZRANDMEMBER key [count [WITHSCORES]]`
///
/// As `HRANDFIELD`: the count is checked first; a negative count repeats members, at
/// most [`MAX_RANDOM_REPEATS`](super::MAX_RANDOM_REPEATS); with `WITHSCORES`, RESP3
/// gets `[member, score]` pairs, RESP2 a flat list.
pub fn zrandmember(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let withscores = args.len() == 4;
    let count = if args.len() >= 3 {
        Some(tri!(super::random_count(&args[2], withscores)))
    } else {
        None
    };
    if args.len() > 4 || (withscores && !eq_ic(&args[3], "withscores")) {
        return Reply::syntax();
    }
    let Some(z) = tri!(get_zset(t, &args[1], ctx.now)) else {
        return if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Null
        };
    };
    let Some(count) = count else {
        return positions::one(z.len()).map_or(Reply::Null, |i| Reply::bulk(z.at(i).0));
    };
    let picks: Vec<(&[u8], f64)> = positions::random(z.len(), count)
        .into_iter()
        .map(|i| z.at(i))
        .collect();
    if !withscores {
        return Reply::Array(picks.into_iter().map(|(m, _)| Reply::bulk(m)).collect());
    }
    super::hashes::pairs_reply(
        picks
            .into_iter()
            .map(|(m, s)| (Reply::bulk(m), Reply::Double(s))),
        ctx.client.resp3,
    )
}
