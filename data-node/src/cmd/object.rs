//! `OBJECT`: how a key's value is represented (in Redis's encoding names) and what it
//! remembers of its use (see [`crate::db::access`]).

use bytes::Bytes;

use super::{eq_ic, unknown_subcommand, Ctx};
use crate::db::{access, Value};
use crate::resp::Reply;

/// Redis's `OBJ_SHARED_INTEGERS`: integers below this are shared objects there.
const SHARED_INTEGERS: i64 = 10_000;

/// # Format
/// `OBJECT ENCODING key | FREQ key | IDLETIME key | REFCOUNT key | HELP`
pub fn object(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "help") {
        return super::server::help(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ]);
    }
    let Some(which) = ["encoding", "freq", "idletime", "refcount"]
        .into_iter()
        .find(|s| eq_ic(sub, s))
    else {
        return unknown_subcommand(sub, "OBJECT");
    };
    let key = &args[2];
    let slot = ember_core::key_slot(key);
    if let Err(e) = ctx.state.cluster.route(slot, ctx.client.readonly) {
        return Reply::error(e.to_string());
    }
    let lfu = access::lfu();
    if which == "freq" && !lfu {
        return Reply::err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    if which == "idletime" && lfu {
        return Reply::err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let now = ctx.now;
    let shared = shared_integers(ctx);
    ctx.state.db.with_slot(slot, |t| {
        let Some((value, bits)) = t.peek_with_access(key, now) else {
            return Reply::Null;
        };
        match which {
            "encoding" => Reply::bulk_str(encoding(value)),
            "freq" => Reply::Integer(i64::from(access::frequency(bits))),
            "idletime" => Reply::Integer(i64::from(access::idle_seconds(bits))),
            _ => Reply::Integer(match value {
                Value::Str(s)
                    if shared
                        && as_integer(s).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n)) =>
                {
                    i64::from(i32::MAX)
                }
                _ => 1,
            }),
        }
    })
}

/// Whether Redis would share small integer values here: unless `maxmemory` is set with
/// an LRU or LFU policy (each key must then keep its own access bits).
fn shared_integers(ctx: &Ctx) -> bool {
    let m = &ctx.state.config.memory;
    use crate::evict::Policy::*;
    m.maxmemory() == 0
        || !matches!(
            m.policy(),
            AllkeysLru | AllkeysLfu | VolatileLru | VolatileLfu
        )
}

/// `s` as Redis's `string2ll` reads integers: optional `-`, digits, no leading zero,
/// at most 20 bytes, in range.
fn as_integer(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || (digits[0] == b'0' && s.len() > 1) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The name Redis 7.0 gives the representation it would use for `v` (its default
/// thresholds: `hash-max-listpack-entries 128` and `-value 64`, `set-max-intset-entries
/// 512`, `zset-max-listpack-entries 128` and `-value 64`; strings: `int` if they read as
/// an integer, `embstr` up to 44 bytes). Redis keeps a collection's big encoding once it
/// has grown past them; this reports by the current size.
pub fn encoding(v: &Value) -> &'static str {
    const LISTPACK_ENTRIES: usize = 128;
    const LISTPACK_VALUE: usize = 64;
    const INTSET_ENTRIES: usize = 512;
    match v {
        Value::Str(s) if as_integer(s).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let small = h.len() <= LISTPACK_ENTRIES
                && h.iter()
                    .all(|(f, v)| f.len() <= LISTPACK_VALUE && v.len() <= LISTPACK_VALUE);
            if small {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) => {
            let ints = s.len() <= INTSET_ENTRIES && s.iter().all(|m| as_integer(m).is_some());
            if ints {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let small =
                z.len() <= LISTPACK_ENTRIES && z.iter().all(|(m, _)| m.len() <= LISTPACK_VALUE);
            if small {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}
