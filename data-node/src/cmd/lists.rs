//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE, LINDEX, LSET,
//! LINSERT, LREM, LTRIM, LMOVE, RPOPLPUSH, LPOS, LMPOP.

use bytes::Bytes;

use super::{arg_int, eq_ic, get_list, get_list_mut, norm_range, Ctx};
use crate::db::SlotTable;
use crate::resp::parse::parse_i64;
use crate::resp::Reply;
use crate::tri;

/// # Format
/// `LPUSH key element [element ...]` (and `RPUSH`, `LPUSHX`, `RPUSHX`)
pub fn push(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let left = name[0].eq_ignore_ascii_case(&b'l');
    let x = name.len() == 6;
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, !x)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    for e in &args[2..] {
        if left {
            l.push_front(e[..].into());
        } else {
            l.push_back(e[..].into());
        }
    }
    Reply::Integer(l.len() as i64)
}

/// A positive count argument (`ERR value is out of range, must be positive`).
pub fn positive_count(b: &[u8]) -> Result<usize, Reply> {
    match parse_i64(b) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(Reply::err("ERR value is out of range, must be positive")),
    }
}

/// # Format
/// `LPOP key [count]`, `RPOP key [count]`
pub fn pop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::arity(if eq_ic(&args[0], "lpop") {
            "lpop"
        } else {
            "rpop"
        });
    }
    let left = eq_ic(&args[0], "lpop");
    let count = if args.len() == 3 {
        Some(tri!(positive_count(&args[2])))
    } else {
        None
    };
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return if count.is_some() {
            Reply::NullArray
        } else {
            Reply::Null
        };
    };
    ctx.noop = count == Some(0);
    let mut pop1 = || if left { l.pop_front() } else { l.pop_back() };
    let r = match count {
        None => pop1().map_or(Reply::Null, |v| Reply::bulk(&v)),
        Some(n) => {
            let mut out = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                match pop1() {
                    Some(v) => out.push(Reply::bulk(&v)),
                    None => break,
                }
            }
            Reply::Array(out)
        }
    };
    t.remove_if_empty(&args[1]);
    r
}

/// # Format
/// `LLEN key`
pub fn llen(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::Integer(tri!(get_list(t, &args[1], ctx.now)).map_or(0, |l| l.len()) as i64)
}

/// # Format
/// `LRANGE key start stop`
pub fn lrange(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let start = tri!(arg_int(&args[2]));
    let stop = tri!(arg_int(&args[3]));
    let Some(l) = tri!(get_list(t, &args[1], ctx.now)) else {
        return Reply::Array(vec![]);
    };
    match norm_range(start, stop, l.len()) {
        Some((s, e)) => Reply::Array(l.range(s..=e).map(|v| Reply::bulk(v)).collect()),
        None => Reply::Array(vec![]),
    }
}

fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (i >= 0 && (i as usize) < len).then_some(i as usize)
}

/// # Format
/// `LINDEX key index`
pub fn lindex(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let Some(l) = tri!(get_list(t, &args[1], ctx.now)) else {
        return Reply::Null;
    };
    let i = tri!(arg_int(&args[2]));
    match index(i, l.len()) {
        Some(i) => Reply::bulk(&l[i]),
        None => Reply::Null,
    }
}

/// # Format
/// `LSET key index element`
pub fn lset(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, false)) else {
        return Reply::err("ERR no such key");
    };
    let i = tri!(arg_int(&args[2]));
    match index(i, l.len()) {
        Some(i) => {
            l[i] = args[3][..].into();
            Reply::ok()
        }
        None => Reply::err("ERR index out of range"),
    }
}

/// # Format
/// `LINSERT key BEFORE|AFTER pivot element`
pub fn linsert(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let after = if eq_ic(&args[2], "after") {
        true
    } else if eq_ic(&args[2], "before") {
        false
    } else {
        return Reply::syntax();
    };
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    match l.iter().position(|e| e[..] == args[3][..]) {
        Some(p) => {
            l.insert(if after { p + 1 } else { p }, args[4][..].into());
            Reply::Integer(l.len() as i64)
        }
        None => {
            ctx.noop = true;
            Reply::Integer(-1)
        }
    }
}

/// # Format
/// `LREM key count element`
pub fn lrem(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let count = tri!(arg_int(&args[2]));
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    let el = &args[3][..];
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < l.len() && removed < limit {
            if l[i][..] == *el {
                l.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = l.len();
        while i > 0 && removed < limit {
            i -= 1;
            if l[i][..] == *el {
                l.remove(i);
                removed += 1;
            }
        }
    }
    t.remove_if_empty(&args[1]);
    ctx.noop = removed == 0;
    Reply::Integer(removed as i64)
}

/// # Format
/// `LTRIM key start stop`
pub fn ltrim(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let start = tri!(arg_int(&args[2]));
    let stop = tri!(arg_int(&args[3]));
    let Some(l) = tri!(get_list_mut(t, &args[1], ctx.now, false)) else {
        ctx.noop = true;
        return Reply::ok();
    };
    match norm_range(start, stop, l.len()) {
        Some((s, e)) => {
            l.truncate(e + 1);
            l.drain(..s);
        }
        None => l.clear(),
    }
    t.remove_if_empty(&args[1]);
    Reply::ok()
}

/// # Format
/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`, `RPOPLPUSH source destination`
pub fn lmove(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let dir = |b: &[u8]| {
        if eq_ic(b, "left") {
            Some(true)
        } else if eq_ic(b, "right") {
            Some(false)
        } else {
            None
        }
    };
    let (from_left, to_left) = if args.len() == 5 {
        match (dir(&args[3]), dir(&args[4])) {
            (Some(a), Some(b)) => (a, b),
            _ => return Reply::syntax(),
        }
    } else {
        (false, true)
    };
    let (src, dst) = (&args[1], &args[2]);
    if tri!(get_list(t, src, ctx.now)).is_none() {
        ctx.noop = true;
        return Reply::Null;
    }
    tri!(get_list(t, dst, ctx.now));
    let l = tri!(get_list_mut(t, src, ctx.now, false)).expect("checked");
    let Some(v) = (if from_left {
        l.pop_front()
    } else {
        l.pop_back()
    }) else {
        return Reply::Null;
    };
    let r = Reply::bulk(&v);
    let d = tri!(get_list_mut(t, dst, ctx.now, true)).expect("created");
    if to_left {
        d.push_front(v);
    } else {
        d.push_back(v);
    }
    t.remove_if_empty(src);
    r
}

/// # Format
/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub fn lpos(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Reply::syntax();
        }
        let v = parse_i64(&args[i + 1]);
        if eq_ic(&args[i], "rank") {
            match v {
                None => return Reply::not_integer(),
                Some(0) => return Reply::err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"),
                Some(i64::MIN) => return Reply::err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
                Some(v) => rank = v,
            }
        } else if eq_ic(&args[i], "count") {
            match v {
                Some(v) if v >= 0 => count = Some(v as usize),
                _ => return Reply::err("ERR COUNT can't be negative"),
            }
        } else if eq_ic(&args[i], "maxlen") {
            match v {
                Some(v) if v >= 0 => maxlen = v as usize,
                _ => return Reply::err("ERR MAXLEN can't be negative"),
            }
        } else {
            return Reply::syntax();
        }
        i += 2;
    }
    let Some(l) = tri!(get_list(t, &args[1], ctx.now)) else {
        return if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Null
        };
    };
    let el = &args[2][..];
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let n = l.len();
    let limit = if maxlen == 0 { n } else { maxlen.min(n) };
    for j in 0..limit {
        let idx = if rank > 0 { j } else { n - 1 - j };
        if l[idx][..] == *el {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(idx as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Integer).collect()),
        None => found.first().map_or(Reply::Null, |&i| Reply::Integer(i)),
    }
}

/// # Format
/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`
///
/// Pops from the first non-empty list: `[key, [element, ...]]`, or a null array when
/// every list is empty.
pub fn lmpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (keys, left, count) = tri!(super::zsets::parse_mpop(args, ["left", "right"]));
    for key in keys {
        let Some(l) = tri!(get_list_mut(t, key, ctx.now, false)) else {
            continue;
        };
        let n = count.min(l.len());
        let popped: Vec<Reply> = if left {
            l.drain(..n).map(|v| Reply::bulk(&v)).collect()
        } else {
            let at = l.len() - n;
            l.drain(at..).rev().map(|v| Reply::bulk(&v)).collect()
        };
        t.remove_if_empty(key);
        return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(popped)]);
    }
    ctx.noop = true;
    Reply::NullArray
}
