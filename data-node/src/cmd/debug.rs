//! `DEBUG`: only its read-only subcommands, the dataset digests that tests and operators
//! use to check that two copies are the same (a node before and after a restart, a
//! replica and its primary). Redis 7 refuses `DEBUG` unless `enable-debug-command`
//! allows it, for its dangerous subcommands (`SEGFAULT`, `RELOAD` ...); ember has none
//! of those, so the digests are always allowed.
//!
//! A digest is ember's own (it is not comparable with Redis's): per live key, the SHA1
//! of its name, type, content and absolute deadline; unordered collections (sets,
//! hashes) hash their elements independently of order; a set of keys XORs the keys'
//! digests, so the result does not depend on the order of the keys either. An empty set
//! of keys digests to forty zeros, as in Redis.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::{eq_ic, Ctx};
use crate::db::{SlotTable, Value};
use crate::resp::Reply;

type Sum = [u8; 20];

/// # Format
/// `DEBUG DIGEST` | `DEBUG DIGEST-VALUE key [key ...]` | `DEBUG DIGEST-SLOT slot` |
/// `DEBUG HELP`
pub fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let state = ctx.state;
    let now = ctx.now;
    if eq_ic(sub, "digest") && args.len() == 2 {
        let mut all = [0u8; 20];
        for slot in state.db.nonempty_slots() {
            xor(&mut all, &state.db.with_slot(slot, |t| slot_digest(t, now)));
        }
        Reply::bulk_str(&hex(&all))
    } else if eq_ic(sub, "digest-slot") && args.len() == 3 {
        match crate::resp::parse::parse_i64(&args[2]) {
            Some(s) if (0..i64::from(ember_core::SLOT_COUNT)).contains(&s) => {
                let d = state.db.with_slot(s as u16, |t| slot_digest(t, now));
                Reply::bulk_str(&hex(&d))
            }
            _ => Reply::err("ERR Invalid slot"),
        }
    } else if eq_ic(sub, "digest-value") {
        Reply::Array(
            args[2..]
                .iter()
                .map(|key| {
                    let slot = ember_core::key_slot(key);
                    let d = state.db.with_slot(slot, |t| {
                        let at = t.expire_at(key);
                        t.peek(key, now).map_or([0; 20], |v| key_digest(key, v, at))
                    });
                    Reply::bulk_str(&hex(&d))
                })
                .collect(),
        )
    } else if eq_ic(sub, "help") && args.len() == 2 {
        super::server::help(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-SLOT <slot>",
            "    The same for the keys of one hash slot (ember).",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "HELP",
            "    Print this help.",
        ])
    } else {
        Reply::error(format!(
            "ERR DEBUG {} is not supported by ember (DIGEST, DIGEST-SLOT, DIGEST-VALUE and HELP are)",
            String::from_utf8_lossy(sub)
        ))
    }
}

/// The XOR of the digests of `t`'s live keys.
fn slot_digest(t: &mut SlotTable, now: u64) -> Sum {
    let mut sum = [0u8; 20];
    for (key, value) in t.iter() {
        let at = t.expire_at(key);
        if at.is_some_and(|at| at <= now) {
            continue;
        }
        xor(&mut sum, &key_digest(key, value, at));
    }
    sum
}

/// One key's digest: its name, type, content and deadline.
fn key_digest(key: &[u8], value: &Value, expire_at: Option<u64>) -> Sum {
    let mut h = Sha1::new();
    field(&mut h, key);
    field(&mut h, value.type_name().as_bytes());
    let mut unordered = [0u8; 20];
    match value {
        Value::Str(s) => field(&mut h, s),
        Value::List(l) => l.iter().for_each(|e| field(&mut h, e)),
        Value::ZSet(z) => z.iter().for_each(|(m, score)| {
            field(&mut h, m);
            h.update(score.to_bits().to_le_bytes());
        }),
        Value::Set(s) => s.iter().for_each(|m| xor(&mut unordered, &of(&[m]))),
        Value::Hash(m) => m
            .iter()
            .for_each(|(f, v)| xor(&mut unordered, &of(&[f, v]))),
    }
    h.update(unordered);
    match expire_at {
        Some(at) => h.update(at.to_le_bytes()),
        None => h.update(b"persistent"),
    }
    h.finalize().into()
}

/// A length-prefixed field, so that ("ab", "c") and ("a", "bc") differ.
fn field(h: &mut Sha1, b: &[u8]) {
    h.update((b.len() as u64).to_le_bytes());
    h.update(b);
}

fn of(parts: &[&[u8]]) -> Sum {
    let mut h = Sha1::new();
    parts.iter().for_each(|p| field(&mut h, p));
    h.finalize().into()
}

fn xor(into: &mut Sum, d: &Sum) {
    into.iter_mut().zip(d).for_each(|(a, b)| *a ^= b);
}

fn hex(d: &Sum) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
