//! Connection commands: PING, ECHO, HELLO, QUIT, SELECT, CLIENT, READONLY, READWRITE,
//! ASKING.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{arg_int, eq_ic, unknown_subcommand, Ctx};
use crate::resp::Reply;

/// The Redis version ember reports (`INFO`, `HELLO`): the one whose commands it
/// implements completely and is checked against (redis-server 7.0.15 in the
/// differential test). A few later additions are there too (`CLIENT SETINFO`,
/// `CLUSTER MYSHARDID`), but not all of 7.2's (`ZRANK ... WITHSCORE`, its double
/// formatting), so ember does not claim 7.2. See ARCHITECTURE.md.
pub const VERSION: &str = "7.0.15";

/// # Format
/// `PING [message]`
///
/// A RESP2 client in subscriber mode gets `["pong", message]` instead, as in Redis.
pub fn ping(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return Reply::arity("ping");
    }
    let subscribed = ctx.client.pubsub.as_ref().is_some_and(|s| s.any());
    if subscribed && !ctx.client.resp3 {
        let msg = args.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk(b"pong"), Reply::Bulk(msg)]);
    }
    match args.get(1) {
        None => Reply::simple("PONG"),
        Some(m) => Reply::Bulk(m.clone()),
    }
}

/// # Format
/// `RESET`: the connection as a new one (no transaction, watches, subscriptions,
/// `READONLY`, name; RESP2).
pub fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let c = &mut *ctx.client;
    c.multi = None;
    c.info.multi.store(-1, Ordering::Relaxed);
    c.watched.clear();
    c.readonly = false;
    c.info.readonly.store(false, Ordering::Relaxed);
    c.resp3 = false;
    c.info.resp.store(2, Ordering::Relaxed);
    *c.info.name.lock() = None;
    if let Some(mut subs) = c.pubsub.take() {
        subs.reset(&ctx.state.pubsub, &c.info);
        *c.info.mailbox.lock() = None;
    }
    if c.tracking.take().is_some() {
        ctx.state.tracker.disable(c.id);
    }
    c.caching = None;
    Reply::simple("RESET")
}

/// # Format
/// `ECHO message`
pub fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

/// # Format
/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
pub fn hello(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut proto = if ctx.client.resp3 { 3 } else { 2 };
    let mut i = 1;
    let mut name = None;
    if args.len() > 1 {
        match arg_int(&args[1]) {
            Ok(v) if (2..=3).contains(&v) => proto = v,
            Ok(_) => return Reply::err("NOPROTO unsupported protocol version"),
            Err(_) => return Reply::err("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq_ic(&args[i], "auth") && more >= 2 {
            if &args[i + 1][..] != b"default" {
                return Reply::err("WRONGPASS invalid username-password pair or user is disabled.");
            }
            i += 3;
        } else if eq_ic(&args[i], "setname") && more >= 1 {
            if !valid_name(&args[i + 1]) {
                return Reply::err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                super::lossy_trunc(&args[i], 128)
            ));
        }
    }
    if let Some(n) = name {
        *ctx.client.info.name.lock() = Some(n);
    }
    ctx.client.resp3 = proto == 3;
    ctx.client.info.resp.store(proto as u8, Ordering::Relaxed);
    let s = |v: &str| Reply::bulk_str(v);
    Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(VERSION)),
        (s("proto"), Reply::Integer(proto)),
        (s("id"), Reply::Integer(ctx.client.id as i64)),
        (s("mode"), s("cluster")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
    ])
}

fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// # Format
/// `QUIT` (replies `+OK`, then the connection closes)
pub fn quit(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.close = true;
    Reply::ok()
}

/// # Format
/// `SELECT index` (only database 0 exists in cluster mode)
pub fn select(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match arg_int(&args[1]) {
        Ok(0) => Reply::ok(),
        Ok(_) => Reply::err("ERR SELECT is not allowed in cluster mode"),
        Err(r) => r,
    }
}

/// # Format
/// `READONLY`
pub fn readonly(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.readonly = true;
    ctx.client.info.readonly.store(true, Ordering::Relaxed);
    Reply::ok()
}

/// # Format
/// `READWRITE`
pub fn readwrite(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.readonly = false;
    ctx.client.info.readonly.store(false, Ordering::Relaxed);
    Reply::ok()
}

/// # Format
/// `ASKING`: accepted for clients that send it; ember never answers `ASK` (a slot
/// moves atomically, so there is no importing slot to be asked into).
pub fn asking(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::ok()
}

/// `ON` or `OFF`, any case.
fn on_off(arg: &[u8]) -> Option<bool> {
    match () {
        _ if eq_ic(arg, "on") => Some(true),
        _ if eq_ic(arg, "off") => Some(false),
        _ => None,
    }
}

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT]
/// [NOLOOP]`, with Redis's checks and messages.
fn client_tracking(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(on) = on_off(&args[2]) else {
        return Reply::syntax();
    };
    let mut o = crate::tracking::Options::default();
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "redirect") && i + 1 < args.len() {
            i += 1;
            match crate::resp::parse::parse_i64(&args[i]) {
                Some(id) if id >= 0 => o.redirect = Some(id as u64),
                _ => return Reply::not_integer(),
            }
        } else if eq_ic(a, "bcast") {
            o.bcast = true;
        } else if eq_ic(a, "optin") {
            o.optin = true;
        } else if eq_ic(a, "optout") {
            o.optout = true;
        } else if eq_ic(a, "noloop") {
            o.noloop = true;
        } else if eq_ic(a, "prefix") && i + 1 < args.len() {
            i += 1;
            o.prefixes.push(args[i].clone());
        } else {
            return Reply::syntax();
        }
        i += 1;
    }
    let tracker = &ctx.state.tracker;
    if !on {
        if ctx.client.tracking.take().is_some() {
            tracker.disable(ctx.client.id);
        }
        return Reply::ok();
    }
    if !o.bcast && !o.prefixes.is_empty() {
        return Reply::err("ERR PREFIX option requires BCAST mode to be enabled");
    }
    if let Some(old) = &ctx.client.tracking {
        if old.bcast != o.bcast {
            return Reply::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if (old.optin, old.optout) != (o.optin, o.optout)
            && (o.optin || o.optout || old.optin || old.optout)
        {
            return Reply::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
    }
    if o.optin && o.optout {
        return Reply::err("ERR You can't specify both OPTIN mode and OPTOUT mode");
    }
    if o.bcast && (o.optin || o.optout) {
        return Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST");
    }
    if let Some(r) = o.redirect {
        if r != ctx.client.id && ctx.state.clients.get(r).is_none() {
            return Reply::err("ERR The client ID you want redirect to does not exist");
        }
    }
    let existing = ctx
        .client
        .tracking
        .as_ref()
        .map_or(&[][..], |t| &t.prefixes[..]);
    let overlap = |a: &Bytes, b: &Bytes| a.starts_with(b) || b.starts_with(a);
    for (n, p) in o.prefixes.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlap(p, e) && *e != p) {
            return Reply::error(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(e)
            ));
        }
        if let Some(q) = o.prefixes[n + 1..].iter().find(|q| overlap(p, q)) {
            return Reply::error(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(q)
            ));
        }
    }
    let mut prefixes = existing.to_vec();
    for p in o.prefixes.drain(..) {
        if !prefixes.contains(&p) {
            prefixes.push(p);
        }
    }
    o.prefixes = prefixes;
    // Invalidations arrive in this connection's mailbox (or its redirect target's).
    ctx.client.subscriptions();
    tracker.enable(ctx.client.id, o.clone());
    ctx.client.tracking = Some(o);
    Reply::ok()
}

/// `CLIENT TRACKINGINFO`.
fn tracking_info(ctx: &Ctx) -> Reply {
    let c = &*ctx.client;
    let mut flags = Vec::new();
    let (redirect, prefixes) = match &c.tracking {
        None => {
            flags.push("off");
            (-1, Vec::new())
        }
        Some(o) => {
            flags.push("on");
            for (set, name) in [(o.bcast, "bcast"), (o.optin, "optin"), (o.optout, "optout")] {
                if set {
                    flags.push(name);
                }
            }
            match c.caching {
                Some(true) => flags.push("caching-yes"),
                Some(false) => flags.push("caching-no"),
                None => {}
            }
            if o.noloop {
                flags.push("noloop");
            }
            if o.redirect
                .is_some_and(|r| ctx.state.clients.get(r).is_none())
            {
                flags.push("broken_redirect");
            }
            (
                o.redirect.map_or(0, |r| r as i64),
                o.prefixes.iter().cloned().map(Reply::Bulk).collect(),
            )
        }
    };
    let bulk = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    Reply::Map(vec![
        (
            bulk("flags"),
            Reply::Set(flags.into_iter().map(bulk).collect()),
        ),
        (bulk("redirect"), Reply::Integer(redirect)),
        (bulk("prefixes"), Reply::Array(prefixes)),
    ])
}

/// `CLIENT PAUSE timeout [WRITE|ALL]` (milliseconds; `ALL` by default).
fn client_pause(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 4 {
        return Reply::err(
            "ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.",
        );
    }
    let ms = match crate::resp::parse::parse_i64(&args[2]) {
        None => return Reply::err("ERR timeout is not an integer or out of range"),
        Some(ms) if ms < 0 => return Reply::err("ERR timeout is negative"),
        Some(ms) => ms as u64,
    };
    let all = match args.get(3) {
        None => true,
        Some(m) if eq_ic(m, "all") => true,
        Some(m) if eq_ic(m, "write") => false,
        Some(_) => return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    ctx.state
        .pause
        .pause(std::time::Duration::from_millis(ms), all);
    Reply::ok()
}

/// # Format
/// `CLIENT ID | SETNAME name | GETNAME | SETINFO LIB-NAME|LIB-VER value | INFO | LIST |
/// UNBLOCK id [TIMEOUT|ERROR] | KILL ... | REPLY ON|OFF|SKIP | NO-EVICT ON|OFF |
/// TRACKING ... | CACHING YES|NO | GETREDIR | TRACKINGINFO | PAUSE ms [WRITE|ALL] |
/// UNPAUSE | HELP`
pub fn client(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let n = args.len();
    let arity = |name: &str| {
        Reply::error(format!(
            "ERR wrong number of arguments for 'client|{name}' command"
        ))
    };
    if eq_ic(sub, "id") {
        if n != 2 {
            return arity("id");
        }
        Reply::Integer(ctx.client.id as i64)
    } else if eq_ic(sub, "setname") {
        if n != 3 {
            return arity("setname");
        }
        if !valid_name(&args[2]) {
            return Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        *ctx.client.info.name.lock() = if args[2].is_empty() {
            None
        } else {
            Some(args[2].clone())
        };
        Reply::ok()
    } else if eq_ic(sub, "getname") {
        if n != 2 {
            return arity("getname");
        }
        match &*ctx.client.info.name.lock() {
            Some(v) => Reply::Bulk(v.clone()),
            None => Reply::Null,
        }
    } else if eq_ic(sub, "setinfo") {
        if n != 4 {
            return arity("setinfo");
        }
        let slot = if eq_ic(&args[2], "lib-name") {
            &ctx.client.info.lib_name
        } else if eq_ic(&args[2], "lib-ver") {
            &ctx.client.info.lib_ver
        } else {
            return Reply::error(format!(
                "ERR Unrecognized option '{}'",
                super::lossy_trunc(&args[2], 128)
            ));
        };
        if !valid_name(&args[3]) && !args[3].is_empty() {
            return Reply::err(
                "ERR lib-name or lib-ver cannot contain spaces, newlines or special characters.",
            );
        }
        *slot.lock() = Some(args[3].clone());
        Reply::ok()
    } else if eq_ic(sub, "info") {
        if n != 2 {
            return arity("info");
        }
        let mut s = ctx.client.info.describe();
        s.push('\n');
        Reply::Verbatim("txt", Bytes::from(s))
    } else if eq_ic(sub, "list") {
        let mut s = String::new();
        for c in ctx.state.clients.list() {
            s.push_str(&c.describe());
            s.push('\n');
        }
        Reply::Verbatim("txt", Bytes::from(s))
    } else if eq_ic(sub, "unblock") {
        client_unblock(ctx, args)
    } else if eq_ic(sub, "kill") {
        client_kill(ctx, args)
    } else if eq_ic(sub, "reply") {
        if n != 3 {
            return arity("reply");
        }
        let c = &mut *ctx.client;
        if eq_ic(&args[2], "on") {
            c.reply_off = false;
            Reply::ok()
        } else if eq_ic(&args[2], "off") {
            c.reply_off = true;
            c.skip_replies = 1;
            Reply::ok()
        } else if eq_ic(&args[2], "skip") {
            c.skip_replies = if c.reply_off { 1 } else { 2 };
            Reply::ok()
        } else {
            Reply::syntax()
        }
    } else if eq_ic(sub, "tracking") {
        client_tracking(ctx, args)
    } else if eq_ic(sub, "caching") {
        if n != 3 {
            return arity("caching");
        }
        let Some(o) = ctx.client.tracking.as_ref().filter(|o| o.optin || o.optout) else {
            return Reply::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
        };
        if eq_ic(&args[2], "yes") {
            if !o.optin {
                return Reply::err(
                    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
                );
            }
            ctx.client.caching = Some(true);
        } else if eq_ic(&args[2], "no") {
            if !o.optout {
                return Reply::err(
                    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
                );
            }
            ctx.client.caching = Some(false);
        } else {
            return Reply::syntax();
        }
        Reply::ok()
    } else if eq_ic(sub, "getredir") {
        if n != 2 {
            return arity("getredir");
        }
        Reply::Integer(match &ctx.client.tracking {
            None => -1,
            Some(o) => o.redirect.map_or(0, |r| r as i64),
        })
    } else if eq_ic(sub, "trackinginfo") {
        if n != 2 {
            return arity("trackinginfo");
        }
        tracking_info(ctx)
    } else if eq_ic(sub, "pause") {
        client_pause(ctx, args)
    } else if eq_ic(sub, "unpause") {
        if n != 2 {
            return arity("unpause");
        }
        ctx.state.pause.unpause();
        Reply::ok()
    } else if eq_ic(sub, "no-evict") {
        if n != 3 {
            return arity("no-evict");
        }
        let Some(on) = on_off(&args[2]) else {
            return Reply::syntax();
        };
        ctx.client.info.no_evict.store(on, Ordering::Relaxed);
        Reply::ok()
    } else if eq_ic(sub, "help") {
        Reply::Array(
            [
                "CLIENT <subcommand>",
                "ID",
                "SETNAME <name>",
                "GETNAME",
                "SETINFO <option> <value>",
                "INFO",
                "LIST",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]",
                "KILL <ip:port> | KILL <option> <value> [<option> <value> ...]",
                "    Options: ID, ADDR, LADDR, USER, TYPE (normal|master|replica|pubsub), SKIPME (yes|no).",
                "REPLY (ON|OFF|SKIP)",
                "NO-EVICT (ON|OFF)",
            ]
            .iter()
            .map(|s| Reply::simple(s))
            .collect(),
        )
    } else {
        unknown_subcommand(sub, "CLIENT")
    }
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: 1 if the client was blocked (it then answers as
/// if its timeout passed, or with `-UNBLOCKED`), else 0.
fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 4 {
        return Reply::err(
            "ERR unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.",
        );
    }
    let id = crate::tri!(super::arg_int(&args[2]));
    let error = match args.get(3) {
        None => false,
        Some(a) if eq_ic(a, "timeout") => false,
        Some(a) if eq_ic(a, "error") => true,
        Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Ok(id) = u64::try_from(id) else {
        return Reply::Integer(0);
    };
    let done = ctx.state.blocked.unblock(id, |kind| match error {
        true => Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
        false => kind.timeout_reply(),
    });
    Reply::Integer(done as i64)
}

/// `CLIENT KILL ip:port` (OK or `No such client`), or `CLIENT KILL <filter> <value> ...`
/// with ID, ADDR, LADDR, USER, TYPE, SKIPME (the number of clients closed), as Redis 7.
fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let me = ctx.client.id;
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]);
        let Some(c) = ctx
            .state
            .clients
            .list()
            .into_iter()
            .find(|c| c.addr == addr)
        else {
            return Reply::err("ERR No such client");
        };
        kill_one(ctx, &c, me);
        return Reply::ok();
    }
    if !args.len().is_multiple_of(2) {
        return Reply::syntax();
    }
    let (mut id, mut addr, mut laddr, mut pubsub) = (None, None, None, None);
    let mut skipme = true;
    for pair in args[2..].chunks(2) {
        let (name, value) = (&pair[0], &pair[1]);
        let text = String::from_utf8_lossy(value).into_owned();
        if eq_ic(name, "id") {
            match crate::resp::parse::parse_i64(value) {
                Some(v) if v > 0 => id = Some(v as u64),
                _ => return Reply::err("ERR client-id should be greater than 0"),
            }
        } else if eq_ic(name, "addr") {
            addr = Some(text);
        } else if eq_ic(name, "laddr") {
            laddr = Some(text);
        } else if eq_ic(name, "user") {
            if text != "default" {
                return Reply::error(format!("ERR No such user '{text}'"));
            }
        } else if eq_ic(name, "type") {
            pubsub = Some(match text.to_ascii_lowercase().as_str() {
                "normal" => Some(false),
                "pubsub" => Some(true),
                // Replicas and primaries stream over the internal port: never RESP clients.
                "master" | "replica" | "slave" => None,
                _ => return Reply::error(format!("ERR Unknown client type '{text}'")),
            });
        } else if eq_ic(name, "skipme") {
            skipme = if eq_ic(value, "yes") {
                true
            } else if eq_ic(value, "no") {
                false
            } else {
                return Reply::syntax();
            };
        } else {
            return Reply::syntax();
        }
    }
    let mut killed = 0;
    for c in ctx.state.clients.list() {
        let subscribed = c
            .subscriptions
            .iter()
            .any(|n| n.load(Ordering::Relaxed) > 0);
        let matches = id.is_none_or(|id| c.id == id)
            && addr.as_ref().is_none_or(|a| c.addr == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr == *a)
            && pubsub.is_none_or(|kind| kind == Some(subscribed))
            && !(skipme && c.id == me);
        if matches {
            kill_one(ctx, &c, me);
            killed += 1;
        }
    }
    Reply::Integer(killed)
}

/// Closes client `c` (the caller itself after its reply).
fn kill_one(ctx: &mut Ctx, c: &crate::state::ClientInfo, me: u64) {
    if c.id == me {
        ctx.client.close = true;
    } else {
        c.kill();
    }
}
