//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD / EXISTS / FLUSH /
//! KILL. A script known short runs here, on the connection's thread; any other on the
//! script thread ([`crate::script`]), and the connection waits for its reply.

use bytes::Bytes;

use super::{eq_ic, unknown_subcommand, Ctx, CROSSSLOT};
use crate::resp::parse::parse_i64;
use crate::resp::Reply;
use crate::script::Job;

/// A script handed to the script thread: the connection waits for the reply.
pub type Pending = tokio::sync::oneshot::Receiver<Reply>;

/// The flags of a `#!lua flags=...` first line that ember acts on.
#[derive(Default)]
struct Shebang {
    /// The script has a shebang line (it declares its flags).
    declared: bool,
    no_writes: bool,
    no_cluster: bool,
    allow_oom: bool,
}

/// Parses the shebang line of `body` (if it has one): its flags, and the body without
/// that line (an empty first line keeps line numbers as they were).
fn shebang(body: &Bytes) -> Result<(Shebang, Bytes), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((Shebang::default(), body.clone()));
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let mut words = line[2..].split_whitespace();
    if words.next() != Some("lua") {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {}",
            line.split_whitespace().next().unwrap_or("#!")
        )));
    }
    let mut flags = Shebang {
        declared: true,
        ..Shebang::default()
    };
    for w in words {
        let Some(list) = w.strip_prefix("flags=") else {
            return Err(Reply::error(format!("ERR Unknown lua shebang option: {w}")));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            match f {
                "no-writes" => flags.no_writes = true,
                "no-cluster" => flags.no_cluster = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" | "allow-cross-slot-keys" => {}
                other => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {other}"
                    )))
                }
            }
        }
    }
    Ok((flags, body.slice(end..)))
}

/// `EVAL`, `EVALSHA` and their `_RO` forms.
fn run(
    ctx: &mut Ctx,
    args: &[Bytes],
    (sha, original, short): (String, Bytes, bool),
    read_only: bool,
) -> Reply {
    let n = match parse_i64(&args[2]) {
        None => return Reply::not_integer(),
        Some(n) if n < 0 => return Reply::err("ERR Number of keys can't be negative"),
        Some(n) if n as u64 > (args.len() - 3) as u64 => {
            return Reply::err("ERR Number of keys can't be greater than number of args")
        }
        Some(n) => n as usize,
    };
    let (flags, body) = match shebang(&original) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if flags.no_cluster && !ctx.state.cluster.is_standalone() {
        return Reply::err("ERR Can not run script on cluster, 'no-cluster' flag is set.");
    }
    let read_only = read_only || flags.no_writes;
    if let Some(oom) = refused_out_of_memory(ctx, flags.declared, read_only, flags.allow_oom) {
        return oom;
    }
    let keys = &args[3..3 + n];
    let slot = match route_keys(ctx, keys, read_only) {
        Ok(Some(slot)) => slot,
        Ok(None) => return Reply::Null,
        Err(r) => return r,
    };
    submit(
        ctx,
        Job {
            sha,
            body,
            original,
            command: args.into(),
            keys: n,
            slot,
            read_only,
            readonly_client: ctx.client.readonly,
            load_only: false,
            function: None,
            short,
            allow_oom: flags.allow_oom,
        },
    )
}

/// A script that declares its flags (a shebang line; every function), may write and
/// did not declare `allow-oom` is refused at its start when memory is full, as in Redis
/// (one without a shebang is refused at its first write instead).
pub fn refused_out_of_memory(
    ctx: &Ctx,
    declared: bool,
    read_only: bool,
    allow_oom: bool,
) -> Option<Reply> {
    (declared && !read_only && !allow_oom && crate::evict::out_of_memory(ctx.state))
        .then(|| Reply::err(crate::evict::OOM))
}

/// The slot of a script's (or function's) declared keys, routed here: `Err` is the
/// reply (`CROSSSLOT`, `MOVED` ...); `Ok(None)`: a migration's handoff holds the slot, the
/// command runs again after its decision (answer `Reply::Null` meanwhile).
pub fn route_keys(
    ctx: &mut Ctx,
    keys: &[Bytes],
    read_only: bool,
) -> Result<Option<Option<u16>>, Reply> {
    let mut slot = None;
    for k in keys {
        let s = ember_core::key_slot(k);
        if slot.is_some_and(|x| x != s) {
            return Err(Reply::err(CROSSSLOT));
        }
        slot = Some(s);
    }
    if let Some(s) = slot {
        let replica_read = read_only && ctx.client.readonly;
        if let Err(e) = ctx.state.cluster.route(s, replica_read) {
            return Err(Reply::error(e.to_string()));
        }
        if !read_only && ctx.state.db.with_slot(s, |t| t.is_held()) {
            // A migration's handoff holds the slot: wait for its decision, then again.
            ctx.client.held_on = Some(s);
            return Ok(None);
        }
    }
    Ok(Some(slot))
}

/// Whether `name` is a command that hands a script to the script thread.
pub fn is_script(name: &[u8]) -> bool {
    [
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "fcall",
        "fcall_ro",
    ]
    .iter()
    .any(|s| eq_ic(name, s))
}

/// Waits on this thread for a script's reply (inside `EXEC`, which cannot yield): the
/// connection thread is held until the script thread answered.
pub fn wait_here(mut pending: Pending) -> Reply {
    loop {
        match pending.try_recv() {
            Ok(r) => return r,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                std::thread::sleep(std::time::Duration::from_micros(20))
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Reply::err("ERR the script thread is gone")
            }
        }
    }
}

/// Runs `job` here if it is known short and nothing is in its way (the connection's
/// earlier scripts, another script running); otherwise hands it to the script thread
/// and the connection waits for the reply.
pub fn submit(ctx: &mut Ctx, job: Job) -> Reply {
    if job.short && !ctx.client.scripts_queued {
        if let Some(reply) = crate::script::lua::run_here(ctx.state, &job) {
            return reply;
        }
    }
    ctx.client.script = Some(ctx.state.scripts.submit(job));
    Reply::Null
}

/// # Format
/// `EVAL script numkeys [key ...] [arg ...]`, `EVAL_RO ...`
pub fn eval(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sha = crate::script::sha1_hex(&args[1]);
    let short = ctx.state.scripts.lookup(&sha).is_some_and(|(_, s)| s);
    let read_only = eq_ic(&args[0], "eval_ro");
    run(ctx, args, (sha, args[1].clone(), short), read_only)
}

/// # Format
/// `EVALSHA sha1 numkeys [key ...] [arg ...]`, `EVALSHA_RO ...`
pub fn evalsha(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let Some((body, short)) = ctx.state.scripts.lookup(&sha) else {
        return Reply::err("NOSCRIPT No matching script. Please use EVAL.");
    };
    let read_only = eq_ic(&args[0], "evalsha_ro");
    run(ctx, args, (sha, body, short), read_only)
}

/// # Format
/// `SCRIPT LOAD script | EXISTS sha1 [sha1 ...] | FLUSH [ASYNC|SYNC] | KILL | HELP`
pub fn script(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let scripts = &ctx.state.scripts;
    if eq_ic(sub, "load") {
        let original = args[2].clone();
        let body = match shebang(&original) {
            Ok((_, body)) => body,
            Err(r) => return r,
        };
        let job = Job {
            sha: crate::script::sha1_hex(&original),
            body,
            original,
            command: args.into(),
            keys: 0,
            slot: None,
            read_only: true,
            readonly_client: false,
            load_only: true,
            function: None,
            short: false,
            allow_oom: false,
        };
        submit(ctx, job)
    } else if eq_ic(sub, "exists") {
        Reply::Array(
            args[2..]
                .iter()
                .map(|s| Reply::Integer(scripts.exists(s) as i64))
                .collect(),
        )
    } else if eq_ic(sub, "flush") {
        match args.get(2) {
            None => {}
            Some(m) if args.len() == 3 && (eq_ic(m, "async") || eq_ic(m, "sync")) => {}
            Some(_) => {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
        }
        scripts.flush();
        Reply::ok()
    } else if eq_ic(sub, "kill") {
        scripts.kill(false)
    } else if eq_ic(sub, "help") {
        Reply::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::simple(s))
            .collect(),
        )
    } else {
        unknown_subcommand(sub, "SCRIPT")
    }
}

/// While a script runs past its time limit, the node answers `BUSY` to all but the
/// commands flagged `allow_busy` (`SCRIPT KILL`, `HELLO`, `QUIT`, `RESET` ...).
pub fn refused_while_busy(idx: usize, sub: Option<usize>) -> bool {
    let allowed = match sub.and_then(|n| super::meta::subcommand(idx, n)) {
        Some(m) => m.has_flag("allow_busy"),
        None => super::meta::of_command(idx).has_flag("allow_busy"),
    };
    !allowed
}
