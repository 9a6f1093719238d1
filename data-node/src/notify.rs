//! Keyspace notifications (`notify-keyspace-events`), as Redis 7.0 sends them: after a
//! write changed a key, `__keyspace@0__:<key>` gets the event's name and
//! `__keyevent@0__:<event>` gets the key, each if its flag (`K`, `E`) and the event's
//! class (`g$lshzx`) are enabled. Local to the node, as in Redis Cluster.
//!
//! Which event a command raises is decided here from the command, its arguments and the
//! keys afterwards ([`events`]), not by each handler: the command's name for most, the
//! exceptions in one table (`SETEX` → `set` + `expire`, `INCR` → `incrby`, `SMOVE` →
//! `srem` + `sadd` ...), and a `del` when a collection command left its key empty.
//! `DEL`/`UNLINK` say which keys they removed ([`crate::cmd::Ctx::deleted`]).

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

pub const GENERIC: u32 = 1 << 0;
pub const STRING: u32 = 1 << 1;
pub const LIST: u32 = 1 << 2;
pub const SET: u32 = 1 << 3;
pub const HASH: u32 = 1 << 4;
pub const ZSET: u32 = 1 << 5;
pub const EXPIRED: u32 = 1 << 6;
pub const EVICTED: u32 = 1 << 7;
pub const STREAM: u32 = 1 << 8;
pub const MODULE: u32 = 1 << 9;
pub const NEW: u32 = 1 << 10;
pub const KEYSPACE: u32 = 1 << 11;
pub const KEYEVENT: u32 = 1 << 12;
pub const MISS: u32 = 1 << 13;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The class letters in the order Redis prints them (`A` stands for all of [`ALL`]).
const CLASSES: [(char, u32); 11] = [
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('n', NEW),
];

/// `notify-keyspace-events` as flags; `None` for a character Redis does not know.
pub fn parse(s: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in s {
        flags |= match c {
            b'A' => ALL,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b'm' => MISS,
            _ => CLASSES.iter().find(|(l, _)| *l as u8 == c)?.1,
        };
    }
    Some(flags)
}

/// Flags as `CONFIG GET` prints them (Redis's order and quirks: `n` is not shown with `A`).
pub fn format(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        s.extend(
            CLASSES
                .iter()
                .filter(|(_, f)| flags & f != 0)
                .map(|(c, _)| c),
        );
    }
    for (c, f) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', MISS)] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

/// The node's setting.
#[derive(Debug, Default)]
pub struct Notify {
    flags: AtomicU32,
}

impl Notify {
    pub fn set(&self, flags: u32) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Whether events of `class` are sent anywhere.
    pub fn wants(&self, class: u32) -> bool {
        let f = self.flags();
        f & class != 0 && f & (KEYSPACE | KEYEVENT) != 0
    }

    /// Sends one event on the channels the setting enables.
    pub fn send(&self, pubsub: &crate::pubsub::PubSub, class: u32, event: &str, key: &[u8]) {
        if !self.wants(class) {
            return;
        }
        let f = self.flags();
        if f & KEYSPACE != 0 {
            let mut ch = b"__keyspace@0__:".to_vec();
            ch.extend_from_slice(key);
            pubsub.deliver(&Bytes::from(ch), &Bytes::copy_from_slice(event.as_bytes()));
        }
        if f & KEYEVENT != 0 {
            let ch = format!("__keyevent@0__:{event}");
            pubsub.deliver(&Bytes::from(ch), &Bytes::copy_from_slice(key));
        }
    }
}

/// Sends `expired` events for the keys the keyspace expires, and invalidates them for
/// tracking clients (asked on every slot lock: two atomic loads while both are off).
pub struct ExpiredEvents {
    pub notify: std::sync::Arc<Notify>,
    pub tracker: std::sync::Arc<crate::tracking::Tracker>,
    pub node: std::sync::Weak<crate::state::ServerState>,
}

impl crate::db::ExpiryListener for ExpiredEvents {
    fn wants(&self) -> bool {
        self.notify.wants(EXPIRED) || self.tracker.active()
    }

    fn expired(&self, keys: &[crate::db::Key]) {
        if let Some(s) = self.node.upgrade() {
            for k in keys {
                self.notify.send(&s.pubsub, EXPIRED, "expired", k);
            }
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
            self.tracker.changed(&keys, None, &s.clients);
        }
    }
}

/// One event: its class, name and key.
pub type Event = (u32, &'static str, Bytes);

/// The events of write command `args` (`name`: its table name) that changed something and
/// replied `reply`; `exists` tells whether a key exists now, `deleted` the keys a
/// `DEL`/`UNLINK` removed.
pub fn events(
    name: &'static str,
    args: &[Bytes],
    reply: &crate::resp::Reply,
    deleted: &[Bytes],
    mut exists: impl FnMut(&[u8]) -> bool,
) -> Vec<Event> {
    use crate::resp::Reply;
    let key = || args.get(1).cloned().unwrap_or_default();
    let ci = |i: usize, s: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    let has = |s: &str| {
        args.iter()
            .skip(2)
            .any(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    let mut out: Vec<Event> = Vec::new();
    // A collection command that left its key empty also raises `del`.
    let mut emptied = |out: &mut Vec<Event>, k: &Bytes| {
        if !exists(k) {
            out.push((GENERIC, "del", k.clone()));
        }
    };
    match name {
        "del" | "unlink" => {
            out.extend(deleted.iter().map(|k| (GENERIC, "del", k.clone())));
        }
        "set" => {
            out.push((STRING, "set", key()));
            if has("ex") || has("px") || has("exat") || has("pxat") {
                out.push((GENERIC, "expire", key()));
            }
        }
        "setnx" | "getset" => out.push((STRING, "set", key())),
        "setex" | "psetex" => {
            out.push((STRING, "set", key()));
            out.push((GENERIC, "expire", key()));
        }
        "mset" | "msetnx" => {
            out.extend(
                args[1..]
                    .iter()
                    .step_by(2)
                    .map(|k| (STRING, "set", k.clone())),
            );
        }
        "incr" | "decr" | "incrby" | "decrby" => out.push((STRING, "incrby", key())),
        "getdel" => out.push((GENERIC, "del", key())),
        "getex" => {
            let event = if has("persist") { "persist" } else { "expire" };
            out.push((GENERIC, event, key()));
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let event = if exists(&key()) { "expire" } else { "del" };
            out.push((GENERIC, event, key()));
        }
        "persist" => out.push((GENERIC, "persist", key())),
        "rename" | "renamenx" => {
            out.push((GENERIC, "rename_from", key()));
            out.push((GENERIC, "rename_to", args[2].clone()));
        }
        "copy" => out.push((GENERIC, "copy_to", args[2].clone())),
        "incrbyfloat" | "append" | "setrange" => out.push((STRING, name, key())),
        "lpush" | "lpushx" => out.push((LIST, "lpush", key())),
        "rpush" | "rpushx" => out.push((LIST, "rpush", key())),
        "lpop" | "rpop" | "linsert" | "lset" | "ltrim" | "lrem" | "blpop" | "brpop" => {
            let event = match name {
                "blpop" => "lpop",
                "brpop" => "rpop",
                other => other,
            };
            let k = match name {
                // The key a blocking pop took from is the first of its reply.
                "blpop" | "brpop" => match reply {
                    Reply::Array(items) => match items.first() {
                        Some(Reply::Bulk(k)) => k.clone(),
                        _ => return out,
                    },
                    _ => return out,
                },
                _ => key(),
            };
            out.push((LIST, event, k.clone()));
            emptied(&mut out, &k);
        }
        "rpoplpush" | "lmove" | "brpoplpush" | "blmove" => {
            let (from, to) = match name {
                "rpoplpush" | "brpoplpush" => ("rpop", "lpush"),
                _ => (
                    if ci(3, "left") { "lpop" } else { "rpop" },
                    if ci(4, "left") { "lpush" } else { "rpush" },
                ),
            };
            // As Redis: the push first, then the pop.
            let (src, dst) = (key(), args[2].clone());
            out.push((LIST, to, dst));
            out.push((LIST, from, src.clone()));
            emptied(&mut out, &src);
        }
        "lmpop" | "blmpop" | "zmpop" | "bzmpop" => {
            // The reply names the key: [key, [elements]].
            let Reply::Array(items) = reply else {
                return out;
            };
            let Some(Reply::Bulk(k)) = items.first() else {
                return out;
            };
            let left = args.iter().any(|a| a.eq_ignore_ascii_case(b"left"));
            let min = args.iter().any(|a| a.eq_ignore_ascii_case(b"min"));
            let (class, event) = match name {
                "lmpop" | "blmpop" => (LIST, if left { "lpop" } else { "rpop" }),
                _ => (ZSET, if min { "zpopmin" } else { "zpopmax" }),
            };
            out.push((class, event, k.clone()));
            emptied(&mut out, k);
        }
        "sadd" => out.push((SET, "sadd", key())),
        "srem" | "spop" => {
            out.push((SET, name, key()));
            emptied(&mut out, &key());
        }
        "smove" => {
            out.push((SET, "srem", key()));
            emptied(&mut out, &key());
            out.push((SET, "sadd", args[2].clone()));
        }
        "sinterstore" | "sunionstore" | "sdiffstore" => {
            let event = name;
            match exists(&key()) {
                true => out.push((SET, event, key())),
                false => out.push((GENERIC, "del", key())),
            }
        }
        "hset" | "hmset" | "hsetnx" => out.push((HASH, "hset", key())),
        "hincrby" | "hincrbyfloat" => out.push((HASH, name, key())),
        "hdel" => {
            out.push((HASH, "hdel", key()));
            emptied(&mut out, &key());
        }
        "zadd" => {
            let event = if has("incr") { "zincr" } else { "zadd" };
            out.push((ZSET, event, key()));
        }
        "zincrby" => out.push((ZSET, "zincr", key())),
        "zrem" | "zremrangebyscore" | "zremrangebyrank" | "zremrangebylex" => {
            out.push((ZSET, name, key()));
            emptied(&mut out, &key());
        }
        "zpopmin" | "zpopmax" => {
            out.push((ZSET, name, key()));
            emptied(&mut out, &key());
        }
        "bzpopmin" | "bzpopmax" => {
            // [key, member, score]
            if let Reply::Array(items) = reply {
                if let Some(Reply::Bulk(k)) = items.first() {
                    out.push((ZSET, &name[1..], k.clone()));
                    emptied(&mut out, k);
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_print_as_redis() {
        for (given, shown) in [
            ("KEA", "AKE"),
            ("Ex", "xE"),
            ("g$lshzxet", "g$lshzxet"),
            ("Kl", "lK"),
            ("", ""),
            ("nKm", "nKm"),
            ("AKEnm", "AKEm"),
        ] {
            assert_eq!(format(parse(given.as_bytes()).unwrap()), shown, "{given}");
        }
        assert_eq!(parse(b"Q"), None);
    }
}
