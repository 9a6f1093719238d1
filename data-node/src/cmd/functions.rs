//! Function commands: FCALL, FCALL_RO and FUNCTION LOAD / DELETE / FLUSH / RESTORE /
//! LIST / DUMP / STATS / KILL / HELP. Changes go through the control plane
//! ([`crate::script::functions`]); the rest is answered from this node's libraries.

use bytes::Bytes;
use ember_core::functions::RestorePolicy;

use super::{eq_ic, unknown_subcommand, Ctx};
use crate::resp::parse::parse_i64;
use crate::resp::Reply;
use crate::script::dump;
use crate::script::functions::{self, Change};
use crate::script::Job;

/// # Format
/// `FCALL function numkeys [key ...] [arg ...]`, `FCALL_RO ...`
pub fn fcall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let applied = ctx.state.scripts.functions.applied();
    let Some(info) = applied.by_name.get(&name) else {
        return Reply::err("ERR Function not found");
    };
    let short = applied
        .short
        .get(&name)
        .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
    let n = match parse_i64(&args[2]) {
        None => return Reply::err("ERR Bad number of keys provided"),
        Some(n) if n < 0 => return Reply::err("ERR Number of keys can't be negative"),
        Some(n) if n as u64 > (args.len() - 3) as u64 => {
            return Reply::err("ERR Number of keys can't be greater than number of args")
        }
        Some(n) => n as usize,
    };
    if info.has_flag("no-cluster") && !ctx.state.cluster.is_standalone() {
        return Reply::err("ERR Can not run script on cluster, 'no-cluster' flag is set.");
    }
    let ro_command = eq_ic(&args[0], "fcall_ro");
    if ro_command && !info.has_flag("no-writes") {
        return Reply::err("ERR Can not execute a script with write flag using *_ro command.");
    }
    let read_only = ro_command || info.has_flag("no-writes");
    let allow_oom = info.has_flag("allow-oom");
    if let Some(oom) = super::scripting::refused_out_of_memory(ctx, true, read_only, allow_oom) {
        return oom;
    }
    let keys = &args[3..3 + n];
    let slot = match super::scripting::route_keys(ctx, keys, read_only) {
        Ok(Some(slot)) => slot,
        Ok(None) => return Reply::Null,
        Err(r) => return r,
    };
    let job = Job {
        sha: String::new(),
        body: Bytes::new(),
        original: Bytes::new(),
        command: args.into(),
        keys: n,
        slot,
        read_only,
        readonly_client: ctx.client.readonly,
        load_only: false,
        function: Some(name),
        short,
        allow_oom,
    };
    super::scripting::submit(ctx, job)
}

/// # Format
/// `FUNCTION LOAD [REPLACE] code | DELETE library | FLUSH [ASYNC|SYNC] |
/// RESTORE payload [FLUSH|APPEND|REPLACE] | LIST [LIBRARYNAME pattern] [WITHCODE] |
/// DUMP | STATS | KILL | HELP`
pub fn function(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let change = if eq_ic(sub, "load") {
        load(args)
    } else if eq_ic(sub, "delete") && args.len() == 3 {
        Ok(Change::Delete {
            name: String::from_utf8_lossy(&args[2]).into_owned(),
        })
    } else if eq_ic(sub, "flush") && args.len() <= 3 {
        match args.get(2) {
            Some(m) if !eq_ic(m, "async") && !eq_ic(m, "sync") => Err(Reply::err(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            )),
            _ => Ok(Change::Flush),
        }
    } else if eq_ic(sub, "restore") && args.len() <= 4 {
        restore(args)
    } else if eq_ic(sub, "list") {
        return list(ctx, args);
    } else if eq_ic(sub, "dump") && args.len() == 2 {
        let applied = ctx.state.scripts.functions.applied();
        return Reply::Bulk(
            dump::encode(applied.libraries.values().map(|l| l.code.as_str())).into(),
        );
    } else if eq_ic(sub, "stats") && args.len() == 2 {
        return stats(ctx);
    } else if eq_ic(sub, "kill") && args.len() == 2 {
        return ctx.state.scripts.kill(true);
    } else if eq_ic(sub, "help") && args.len() == 2 {
        return help();
    } else {
        return unknown_subcommand(sub, "FUNCTION");
    };
    match change {
        Ok(change) => {
            ctx.client.script = Some(functions::submit(ctx.state, change));
            Reply::Null
        }
        Err(r) => r,
    }
}

fn text(b: &Bytes) -> Result<String, Reply> {
    String::from_utf8(b.to_vec()).map_err(|_| {
        Reply::error(format!(
            "ERR {}",
            ember_core::functions::FunctionError::NotText
        ))
    })
}

fn load(args: &[Bytes]) -> Result<Change, Reply> {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        if !eq_ic(&args[at], "replace") {
            return Err(Reply::error(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(&args[at])
            )));
        }
        replace = true;
        at += 1;
    }
    let Some(code) = args.get(at) else {
        return Err(Reply::err("ERR Function code is missing"));
    };
    Ok(Change::Load {
        code: text(code)?,
        replace,
    })
}

fn restore(args: &[Bytes]) -> Result<Change, Reply> {
    let policy =
        match args.get(3) {
            None => RestorePolicy::Append,
            Some(p) if eq_ic(p, "append") => RestorePolicy::Append,
            Some(p) if eq_ic(p, "replace") => RestorePolicy::Replace,
            Some(p) if eq_ic(p, "flush") => RestorePolicy::Flush,
            Some(_) => return Err(Reply::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )),
        };
    let codes = dump::decode(&args[2]).map_err(|e| Reply::error(format!("ERR {e}")))?;
    let code = codes
        .iter()
        .map(|c| text(&Bytes::copy_from_slice(c)))
        .collect::<Result<_, _>>()?;
    Ok(Change::Restore { code, policy })
}

/// `FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]`, libraries by name.
fn list(ctx: &Ctx, args: &[Bytes]) -> Reply {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        if !with_code && eq_ic(&args[i], "withcode") {
            with_code = true;
        } else if pattern.is_none() && eq_ic(&args[i], "libraryname") {
            let Some(p) = args.get(i + 1) else {
                return Reply::err("ERR library name argument was not given");
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Reply::error(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(&args[i])
            ));
        }
        i += 1;
    }
    let applied = ctx.state.scripts.functions.applied();
    let libraries: Vec<Reply> = applied
        .libraries
        .values()
        .filter(|l| pattern.is_none_or(|p| crate::glob::glob_match(p, l.name.as_bytes(), true)))
        .map(|l| {
            let functions = l
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (bulk("name"), bulk(&f.name)),
                        (
                            bulk("description"),
                            f.description.as_deref().map_or(Reply::Null, bulk),
                        ),
                        (
                            bulk("flags"),
                            Reply::Set(
                                f.flags
                                    .iter()
                                    .map(|f| Reply::Simple(f.clone().into()))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect();
            let mut fields = vec![
                (bulk("library_name"), bulk(&l.name)),
                (bulk("engine"), bulk("LUA")),
                (bulk("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((bulk("library_code"), bulk(&l.code)));
            }
            Reply::Map(fields)
        })
        .collect();
    Reply::Array(libraries)
}

/// `FUNCTION STATS`: the running function and the library counts.
fn stats(ctx: &Ctx) -> Reply {
    let scripts = &ctx.state.scripts;
    let running = scripts.functions.running.lock().clone();
    if running.is_none() && scripts.busy(ctx.state.config.busy_reply_threshold()) {
        // An EVAL script is running (Redis answers so too).
        return scripts.busy_reply();
    }
    let running = match running {
        None => Reply::Null,
        Some(command) => Reply::Map(vec![
            (bulk("name"), Reply::Bulk(command[1].clone())),
            (
                bulk("command"),
                Reply::Array(command.iter().cloned().map(Reply::Bulk).collect()),
            ),
            (
                bulk("duration_ms"),
                Reply::Integer(scripts.running_ms() as i64),
            ),
        ]),
    };
    let applied = scripts.functions.applied();
    let counts = Reply::Map(vec![
        (
            bulk("libraries_count"),
            Reply::Integer(applied.libraries.len() as i64),
        ),
        (
            bulk("functions_count"),
            Reply::Integer(applied.by_name.len() as i64),
        ),
    ]);
    Reply::Map(vec![
        (bulk("running_script"), running),
        (bulk("engines"), Reply::Map(vec![(bulk("LUA"), counts)])),
    ])
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn help() -> Reply {
    Reply::Array(
        [
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|s| Reply::simple(s))
        .collect(),
    )
}
