//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
//! SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB, and the subscriber mode of RESP2.
//! What they act on is in [`crate::pubsub`].

use bytes::Bytes;

use super::{eq_ic, unknown_subcommand, Client, Ctx, CROSSSLOT};
use crate::pubsub::{Kind, Push, Subscriptions};
use crate::resp::Reply;

/// The commands a RESP2 client may send while subscribed (by `TABLE` name).
const SUBSCRIBER_MODE: &[&str] = &[
    "subscribe",
    "ssubscribe",
    "psubscribe",
    "unsubscribe",
    "sunsubscribe",
    "punsubscribe",
    "ping",
    "quit",
    "reset",
];

/// In RESP2, a subscribed client may only (un)subscribe, `PING`, `QUIT` and `RESET`: the
/// error for any other command `name`, as Redis words it.
pub fn refused_in_subscriber_mode(client: &Client, name: &str) -> Option<Reply> {
    if client.resp3 || !client.pubsub.as_ref().is_some_and(|s| s.any()) {
        return None;
    }
    if SUBSCRIBER_MODE.contains(&name) {
        return None;
    }
    Some(Reply::error(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )))
}

/// Where a RESP2 redirect target hears invalidations (`CLIENT TRACKING ... REDIRECT`).
pub const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// What a push becomes on the wire for a client with `subs`.
pub fn encode_push(push: Push, subs: &mut Subscriptions, resp3: bool) -> Reply {
    let b = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    match push {
        Push::Message { channel, payload } => Reply::Push(vec![
            b("message"),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        Push::PMessage {
            pattern,
            channel,
            payload,
        } => Reply::Push(vec![
            b("pmessage"),
            Reply::Bulk(pattern),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        Push::SMessage { channel, payload } => Reply::Push(vec![
            b("smessage"),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        Push::Invalidate { keys } => {
            let keys = keys.map_or(Reply::Null, |k| {
                Reply::Array(k.into_iter().map(Reply::Bulk).collect())
            });
            if resp3 {
                Reply::Push(vec![b("invalidate"), keys])
            } else if subs.channels.iter().any(|c| c == INVALIDATE_CHANNEL) {
                Reply::Push(vec![b("message"), b(INVALIDATE_CHANNEL), keys])
            } else {
                // A RESP2 connection not subscribed to the channel cannot be told.
                Reply::Many(Vec::new())
            }
        }
        Push::SUnsubscribed { channel } => {
            subs.shard.retain(|c| *c != channel);
            Reply::Push(vec![
                b("sunsubscribe"),
                Reply::Bulk(channel),
                Reply::Integer(subs.shard.len() as i64),
            ])
        }
    }
}

fn confirm(verb: &'static str, name: Option<Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(verb.as_bytes())),
        name.map_or(Reply::Null, Reply::Bulk),
        Reply::Integer(count as i64),
    ])
}

fn subscribe_to(ctx: &mut Ctx, kind: Kind, names: &[Bytes], verb: &'static str) -> Reply {
    let id = ctx.client.id;
    let info = ctx.client.info.clone();
    let subs = ctx.client.subscriptions();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if !subs.list(kind).contains(name) {
            subs.list(kind).push(name.clone());
            ctx.state.pubsub.subscribe(kind, name, id, &subs.mailbox);
        }
        out.push(confirm(verb, Some(name.clone()), subs.count(kind)));
    }
    subs.show_in(&info);
    Reply::Many(out)
}

fn unsubscribe_from(ctx: &mut Ctx, kind: Kind, names: &[Bytes], verb: &'static str) -> Reply {
    let id = ctx.client.id;
    let Some(subs) = ctx.client.pubsub.as_mut() else {
        let out: Vec<Reply> = match names.is_empty() {
            true => vec![confirm(verb, None, 0)],
            false => names
                .iter()
                .map(|n| confirm(verb, Some(n.clone()), 0))
                .collect(),
        };
        return Reply::Many(out);
    };
    let names = match names.is_empty() {
        true => subs.list(kind).clone(),
        false => names.to_vec(),
    };
    if names.is_empty() {
        return Reply::Many(vec![confirm(verb, None, subs.count(kind))]);
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(i) = subs.list(kind).iter().position(|n| *n == name) {
            subs.list(kind).remove(i);
            ctx.state.pubsub.unsubscribe(kind, &name, id);
        }
        out.push(confirm(verb, Some(name), subs.count(kind)));
    }
    subs.show_in(&ctx.client.info);
    Reply::Many(out)
}

/// # Format
/// `SUBSCRIBE channel [channel ...]`
pub fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    subscribe_to(ctx, Kind::Channel, &args[1..], "subscribe")
}

/// # Format
/// `PSUBSCRIBE pattern [pattern ...]`
pub fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    subscribe_to(ctx, Kind::Pattern, &args[1..], "psubscribe")
}

/// # Format
/// `UNSUBSCRIBE [channel ...]`
pub fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    unsubscribe_from(ctx, Kind::Channel, &args[1..], "unsubscribe")
}

/// # Format
/// `PUNSUBSCRIBE [pattern ...]`
pub fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    unsubscribe_from(ctx, Kind::Pattern, &args[1..], "punsubscribe")
}

/// The one slot of shard `channels`, routed: the error to reply otherwise.
fn shard_slot(ctx: &Ctx, channels: &[Bytes], replica_read: bool) -> Result<u16, Reply> {
    let mut slot = None;
    for c in channels {
        let s = ember_core::key_slot(c);
        if slot.is_some_and(|x| x != s) {
            return Err(Reply::err(CROSSSLOT));
        }
        slot = Some(s);
    }
    let slot = slot.unwrap_or(0);
    ctx.state
        .cluster
        .route(slot, replica_read)
        .map_err(|e| Reply::error(e.to_string()))?;
    Ok(slot)
}

/// # Format
/// `SSUBSCRIBE shardchannel [shardchannel ...]`: routed by the channels' slot (one
/// slot; served by its primary, or by a replica after `READONLY`).
pub fn ssubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(r) = shard_slot(ctx, &args[1..], ctx.client.readonly) {
        return r;
    }
    subscribe_to(ctx, Kind::Shard, &args[1..], "ssubscribe")
}

/// # Format
/// `SUNSUBSCRIBE [shardchannel ...]`
pub fn sunsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    unsubscribe_from(ctx, Kind::Shard, &args[1..], "sunsubscribe")
}

/// # Format
/// `PUBLISH channel message`: delivered here and on every other node; the reply counts
/// this node's receivers (as in Redis Cluster).
pub fn publish(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (channel, payload) = (&args[1], &args[2]);
    let n = ctx.state.pubsub.deliver(channel, payload);
    ctx.state.pubsub.fanout.send(channel, payload, false);
    with_own_pushes(ctx, Reply::Integer(n as i64))
}

/// `reply`, preceded by what the publisher's own subscriptions just received: as in
/// Redis, a client subscribed to the channel it publishes on (RESP3) gets the message
/// before the reply.
fn with_own_pushes(ctx: &mut Ctx, reply: Reply) -> Reply {
    let resp3 = ctx.client.resp3;
    let Some(subs) = ctx.client.pubsub.as_mut() else {
        return reply;
    };
    let mut out = Vec::new();
    while let Ok(push) = subs.inbox.try_recv() {
        out.push(encode_push(push, subs, resp3));
    }
    if out.is_empty() {
        return reply;
    }
    subs.show_in(&ctx.client.info);
    out.push(reply);
    Reply::Many(out)
}

/// # Format
/// `SPUBLISH shardchannel message`: on the slot's primary; delivered here and on its
/// replicas.
pub fn spublish(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(r) = shard_slot(ctx, &args[1..2], false) {
        return r;
    }
    let (channel, payload) = (&args[1], &args[2]);
    let n = ctx.state.pubsub.deliver_shard(channel, payload);
    ctx.state.pubsub.fanout.send(channel, payload, true);
    with_own_pushes(ctx, Reply::Integer(n as i64))
}

/// # Format
/// `PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | SHARDCHANNELS [pattern] |
/// SHARDNUMSUB [shardchannel ...]`: this node's subscriptions.
pub fn pubsub(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let ps = &ctx.state.pubsub;
    let wrong = || {
        Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            super::lossy_trunc(sub, 128)
        ))
    };
    let list = |kind| {
        if args.len() > 3 {
            return wrong();
        }
        let mut names = ps.active(kind, args.get(2).map(|p| &p[..]));
        names.sort();
        Reply::Array(names.into_iter().map(Reply::Bulk).collect())
    };
    let numsub = |kind| {
        let mut out = Vec::new();
        for c in &args[2..] {
            out.push(Reply::Bulk(c.clone()));
            out.push(Reply::Integer(ps.subscribers(kind, c) as i64));
        }
        Reply::Array(out)
    };
    if eq_ic(sub, "channels") {
        list(Kind::Channel)
    } else if eq_ic(sub, "shardchannels") {
        list(Kind::Shard)
    } else if eq_ic(sub, "numsub") {
        numsub(Kind::Channel)
    } else if eq_ic(sub, "shardnumsub") {
        numsub(Kind::Shard)
    } else if eq_ic(sub, "numpat") {
        if args.len() != 2 {
            return wrong();
        }
        Reply::Integer(ps.patterns() as i64)
    } else if eq_ic(sub, "help") {
        Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|s| Reply::simple(s))
            .collect(),
        )
    } else {
        unknown_subcommand(sub, "PUBSUB")
    }
}
