//! Blocking pops: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! Each is its non-blocking command (`LPOP`, `LMOVE`, `LMPOP`, `ZPOPMIN`, `ZMPOP`) run on
//! the first key that has something, with the reply reshaped as Redis's blocking form
//! gives it, and propagated as that non-blocking command (as Redis does). When no key
//! has anything, the client blocks (see [`crate::blocking`]) unless the command runs
//! inside a transaction, where it answers as if its timeout had passed.

use std::time::Duration;

use bytes::Bytes;

use super::{eq_ic, lists, parse_f64, zsets, Ctx};
use crate::blocking::Waiter;
use crate::db::{now_ms, SlotTable, Value};
use crate::resp::Reply;
use crate::tri;

/// What a blocked client runs on a key, and the shape of its reply.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `BLPOP` / `BRPOP`: `[key, element]`.
    Pop { left: bool },
    /// `BLMOVE` / `BRPOPLPUSH`: the element.
    Move {
        dst: Bytes,
        from_left: bool,
        to_left: bool,
    },
    /// `BLMPOP`: `[key, [element, ...]]`.
    MPop { left: bool, count: usize },
    /// `BZPOPMIN` / `BZPOPMAX`: `[key, member, score]`.
    ZPop { max: bool },
    /// `BZMPOP`: `[key, [[member, score], ...]]`.
    ZMPop { max: bool, count: usize },
}

fn side(left: bool) -> Bytes {
    Bytes::from_static(if left { b"LEFT" } else { b"RIGHT" })
}

impl Kind {
    /// Whether `key` holds a non-empty value of the type this waits for.
    pub fn ready(&self, t: &mut SlotTable, key: &[u8], now: u64) -> bool {
        match (self, t.get(key, now)) {
            (Kind::ZPop { .. } | Kind::ZMPop { .. }, Some(Value::ZSet(z))) => !z.is_empty(),
            (Kind::ZPop { .. } | Kind::ZMPop { .. }, _) => false,
            (_, Some(Value::List(l))) => !l.is_empty(),
            _ => false,
        }
    }

    /// The non-blocking command this runs on `key` (what it propagates as).
    fn argv(&self, key: &Bytes) -> Vec<Bytes> {
        let s = |b: &'static [u8]| Bytes::from_static(b);
        let count = |n: usize| Bytes::from(n.to_string());
        match self {
            Kind::Pop { left } => vec![s(if *left { b"LPOP" } else { b"RPOP" }), key.clone()],
            Kind::Move {
                dst,
                from_left,
                to_left,
            } => vec![
                s(b"LMOVE"),
                key.clone(),
                dst.clone(),
                side(*from_left),
                side(*to_left),
            ],
            Kind::MPop { left, count: n } => vec![
                s(b"LMPOP"),
                s(b"1"),
                key.clone(),
                side(*left),
                s(b"COUNT"),
                count(*n),
            ],
            Kind::ZPop { max } => vec![s(if *max { b"ZPOPMAX" } else { b"ZPOPMIN" }), key.clone()],
            Kind::ZMPop { max, count: n } => vec![
                s(b"ZMPOP"),
                s(b"1"),
                key.clone(),
                s(if *max { b"MAX" } else { b"MIN" }),
                s(b"COUNT"),
                count(*n),
            ],
        }
    }

    /// Runs the non-blocking command on `key`: its arguments, and the reply in the
    /// blocking form (`None`: nothing there; an error reply is served as it is).
    pub fn run(
        &self,
        ctx: &mut Ctx,
        t: &mut SlotTable,
        key: &Bytes,
    ) -> (Vec<Bytes>, Option<Reply>) {
        let argv = self.argv(key);
        let r = match self {
            Kind::Pop { .. } => lists::pop(ctx, t, &argv),
            Kind::Move { .. } => lists::lmove(ctx, t, &argv),
            Kind::MPop { .. } => lists::lmpop(ctx, t, &argv),
            Kind::ZPop { .. } => zsets::zpop(ctx, t, &argv),
            Kind::ZMPop { .. } => zsets::zmpop(ctx, t, &argv),
        };
        let reply = match (self, r) {
            (_, e @ Reply::Error(_)) => Some(e),
            (_, Reply::Null | Reply::NullArray) => None,
            (Kind::Pop { .. }, v @ Reply::Bulk(_)) => {
                Some(Reply::Array(vec![Reply::Bulk(key.clone()), v]))
            }
            (Kind::ZPop { .. }, Reply::Array(v)) if v.is_empty() => None,
            (Kind::ZPop { .. }, Reply::Array(v)) => {
                let mut out = vec![Reply::Bulk(key.clone())];
                out.extend(v);
                Some(Reply::Array(out))
            }
            (_, r) => Some(r),
        };
        if reply.as_ref().is_some_and(|r| !r.is_error()) {
            let propagated = argv.clone();
            ctx.propagate(move || propagated);
        }
        (argv, reply)
    }

    /// The reply once the timeout passed: a null (array).
    pub fn timeout_reply(&self) -> Reply {
        match self {
            Kind::Move { .. } => Reply::Null,
            _ => Reply::NullArray,
        }
    }
}

/// A blocked command's wait, for the connection to carry out.
pub struct Block {
    pub waiter: std::sync::Arc<Waiter>,
    pub reply: tokio::sync::oneshot::Receiver<Reply>,
    /// `None`: forever.
    pub deadline: Option<std::time::Instant>,
}

/// Parses a blocking timeout in seconds (0: forever) as Redis 7 does, with its errors.
pub fn parse_timeout(b: &[u8]) -> Result<Option<Duration>, Reply> {
    let Some(secs) = parse_f64(b) else {
        return Err(Reply::err("ERR timeout is not a float or out of range"));
    };
    let ms = (secs * 1000.0).ceil();
    // Redis converts to a 64-bit integer first: what does not fit ends up negative.
    if ms.is_nan() || ms >= i64::MAX as f64 || ms < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    let ms = ms as i64;
    if ms > 0 && ms > i64::MAX - now_ms() as i64 {
        return Err(Reply::err("ERR timeout is out of range"));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

/// Tries `kind` on each of `keys` in order; blocks the client on all of them when none
/// has anything (and the command may block).
fn pop_or_block(
    ctx: &mut Ctx,
    t: &mut SlotTable,
    kind: Kind,
    keys: &[Bytes],
    timeout: Option<Duration>,
) -> Reply {
    for key in keys {
        if let (_, Some(r)) = kind.run(ctx, t, key) {
            return r;
        }
    }
    ctx.noop = true;
    if ctx.nonblocking {
        return kind.timeout_reply();
    }
    let (waiter, reply) = Waiter::new(ctx.client.id, ctx.slot, kind, keys.to_vec());
    t.add_waiter(&waiter);
    ctx.state.blocked.register(&waiter);
    ctx.client.block = Some(Block {
        waiter,
        reply,
        deadline: timeout.map(|d| std::time::Instant::now() + d),
    });
    Reply::Null
}

/// # Format
/// `BLPOP key [key ...] timeout`, `BRPOP key [key ...] timeout`
pub fn blpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let timeout = tri!(parse_timeout(&args[args.len() - 1]));
    let left = eq_ic(&args[0], "blpop");
    pop_or_block(
        ctx,
        t,
        Kind::Pop { left },
        &args[1..args.len() - 1],
        timeout,
    )
}

/// # Format
/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`,
/// `BRPOPLPUSH source destination timeout`
pub fn blmove(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let dir = |b: &[u8]| {
        if eq_ic(b, "left") {
            Ok(true)
        } else if eq_ic(b, "right") {
            Ok(false)
        } else {
            Err(Reply::syntax())
        }
    };
    let (from_left, to_left) = if args.len() == 6 {
        (tri!(dir(&args[3])), tri!(dir(&args[4])))
    } else {
        (false, true)
    };
    let timeout = tri!(parse_timeout(&args[args.len() - 1]));
    let kind = Kind::Move {
        dst: args[2].clone(),
        from_left,
        to_left,
    };
    pop_or_block(ctx, t, kind, &args[1..2], timeout)
}

/// # Format
/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`
pub fn blmpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    // As Redis: the rest of the arguments first, then the timeout.
    let (keys, left, count) = tri!(zsets::parse_mpop(&args[1..], ["left", "right"]));
    let timeout = tri!(parse_timeout(&args[1]));
    pop_or_block(ctx, t, Kind::MPop { left, count }, keys, timeout)
}

/// # Format
/// `BZPOPMIN key [key ...] timeout`, `BZPOPMAX key [key ...] timeout`
pub fn bzpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let timeout = tri!(parse_timeout(&args[args.len() - 1]));
    let max = eq_ic(&args[0], "bzpopmax");
    pop_or_block(
        ctx,
        t,
        Kind::ZPop { max },
        &args[1..args.len() - 1],
        timeout,
    )
}

/// # Format
/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`
pub fn bzmpop(ctx: &mut Ctx, t: &mut SlotTable, args: &[Bytes]) -> Reply {
    let (keys, min, count) = tri!(zsets::parse_mpop(&args[1..], ["min", "max"]));
    let timeout = tri!(parse_timeout(&args[1]));
    pop_or_block(ctx, t, Kind::ZMPop { max: !min, count }, keys, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_redis_reads_them() {
        assert_eq!(parse_timeout(b"0").unwrap(), None);
        assert_eq!(
            parse_timeout(b"0.0001").unwrap(),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            parse_timeout(b"1.5").unwrap(),
            Some(Duration::from_millis(1500))
        );
        let err = |b: &[u8]| match parse_timeout(b) {
            Err(Reply::Error(e)) => e.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(err(b"abc"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b" 1"), "ERR timeout is not a float or out of range");
        assert_eq!(err(b"-1"), "ERR timeout is negative");
        assert_eq!(err(b"inf"), "ERR timeout is negative");
        assert_eq!(err(b"1e20"), "ERR timeout is negative");
    }
}
