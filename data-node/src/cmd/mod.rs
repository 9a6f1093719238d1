//! Commands: the table, per-connection client state, and dispatch.
//!
//! Every request goes through [`execute`]: the name is looked up in the prebuilt
//! [`table`] without allocating, the arity is checked (Redis convention: negative means
//! "at least"), then either the command is queued (inside `MULTI`) or run. A keyed
//! command first has the slot of every key computed: keys in different slots are
//! `CROSSSLOT`; otherwise [`Cluster::route`](crate::cluster::Cluster::route) decides
//! whether this node may serve the slot, and only then is the slot's table locked and
//! the command run on it. No keyed command bypasses this.
//!
//! Commands are grouped by family, one file each; each command is a function with a
//! `# Format` doc. Argument parsers reject leftover arguments with Redis's errors.

pub mod blocking;
pub mod connection;
pub mod debug;
pub mod functions;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod meta;
pub mod object;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod strings;
pub mod table;
pub mod transactions;
pub mod zsets;

use std::sync::Arc;

use bytes::Bytes;

use crate::db::{now_ms, Argv, Effect, SlotTable};
use crate::resp::parse::parse_i64;
use crate::resp::Reply;
use crate::state::{ClientInfo, ServerState};

pub use crate::db::observe::{argv, pexpireat};
pub use table::{lookup, CommandSpec, Handler, KeySpec, TABLE};

/// Command flags.
pub mod flags {
    /// Modifies the keyspace.
    pub const WRITE: u32 = 1;
    /// Only reads.
    pub const READONLY: u32 = 2;
    /// Administrative.
    pub const ADMIN: u32 = 4;
    /// O(1) or O(log n).
    pub const FAST: u32 = 8;
    /// Transaction control (`MULTI`, `EXEC`, `DISCARD`, `WATCH`, `QUIT`): never queued.
    pub const NOQUEUE: u32 = 16;
    /// May allocate memory.
    pub const DENYOOM: u32 = 32;
    /// Has subcommands (`CONFIG GET`, `CLIENT LIST` ...), listed in [`super::meta`].
    pub const CONTAINER: u32 = 64;
}

/// The state of a transaction being queued.
#[derive(Default)]
pub struct MultiState {
    /// Index into [`TABLE`] and arguments of each queued command.
    pub queued: Vec<(usize, Vec<Bytes>)>,
    /// The one slot all queued keyed commands use.
    pub slot: Option<u16>,
    /// A queued command was rejected: `EXEC` answers `EXECABORT`.
    pub dirty: bool,
    /// Some queued command writes.
    pub write: bool,
    /// Some queued command may grow memory (`EXEC` is refused when memory is full).
    pub denyoom: bool,
}

/// Per-connection state.
pub struct Client {
    pub id: u64,
    /// The client negotiated RESP3 with `HELLO 3`.
    pub resp3: bool,
    /// `READONLY` was sent (reads may be served by a replica).
    pub readonly: bool,
    /// Inside `MULTI`.
    pub multi: Option<MultiState>,
    /// `WATCH`ed slots and their modification counter when watched.
    pub watched: Vec<(u16, u64)>,
    /// Close the connection once the reply is written (`QUIT`).
    pub close: bool,
    /// `CLIENT REPLY OFF`: no replies until `CLIENT REPLY ON`.
    pub reply_off: bool,
    /// Replies not to write, from this command's on: `CLIENT REPLY OFF` skips its own,
    /// `SKIP` its own and the next command's.
    pub skip_replies: u8,
    /// The last command was not run because a migration's handoff holds writes to this
    /// slot: the connection waits for the hold to end and runs it again.
    pub held_on: Option<u16>,
    /// `WAIT numreplicas timeout` ran: the connection waits for the acknowledgements and
    /// replies with their count.
    pub wait: Option<WaitFor>,
    /// Pub/sub subscriptions and the mailbox their messages arrive in (created by the
    /// first subscription).
    pub pubsub: Option<Box<crate::pubsub::Subscriptions>>,
    /// `EVAL` handed a script to the script thread: the connection waits for its reply.
    pub script: Option<scripting::Pending>,
    /// Scripts of this connection wait for the script thread: the next one must not
    /// run before them (on the connection's thread).
    pub scripts_queued: bool,
    /// The command was not run because a script holds its slot: the connection waits
    /// for the script to end and runs it again.
    pub behind_script: bool,
    /// A blocking command found nothing and queued the client: the connection waits for
    /// its reply (see [`crate::blocking`]).
    pub block: Option<blocking::Block>,
    /// The offset of the replication log after this client's last write (what `WAIT`
    /// waits for).
    pub woff: u64,
    /// This is the link from this node's primary (a replica applying the stream): its
    /// commands are not routed, never held, and run as at time 0.
    pub primary_link: bool,
    /// `CLIENT TRACKING on` options (see [`crate::tracking`]).
    pub tracking: Option<crate::tracking::Options>,
    /// `CLIENT CACHING yes|no`, for the next command only.
    pub caching: Option<bool>,
    /// The shared, listable part (`CLIENT LIST`).
    pub info: Arc<ClientInfo>,
}

impl Client {
    pub fn new(info: Arc<ClientInfo>) -> Client {
        Client {
            id: info.id,
            resp3: false,
            readonly: false,
            multi: None,
            watched: Vec::new(),
            close: false,
            reply_off: false,
            skip_replies: 0,
            held_on: None,
            wait: None,
            block: None,
            script: None,
            scripts_queued: false,
            behind_script: false,
            pubsub: None,
            woff: 0,
            primary_link: false,
            tracking: None,
            caching: None,
            info,
        }
    }

    /// The connection's subscriptions and mailbox, made (and the mailbox registered for
    /// others to find) the first time.
    pub fn subscriptions(&mut self) -> &mut crate::pubsub::Subscriptions {
        let info = &self.info;
        self.pubsub.get_or_insert_with(|| {
            let subs = Box::<crate::pubsub::Subscriptions>::default();
            *info.mailbox.lock() = Some(subs.mailbox.clone());
            subs
        })
    }

    /// Whether the reply of the command just run is not to be written (`CLIENT REPLY`).
    pub fn reply_suppressed(&mut self) -> bool {
        if self.skip_replies > 0 {
            self.skip_replies -= 1;
            return true;
        }
        self.reply_off
    }

    /// The class whose `client-output-buffer-limit` applies: `pubsub` while subscribed
    /// to anything, else `normal` (replicas stream over the internal port).
    pub fn class(&self) -> crate::config::ClientClass {
        match self.pubsub.as_ref().is_some_and(|s| s.any()) {
            true => crate::config::ClientClass::PubSub,
            false => crate::config::ClientClass::Normal,
        }
    }
}

/// What `WAIT` waits for.
#[derive(Debug, Clone, Copy)]
pub struct WaitFor {
    pub replicas: usize,
    pub offset: u64,
    /// `None`: forever (`WAIT n 0`).
    pub timeout: Option<std::time::Duration>,
}

/// What a command runs with.
pub struct Ctx<'a> {
    pub state: &'a ServerState,
    pub client: &'a mut Client,
    /// The time of this command, ms since the epoch (expiry decisions use it).
    pub now: u64,
    /// The slot of a keyed command's keys (0 for keyless commands).
    pub slot: u16,
    /// Set by a write command that changed nothing (`SMOVE` of an absent member, `DEL`
    /// of missing keys ...): the slot's modification counter is then left alone, so a
    /// `WATCH` on it still holds, as Redis touches no key there. Error replies never
    /// count as changes either (every write command checks before it modifies).
    pub noop: bool,
    /// The keyspace is observed (see [`crate::db::observe`]): effects are collected.
    pub observed: bool,
    /// What a write propagates instead of itself, if it said (see [`Ctx::propagate`]).
    pub effects: Option<Vec<Effect>>,
    /// Blocking commands answer at once instead of blocking (inside `EXEC`).
    pub nonblocking: bool,
    /// Keys a `DEL`/`UNLINK` removed, while keyspace notifications are on.
    pub deleted: Vec<Bytes>,
}

impl Ctx<'_> {
    /// A context for one command of `client` at `now`.
    pub fn new<'a>(state: &'a ServerState, client: &'a mut Client, now: u64) -> Ctx<'a> {
        Ctx {
            state,
            client,
            now,
            slot: 0,
            noop: false,
            observed: false,
            effects: None,
            nonblocking: false,
            deleted: Vec::new(),
        }
    }

    /// Propagates the command `argv()` in place of the running write command as
    /// received (call it once per command, in order; `argv` is only called when the
    /// keyspace is observed). A write that changes something and never calls this
    /// propagates itself.
    pub fn propagate(&mut self, argv: impl FnOnce() -> Argv) {
        if self.observed {
            self.effects
                .get_or_insert_with(Vec::new)
                .push(Effect::Command(argv()));
        }
    }
}

/// Whether `CLIENT PAUSE WRITE` holds this command, as Redis decides: it may write or
/// replicate (its flags, a subcommand's, a transaction's writes, a script or function).
pub fn pausable_write(client: &Client, args: &[Bytes]) -> bool {
    let Some(idx) = lookup(&args[0]) else {
        return false;
    };
    let spec = &TABLE[idx];
    if spec.name == "exec" {
        return client.multi.as_ref().is_some_and(|m| m.write);
    }
    if matches!(spec.name, "eval" | "evalsha" | "fcall") {
        return true;
    }
    let m = match args.get(1).filter(|_| spec.flags & flags::CONTAINER != 0) {
        Some(sub) => meta::subcommand_position(idx, sub).and_then(|n| meta::subcommand(idx, n)),
        None => Some(meta::of_command(idx)),
    };
    spec.flags & flags::WRITE != 0
        || m.is_some_and(|m| m.has_flag("write") || m.has_flag("may_replicate"))
}

/// Executes one command and returns its reply.
pub fn execute(state: &ServerState, client: &mut Client, args: &[Bytes]) -> Reply {
    execute_at(state, client, args, now_ms())
}

/// Applies one effect another node published (see [`crate::db::observe`]): the command
/// runs as at time 0, so that nothing expires on its own here. Keys expire on this side
/// only through the `DEL`s the origin publishes when they expire there (as a Redis
/// replica does), so a write never finds a key gone that the origin still had.
pub fn apply_effect(state: &ServerState, client: &mut Client, args: &[Bytes]) -> Reply {
    execute_at(state, client, args, 0)
}

/// [`execute`] with the command's clock (`now`, ms since the epoch) given.
fn execute_at(state: &ServerState, client: &mut Client, args: &[Bytes], now: u64) -> Reply {
    let Some(idx) = lookup(&args[0]) else {
        if let Some(ms) = client.multi.as_mut() {
            ms.dirty = true;
        }
        return unknown_command(args);
    };
    let spec = &TABLE[idx];
    // A container's subcommand (`CONFIG GET`) has its own arity, and its name is what
    // `CLIENT LIST` shows (`cmd=config|get`).
    let sub = if args.len() >= 2 && spec.flags & flags::CONTAINER != 0 {
        meta::subcommand_position(idx, &args[1])
    } else {
        None
    };
    client.info.record_command(idx, sub, now_ms());
    if let Some(refused) = pubsub::refused_in_subscriber_mode(client, spec.name) {
        return refused;
    }
    if state.scripts.busy(state.config.busy_reply_threshold())
        && scripting::refused_while_busy(idx, sub)
    {
        return state.scripts.busy_reply();
    }
    let arity_error = if !arity_ok(spec.arity, args.len()) {
        Some(spec.name)
    } else {
        sub.and_then(|n| meta::subcommand(idx, n))
            .filter(|m| !arity_ok(m.arity, args.len()))
            .map(|m| m.name)
    };
    if let Some(name) = arity_error {
        if let Some(ms) = client.multi.as_mut() {
            ms.dirty = true;
        }
        return Reply::arity(name);
    }
    if let Some(oom) = crate::evict::refuse(state, client, spec) {
        return oom;
    }
    if (spec.flags & flags::WRITE != 0 || spec.name == "ping") && !client.primary_link {
        if let Some(misconf) = crate::persist::refuse_writes(state) {
            if let Some(ms) = client.multi.as_mut() {
                ms.dirty = true;
            }
            return misconf;
        }
    }
    if client.multi.is_some() && spec.flags & flags::NOQUEUE == 0 {
        return queue(state, client, idx, args);
    }
    let mut ctx = Ctx::new(state, client, now);
    match spec.handler {
        Handler::Keyless(f) => {
            // A keyless command on the keyspace (KEYS, SCAN, DBSIZE ...) locks every
            // slot: it waits for a running script rather than block its thread on one.
            if spec.flags & (flags::READONLY | flags::WRITE) != 0 && state.scripts.running() {
                ctx.client.behind_script = true;
                return Reply::Null;
            }
            f(&mut ctx, args)
        }
        Handler::Keyed(f) => {
            let slot = match command_slot(spec, args) {
                Ok(s) => s,
                Err(r) => return r,
            };
            if state.scripts.holds(slot) && !ctx.client.primary_link {
                ctx.client.behind_script = true;
                return Reply::Null;
            }
            let write = spec.flags & flags::WRITE != 0;
            ctx.slot = slot;
            let mut table = state.db.lock(slot);
            // Routed and checked under the slot's lock. A migration's handoff sets the
            // hold under this lock, and its end (after the new topology is applied)
            // clears it under this lock: a write either ran before the hold, waits for
            // the decision, or sees the new owner; it never lands here after the slot
            // has moved. The primary's link is not routed: it applies what the primary
            // already decided.
            if !ctx.client.primary_link {
                let replica_read = !write && ctx.client.readonly;
                if let Err(e) = state.cluster.route(slot, replica_read) {
                    return Reply::error(e.to_string());
                }
                if write {
                    if let Err(e) = may_write(state) {
                        return e;
                    }
                }
                if write && table.is_held() {
                    ctx.client.held_on = Some(slot);
                    return Reply::Null;
                }
            }
            ctx.observed = table.observed();
            // A read command's lookups are its hits and misses (as Redis counts them).
            table.count_reads(!write);
            let r = f(&mut ctx, &mut table, args);
            table.count_reads(false);
            if write {
                let mut effects = Vec::new();
                record_write(&mut ctx, &mut table, args, &r, &mut effects);
                let wrote = !effects.is_empty();
                table.publish(effects);
                crate::blocking::serve(state, ctx.client, &mut table, slot, now);
                if wrote {
                    ctx.client.woff = state.repl.end();
                }
            } else if ctx.client.tracking.is_some() && !r.is_error() {
                track_read(state, ctx.client, args);
            }
            r
        }
    }
}

/// A tracking client read the keys of `args` (default mode, and `CLIENT CACHING`'s
/// say for `OPTIN`/`OPTOUT`).
fn track_read(state: &ServerState, client: &Client, args: &[Bytes]) {
    let Some(o) = &client.tracking else { return };
    let remember = match (o.optin, o.optout) {
        (true, _) => client.caching == Some(true),
        (_, true) => client.caching != Some(false),
        _ => true,
    };
    if !o.bcast && remember {
        state
            .tracker
            .read(client.id, &keys_of(args), &state.clients);
    }
}

/// Whether this node may acknowledge a write now (it is routed here): its write lease
/// holds, its data can reach the disk (`MISCONF`), and `min-replicas-to-write` is met.
pub fn may_write(state: &ServerState) -> Result<(), Reply> {
    state
        .lease
        .check()
        .map_err(|e| Reply::error(e.to_string()))?;
    if let Some(misconf) = crate::persist::refuse_writes(state) {
        return Err(misconf);
    }
    let (need, max_lag) = state.config.min_replicas();
    if need > 0
        && state.cluster.role() == ember_core::Role::Primary
        && (state
            .followers
            .good(std::time::Duration::from_secs(max_lag)) as u64)
            < need
    {
        return Err(Reply::err("NOREPLICAS Not enough good replicas to write."));
    }
    Ok(())
}

/// Whether a write command that replied `r` may have changed its keys.
pub fn changed(ctx: &Ctx, r: &Reply) -> bool {
    !ctx.noop && !r.is_error()
}

/// After a write command ran on `table` and replied `r`: bumps the slot's version for
/// `WATCH`, sends its keyspace notifications and tracking invalidations, and appends its
/// effects (when the keyspace is observed) to `effects`, for the caller to publish.
/// Every write goes through here (commands, `EXEC`, scripts, served blocking pops).
/// Nothing happens for a write that changed nothing.
pub fn record_write(
    ctx: &mut Ctx,
    table: &mut SlotTable,
    args: &[Bytes],
    r: &Reply,
    effects: &mut Vec<Effect>,
) {
    let said = ctx.effects.take();
    let deleted = std::mem::take(&mut ctx.deleted);
    if !changed(ctx, r) {
        return;
    }
    ctx.state.db.bump_version(ctx.slot);
    ctx.state.persist.changed(1);
    notify(ctx, table, args, r, &deleted);
    if ctx.state.tracker.active() {
        let keys: Vec<&[u8]> = keys_of(args).into_iter().map(|k| k.as_ref()).collect();
        ctx.state
            .tracker
            .changed(&keys, Some(ctx.client.id), &ctx.state.clients);
    }
    if ctx.observed {
        match said {
            Some(said) => effects.extend(said),
            None => effects.push(Effect::Command(args.to_vec())),
        }
    }
}

/// Keyspace notifications of a write that changed something (see [`crate::notify`]).
fn notify(ctx: &Ctx, table: &mut SlotTable, args: &[Bytes], r: &Reply, deleted: &[Bytes]) {
    let notify = &ctx.state.config.notify;
    if !notify.wants(crate::notify::ALL) {
        return;
    }
    // Keys the command found expired come first, as Redis expires them before it runs.
    for key in table.take_expired_notes() {
        notify.send(&ctx.state.pubsub, crate::notify::EXPIRED, "expired", &key);
    }
    let Some(idx) = lookup(&args[0]) else {
        return;
    };
    let now = ctx.now;
    for (class, event, key) in crate::notify::events(TABLE[idx].name, args, r, deleted, |k| {
        table.contains(k, now)
    }) {
        notify.send(&ctx.state.pubsub, class, event, &key);
    }
}

fn queue(state: &ServerState, client: &mut Client, idx: usize, args: &[Bytes]) -> Reply {
    let spec = &TABLE[idx];
    let readonly = client.readonly;
    // The primary's link applies what the primary decided: not routed, never refused.
    let routed = !client.primary_link;
    let Some(ms) = client.multi.as_mut() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    if meta::of_command(idx).has_flag("no_multi") {
        // `SAVE`, `SHUTDOWN` ...: refused, and the transaction with them (as Redis).
        ms.dirty = true;
        return Reply::err("ERR Command not allowed inside a transaction");
    }
    let write = spec.flags & flags::WRITE != 0;
    ms.denyoom |= spec.flags & flags::DENYOOM != 0;
    // As Redis: a write that could not be acknowledged now is refused when queued, and
    // the transaction is discarded (it is checked again at `EXEC`).
    if write && routed {
        if let Err(e) = may_write(state) {
            ms.dirty = true;
            return e;
        }
    }
    if let Handler::Keyed(_) = spec.handler {
        let slot = match command_slot(spec, args) {
            Ok(s) => s,
            Err(r) => {
                ms.dirty = true;
                return r;
            }
        };
        if ms.slot.is_some_and(|s| s != slot) {
            ms.dirty = true;
            return Reply::err(CROSSSLOT);
        }
        if routed {
            if let Err(e) = state.cluster.route(slot, !write && readonly) {
                ms.dirty = true;
                return Reply::error(e.to_string());
            }
        }
        ms.slot = Some(slot);
    }
    ms.write |= write;
    ms.queued.push((idx, args.to_vec()));
    let queued = ms.queued.len() as i64;
    client
        .info
        .multi
        .store(queued, std::sync::atomic::Ordering::Relaxed);
    Reply::simple("QUEUED")
}

pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The keys of a command (an effect): none for an unknown or keyless one.
pub fn keys_of(args: &[Bytes]) -> Vec<&Bytes> {
    let Some(spec) = args
        .first()
        .and_then(|name| lookup(name))
        .map(|i| &TABLE[i])
    else {
        return Vec::new();
    };
    if !matches!(spec.handler, Handler::Keyed(_)) {
        return Vec::new();
    }
    match key_positions(spec, args) {
        Ok((first, last, step)) => (first..=last.min(args.len().saturating_sub(1)))
            .step_by(step.max(1))
            .map(|i| &args[i])
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The slot of all the keys of a keyed command, or the error to reply.
pub fn command_slot(spec: &CommandSpec, args: &[Bytes]) -> Result<u16, Reply> {
    let (first, last, step) = key_positions(spec, args)?;
    let mut slot: Option<u16> = None;
    let mut i = first;
    while i <= last && i < args.len() {
        let s = ember_core::key_slot(&args[i]);
        match slot {
            Some(x) if x != s => return Err(Reply::err(CROSSSLOT)),
            _ => slot = Some(s),
        }
        i += step;
    }
    slot.ok_or_else(|| Reply::err("ERR no keys"))
}

/// `(first, last, step)` argument positions of a command's keys.
fn key_positions(spec: &CommandSpec, args: &[Bytes]) -> Result<(usize, usize, usize), Reply> {
    let (first, last, step) = match spec.keys {
        KeySpec::Range { first, last, step } => {
            let last = if last < 0 {
                args.len() as i64 + last as i64
            } else {
                last as i64
            };
            (first, last.max(0) as usize, step)
        }
        KeySpec::NumKeys { pos, too_many } => {
            let n = match parse_i64(&args[pos]) {
                Some(n) if n > 0 => n as u64,
                _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
            };
            if n > (args.len() - pos - 1) as u64 {
                return Err(Reply::err(too_many));
            }
            let n = n as usize;
            (pos + 1, pos + n, 1)
        }
    };
    Ok((first, last, step))
}

/// Whether `n` arguments (the name included) fit `arity` (negative: at least).
pub fn arity_ok(arity: i32, n: usize) -> bool {
    if arity >= 0 {
        n == arity as usize
    } else {
        n >= (-arity) as usize
    }
}

/// The name `CLIENT LIST` shows for `TABLE[idx]` and its `sub`command position:
/// `get`, `client|list`.
pub fn command_name(idx: usize, sub: Option<usize>) -> &'static str {
    match sub.and_then(|n| meta::subcommand(idx, n)) {
        Some(m) => m.name,
        None => TABLE[idx].name,
    }
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = lossy_trunc(&args[0], 128);
    let mut a = String::new();
    for arg in &args[1..] {
        if a.len() >= 128 {
            break;
        }
        let rem = 128 - a.len();
        a.push('\'');
        a.push_str(&lossy_trunc(arg, rem));
        a.push_str("' ");
    }
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {a}"
    ))
}

/// `ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        lossy_trunc(sub, 128)
    ))
}

/// Lossy UTF-8 of the first `n` bytes of `b`.
pub fn lossy_trunc(b: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(n)]).into_owned()
}

/// ASCII case-insensitive comparison with an (uppercase or lowercase) literal.
pub fn eq_ic(a: &[u8], lit: &str) -> bool {
    a.eq_ignore_ascii_case(lit.as_bytes())
}

/// An integer argument (`ERR value is not an integer or out of range`).
pub fn arg_int(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(Reply::not_integer)
}

/// Parses a float like Redis's `strtod` checks: whole string, no NaN, no spaces.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(v)
}

/// A float argument (`ERR value is not a valid float`).
pub fn arg_float(b: &[u8]) -> Result<f64, Reply> {
    parse_f64(b).ok_or_else(Reply::not_float)
}

/// The glob matcher of every pattern-taking command (see [`crate::glob`]).
pub use crate::glob::glob_match;

/// Normalises a Redis-style index range (negative counts from the end) against `len`;
/// `None` when empty.
pub fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

/// Shared by the `*SCAN` commands: `[MATCH pattern] [COUNT count]` (and `TYPE` for
/// `SCAN`), starting at `args[start]`.
pub struct ScanOpts {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<Bytes>,
}

pub fn parse_scan_opts(args: &[Bytes], start: usize, allow_type: bool) -> Result<ScanOpts, Reply> {
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut i = start;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "count") && i + 1 < args.len() {
            let c = arg_int(&args[i + 1])?;
            if c < 1 {
                return Err(Reply::syntax());
            }
            o.count = c as usize;
            i += 2;
        } else if eq_ic(a, "match") && i + 1 < args.len() {
            let p = args[i + 1].clone();
            o.pattern = if &p[..] == b"*" { None } else { Some(p) };
            i += 2;
        } else if allow_type && eq_ic(a, "type") && i + 1 < args.len() {
            o.type_name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(Reply::syntax());
        }
    }
    Ok(o)
}

/// Parses a `*SCAN` cursor (`ERR invalid cursor`) as Redis does, with C's `strtoul`:
/// an optional sign (`-1` is the largest cursor), digits that fit 64 bits, nothing else;
/// the empty string is cursor 0.
pub fn parse_cursor(b: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::err("ERR invalid cursor");
    let (neg, digits) = match b.split_first() {
        None => return Ok(0),
        Some((b'-', d)) => (true, d),
        Some((b'+', d)) => (false, d),
        Some(_) => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let v = digits
        .iter()
        .try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(invalid)?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// The most elements a negative count of `HRANDFIELD` / `SRANDMEMBER` / `ZRANDMEMBER`
/// may ask for (ember's limit; Redis has none). A negative count repeats elements, so
/// without it a one-element set could be made to build a reply of any size in memory.
pub const MAX_RANDOM_REPEATS: i64 = 1 << 20;

/// The `count` of `HRANDFIELD` / `SRANDMEMBER` / `ZRANDMEMBER` with Redis's range
/// checks (`pairs`: `WITHVALUES` / `WITHSCORES`, whose reply is twice as long), then
/// ember's [`MAX_RANDOM_REPEATS`].
pub fn random_count(b: &[u8], pairs: bool) -> Result<i64, Reply> {
    let n = arg_int(b)?;
    if n == i64::MIN {
        return Err(Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if pairs && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(Reply::err("ERR value is out of range"));
    }
    if n < -MAX_RANDOM_REPEATS {
        return Err(Reply::error(format!(
            "ERR value is out of range, value must between -{MAX_RANDOM_REPEATS} and 9223372036854775807"
        )));
    }
    Ok(n)
}

/// Runs `f` on the table of a key for code outside a keyed command (tests, tools).
pub fn with_key<R>(state: &ServerState, key: &[u8], f: impl FnOnce(&mut SlotTable) -> R) -> R {
    state.db.with_slot(ember_core::key_slot(key), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(norm_range(0, -1, 3), Some((0, 2)));
        assert_eq!(norm_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(norm_range(2, 1, 3), None);
        assert_eq!(norm_range(5, 10, 3), None);
        assert_eq!(norm_range(0, 0, 0), None);
    }
}

/// Typed access to a key's value: `Ok(None)` when missing, `Err(WRONGTYPE)` when it
/// holds another type. The `_mut` form can create an empty value.
macro_rules! accessors {
    ($get:ident, $get_mut:ident, $variant:ident, $ty:ty) => {
        pub fn $get<'a>(
            t: &'a mut SlotTable,
            key: &[u8],
            now: u64,
        ) -> Result<Option<&'a $ty>, Reply> {
            match t.get(key, now) {
                None => Ok(None),
                Some(crate::db::Value::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(Reply::wrongtype()),
            }
        }

        pub fn $get_mut<'a>(
            t: &'a mut SlotTable,
            key: &[u8],
            now: u64,
            create: bool,
        ) -> Result<Option<&'a mut $ty>, Reply> {
            if create && !t.contains(key, now) {
                t.set(key, crate::db::Value::$variant(Default::default()));
            }
            match t.get_mut(key, now) {
                None => Ok(None),
                Some(crate::db::Value::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(Reply::wrongtype()),
            }
        }
    };
}

/// A hash value.
pub type HashVal = crate::db::DenseMap<Box<[u8]>>;
/// A list value.
pub type ListVal = std::collections::VecDeque<Box<[u8]>>;
/// A set value.
pub type SetVal = crate::db::DenseSet;

accessors!(get_hash, get_hash_mut, Hash, HashVal);
accessors!(get_list, get_list_mut, List, ListVal);
accessors!(get_set, get_set_mut, Set, SetVal);
accessors!(get_zset, get_zset_mut, ZSet, crate::db::ZSet);

/// The string value of `key`: `Ok(None)` when missing, `Err(WRONGTYPE)` otherwise.
pub fn get_str<'a>(t: &'a mut SlotTable, key: &[u8], now: u64) -> Result<Option<&'a [u8]>, Reply> {
    match t.get(key, now) {
        None => Ok(None),
        Some(crate::db::Value::Str(v)) => Ok(Some(v)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// Unwraps a `Result<T, Reply>` or returns the error reply.
#[macro_export]
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// An integer argument already validated by the key extractor.
pub fn parse_i64_arg(b: &[u8]) -> Option<i64> {
    parse_i64(b)
}
