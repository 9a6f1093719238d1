//! Generic key commands: DEL, UNLINK, EXISTS, TOUCH, TYPE, the EXPIRE family, TTL
//! family, PERSIST, KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX, COPY.

use bytes::Bytes;

use super::{arg_int, argv, eq_ic, glob_match, parse_cursor, parse_scan_opts, pexpireat, Ctx};
use crate::db::{positions, SlotTable, SLOTS};
use crate::resp::Reply;
use crate::tri;

/// # Format
/// `DEL key [key ...]`, `UNLINK key [key ...]`
pub fn del(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let notify = ctx.state.config.notify.wants(crate::notify::GENERIC);
    let mut n = 0;
    for k in &args[1..] {
        if t.remove(k, ctx.now).is_some() {
            n += 1;
            if notify {
                ctx.deleted.push(k.clone());
            }
        }
    }
    ctx.noop = n == 0;
    Reply::Integer(n as i64)
}

/// # Format
/// `EXISTS key [key ...]`, `TOUCH key [key ...]`
pub fn exists(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let n = args[1..].iter().filter(|k| t.contains(k, ctx.now)).count();
    Reply::Integer(n as i64)
}

/// # Format
/// `TYPE key`
pub fn type_(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    Reply::simple(t.get(&args[1], ctx.now).map_or("none", |v| v.type_name()))
}

/// # Format
/// `EXPIRE key seconds [NX|XX|GT|LT]` (and `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`)
pub fn expire(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let (ms, abs, cname) = if eq_ic(name, "expire") {
        (false, false, "expire")
    } else if eq_ic(name, "pexpire") {
        (true, false, "pexpire")
    } else if eq_ic(name, "expireat") {
        (false, true, "expireat")
    } else {
        (true, true, "pexpireat")
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq_ic(a, "nx") {
            nx = true;
        } else if eq_ic(a, "xx") {
            xx = true;
        } else if eq_ic(a, "gt") {
            gt = true;
        } else if eq_ic(a, "lt") {
            lt = true;
        } else {
            return Reply::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::err("ERR GT and LT options at the same time are not compatible");
    }
    let when = tri!(arg_int(&args[2]));
    let invalid = || Reply::error(format!("ERR invalid expire time in '{cname}' command"));
    let when = if ms {
        when
    } else {
        match when.checked_mul(1000) {
            Some(w) => w,
            None => return invalid(),
        }
    };
    let at = if abs {
        when
    } else {
        match when.checked_add(ctx.now as i64) {
            Some(w) => w,
            None => return invalid(),
        }
    };
    let key = &args[1];
    let cur = t.expire_at(key);
    if !t.contains(key, ctx.now)
        || nx && cur.is_some()
        || xx && cur.is_none()
        || gt && cur.is_none_or(|c| at <= c as i64)
        || lt && cur.is_some_and(|c| at >= c as i64)
    {
        ctx.noop = true;
        return Reply::Integer(0);
    }
    if at <= ctx.now as i64 {
        t.remove(key, ctx.now);
        ctx.propagate(|| argv([b"DEL", key]));
    } else {
        t.set_expire_at(key, at as u64);
        ctx.propagate(|| pexpireat(key, at as u64));
    }
    Reply::Integer(1)
}

/// # Format
/// `TTL key`, `PTTL key`, `EXPIRETIME key`, `PEXPIRETIME key`
pub fn ttl(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let key = &args[1];
    if !t.contains(key, ctx.now) {
        return Reply::Integer(-2);
    }
    let Some(at) = t.expire_at(key) else {
        return Reply::Integer(-1);
    };
    let name = &args[0];
    let left = at.saturating_sub(ctx.now) as i64;
    Reply::Integer(if eq_ic(name, "ttl") {
        (left + 500) / 1000
    } else if eq_ic(name, "pttl") {
        left
    } else if eq_ic(name, "expiretime") {
        at as i64 / 1000
    } else {
        at as i64
    })
}

/// # Format
/// `PERSIST key`
pub fn persist(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let done = t.contains(key, ctx.now) && t.persist(key);
    ctx.noop = !done;
    Reply::Integer(done as i64)
}

/// # Format
/// `KEYS pattern` (the keys of this node)
pub fn keys(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let pat = &args[1];
    let all = &pat[..] == b"*";
    let mut out = Vec::new();
    for slot in ctx.state.db.nonempty_slots() {
        let mut t = ctx.state.db.lock(slot);
        // Like Redis, expired keys met on the way are deleted.
        t.remove_expired(ctx.now);
        for k in t.keys() {
            if !t.is_expired(k, ctx.now) && (all || glob_match(pat, k, false)) {
                out.push(Reply::bulk(k));
            }
        }
    }
    Reply::Array(out)
}

/// # Format
/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
///
/// The cursor is `position << 14 | slot`. Slots are walked in increasing order, empty
/// ones skipped through the node's bitmap of non-empty tables without locking them.
/// Within a slot's table the position is a [`positions`] cursor over the table's dense
/// positions (0: the slot is not started; `p`: positions `0..p` remain), so every key
/// present for the whole scan is returned at least once however the tables grow or
/// shrink between calls, and a call resumes in O(1). A call visits `COUNT` keys (fewer
/// at the end), across slots if needed; `MATCH` and `TYPE` filter what was visited.
pub fn scan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let cursor = tri!(parse_cursor(&args[1]));
    let o = tri!(parse_scan_opts(args, 2, true));
    let db = &ctx.state.db;
    let mut from = (cursor & (SLOTS as u64 - 1)) as usize;
    let mut pos = cursor >> 14;
    let mut budget = o.count;
    let mut out = Vec::new();
    let mut next = 0u64;
    while let Some(slot) = db.next_nonempty(from) {
        if usize::from(slot) != from {
            // The cursor's slot is empty now: the next one starts at its beginning.
            pos = 0;
        }
        let mut t = db.lock(slot);
        if pos == 0 {
            // Like Redis, expired keys met on the way are deleted.
            t.remove_expired(ctx.now);
        }
        let (rest, page) = positions::page(t.len(), pos, budget);
        budget -= page.len();
        for (k, v) in page.filter_map(|i| t.get_index(i)) {
            let ok = !t.is_expired(k, ctx.now)
                && o.pattern.as_ref().is_none_or(|p| glob_match(p, k, false))
                && o.type_name
                    .as_ref()
                    .is_none_or(|ty| eq_ic(ty, v.type_name()));
            if ok {
                out.push(Reply::bulk(k));
            }
        }
        drop(t);
        if rest != 0 {
            next = rest << 14 | u64::from(slot);
            break;
        }
        from = usize::from(slot) + 1;
        pos = 0;
        if budget == 0 {
            // Slot `s` not started is cursor `s` (never 0: `from` > 0 here).
            next = db.next_nonempty(from).map_or(0, u64::from);
            break;
        }
    }
    Reply::Array(vec![Reply::bulk_str(&next.to_string()), Reply::Array(out)])
}

/// Random picks `RANDOMKEY` makes before it looks for a live key slot by slot.
const RANDOM_TRIES: usize = 100;

/// # Format
/// `RANDOMKEY`
///
/// A slot picked uniformly among the non-empty ones (from the bitmap, O(1)), then a
/// random position in its table: O(1) with few keys or many. Keys are not equally likely
/// (a key of a sparse slot is picked more often), which Redis does not promise either.
/// Like Redis, an expired key picked is deleted and another one picked; after
/// [`RANDOM_TRIES`] of them (a node full of expired keys) the slots are walked in order,
/// their expired keys deleted, until one holds a live key.
pub fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let db = &ctx.state.db;
    for _ in 0..RANDOM_TRIES {
        let Some(slot) = db.random_nonempty() else {
            return Reply::Null;
        };
        let mut t = db.lock(slot);
        let Some((k, _)) = positions::one(t.len()).and_then(|i| t.get_index(i)) else {
            continue;
        };
        if !t.is_expired(k, ctx.now) {
            return Reply::bulk(k);
        }
        let k = k.to_vec();
        t.remove(&k, ctx.now);
    }
    for slot in db.nonempty_slots() {
        let mut t = db.lock(slot);
        t.remove_expired(ctx.now);
        if let Some((k, _)) = positions::one(t.len()).and_then(|i| t.get_index(i)) {
            return Reply::bulk(k);
        }
    }
    Reply::Null
}

/// # Format
/// `RENAME key newkey`, `RENAMENX key newkey`
pub fn rename(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let nx = eq_ic(&args[0], "renamenx");
    let (src, dst) = (&args[1], &args[2]);
    if !t.contains(src, ctx.now) {
        return Reply::err("ERR no such key");
    }
    if src == dst {
        ctx.noop = true;
        return if nx { Reply::Integer(0) } else { Reply::ok() };
    }
    if nx && t.contains(dst, ctx.now) {
        ctx.noop = true;
        return Reply::Integer(0);
    }
    let ttl = t.expire_at(src);
    let Some(v) = t.remove(src, ctx.now) else {
        return Reply::err("ERR no such key");
    };
    t.set(dst, v);
    if let Some(at) = ttl {
        t.set_expire_at(dst, at);
    }
    if nx {
        Reply::Integer(1)
    } else {
        Reply::ok()
    }
}

/// # Format
/// `COPY source destination [DB destination-db] [REPLACE]`
pub fn copy(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq_ic(&args[i], "replace") {
            replace = true;
            i += 1;
        } else if eq_ic(&args[i], "db") && i + 1 < args.len() {
            match arg_int(&args[i + 1]) {
                Ok(0) => {}
                Ok(_) => {
                    return Reply::err(
                        "ERR Copying to another database is not allowed in cluster mode",
                    )
                }
                Err(r) => return r,
            }
            i += 2;
        } else {
            return Reply::syntax();
        }
    }
    let (src, dst) = (&args[1], &args[2]);
    if src == dst {
        return Reply::err("ERR source and destination objects are the same");
    }
    let Some(v) = t.get(src, ctx.now).cloned() else {
        ctx.noop = true;
        return Reply::Integer(0);
    };
    if t.contains(dst, ctx.now) && !replace {
        ctx.noop = true;
        return Reply::Integer(0);
    }
    let ttl = t.expire_at(src);
    t.set(dst, v);
    if let Some(at) = ttl {
        t.set_expire_at(dst, at);
    }
    Reply::Integer(1)
}
