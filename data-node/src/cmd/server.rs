//! Server commands: COMMAND, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME, MEMORY,
//! LASTSAVE, and the dispatch of CLUSTER to the cluster module.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::table::flag_names;
use super::{eq_ic, glob_match, lookup, unknown_subcommand, Ctx, KeySpec, TABLE};
use crate::cluster::RouteFlags;
use crate::resp::Reply;

/// # Format
/// `DBSIZE`
pub fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Integer(ctx.state.db.dbsize() as i64)
}

/// # Format
/// `FLUSHDB [ASYNC|SYNC]`, `FLUSHALL [ASYNC|SYNC]`
pub fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 || (args.len() == 2 && !eq_ic(&args[1], "async") && !eq_ic(&args[1], "sync"))
    {
        return Reply::syntax();
    }
    ctx.state.db.flush();
    Reply::ok()
}

/// # Format
/// `TIME`
pub fn time(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::bulk_str(&d.as_secs().to_string()),
        Reply::bulk_str(&d.subsec_micros().to_string()),
    ])
}

/// # Format
/// `LASTSAVE` (ember does not persist: the start time)
pub fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Integer(ctx.state.started_unix as i64)
}

/// # Format
/// `CLUSTER subcommand [args...]` (handled by the cluster module)
pub fn cluster(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    crate::cluster::command::cluster_command(&ctx.state.cluster, &ctx.state.db, args)
}

/// # Format
/// `MEMORY USAGE key [SAMPLES count]`, `MEMORY STATS`, `MEMORY DOCTOR`
pub fn memory(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "usage") {
        if args.len() != 3 && args.len() != 5 {
            return Reply::syntax();
        }
        if args.len() == 5 {
            if !eq_ic(&args[3], "samples") {
                return Reply::syntax();
            }
            if let Err(r) = super::arg_int(&args[4]) {
                return r;
            }
        }
        let key = &args[2];
        let slot = ember_core::key_slot(key);
        let rf = RouteFlags {
            write: false,
            asking: std::mem::take(&mut ctx.client.asking),
            readonly: ctx.client.readonly,
        };
        if let Err(e) = ctx.state.cluster.route(slot, rf) {
            return Reply::error(e.to_string());
        }
        let now = ctx.now;
        ctx.state.db.with_slot(slot, |t| match t.get(key, now) {
            Some(v) => Reply::Integer((v.mem_usage() + key.len() + 48) as i64),
            None => Reply::Null,
        })
    } else if eq_ic(sub, "stats") {
        let used = ctx.state.used_memory();
        Reply::Map(vec![
            (
                Reply::bulk_str("total.allocated"),
                Reply::Integer(used as i64),
            ),
            (
                Reply::bulk_str("keys.count"),
                Reply::Integer(ctx.state.db.dbsize() as i64),
            ),
        ])
    } else if eq_ic(sub, "doctor") {
        Reply::Verbatim("txt", Bytes::from_static(b"Sam, I have no memory problems"))
    } else {
        unknown_subcommand(sub, "MEMORY")
    }
}

/// # Format
/// `INFO [section ...]` (server, clients, memory, stats, keyspace, cluster; `all`,
/// `everything`, `default`)
pub fn info(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let st = ctx.state;
    let want = |name: &str| {
        args.len() == 1
            || args[1..].iter().any(|a| {
                eq_ic(a, name) || eq_ic(a, "all") || eq_ic(a, "everything") || eq_ic(a, "default")
            })
    };
    let mut s = String::new();
    if want("server") {
        let uptime = st.started.elapsed().as_secs();
        let _ = write!(
            s,
            "# Server\r\nredis_version:{}\r\nember_version:{}\r\nredis_mode:cluster\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:ember-data-node\r\n\r\n",
            super::connection::VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            st.config.port,
            uptime,
            uptime / 86400
        );
    }
    if want("clients") {
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:0\r\n\r\n",
            st.clients.len()
        );
    }
    if want("memory") {
        let used = st.used_memory();
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_allocator:{}\r\n\r\n",
            human(used),
            crate::server::rss_bytes(),
            crate::server::allocator_name(),
        );
    }
    if want("stats") {
        let (_, expired) = st.db.expiry_stats();
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\nrejected_connections:0\r\n\r\n",
            st.stats.connections.load(Ordering::Relaxed),
            st.stats.commands.load(Ordering::Relaxed),
            expired
        );
    }
    if want("cluster") {
        s.push_str("# Cluster\r\n");
        s.push_str(&st.cluster.info_section());
        s.push_str("\r\n");
    }
    if want("keyspace") {
        s.push_str("# Keyspace\r\n");
        let n = st.db.dbsize();
        if n > 0 {
            let (expires, _) = st.db.expiry_stats();
            let _ = write!(s, "db0:keys={n},expires={expires},avg_ttl=0\r\n");
        }
        s.push_str("\r\n");
    }
    while s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    Reply::Verbatim("txt", Bytes::from(s))
}

fn human(n: usize) -> String {
    let f = n as f64;
    if f >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", f / (1024.0 * 1024.0 * 1024.0))
    } else if f >= 1024.0 * 1024.0 {
        format!("{:.2}M", f / (1024.0 * 1024.0))
    } else if f >= 1024.0 {
        format!("{:.2}K", f / 1024.0)
    } else {
        format!("{n}B")
    }
}

/// # Format
/// `CONFIG GET pattern [pattern ...]`, `CONFIG SET name value [name value ...]`,
/// `CONFIG RESETSTAT`, `CONFIG REWRITE`
pub fn config(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let cfg = &ctx.state.config;
    if eq_ic(sub, "get") {
        if args.len() < 3 {
            return Reply::arity("config|get");
        }
        let mut pairs = Vec::new();
        for name in crate::config::RuntimeConfig::names() {
            if args[2..]
                .iter()
                .any(|p| glob_match(p, name.as_bytes(), true))
            {
                let v = if name == "cluster-require-full-coverage" {
                    // Read-only: the control plane decides it, per topology.
                    let full = ctx
                        .state
                        .cluster
                        .applied()
                        .is_none_or(|a| a.topology.require_full_coverage);
                    Some(if full { "yes" } else { "no" }.to_string())
                } else {
                    cfg.get(name)
                };
                if let Some(v) = v {
                    pairs.push((Reply::bulk_str(name), Reply::bulk_str(&v)));
                }
            }
        }
        Reply::Map(pairs)
    } else if eq_ic(sub, "set") {
        if args.len() < 4 {
            return Reply::arity("config|set");
        }
        if !args.len().is_multiple_of(2) {
            return Reply::syntax();
        }
        let pairs: Vec<(&[u8], &[u8])> = args[2..]
            .chunks(2)
            .map(|p| (&p[0][..], &p[1][..]))
            .collect();
        match cfg.set(&pairs) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(e.to_string()),
        }
    } else if eq_ic(sub, "resetstat") {
        if args.len() != 2 {
            return Reply::arity("config|resetstat");
        }
        ctx.state.stats.commands.store(0, Ordering::Relaxed);
        ctx.state.stats.connections.store(0, Ordering::Relaxed);
        Reply::ok()
    } else if eq_ic(sub, "rewrite") {
        if args.len() != 2 {
            return Reply::arity("config|rewrite");
        }
        Reply::err("ERR The server is running without a config file")
    } else if eq_ic(sub, "help") {
        if args.len() != 2 {
            return Reply::arity("config|help");
        }
        help(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ])
    } else {
        unknown_subcommand(sub, "CONFIG")
    }
}

fn command_info(idx: usize) -> Reply {
    let c = &TABLE[idx];
    let (first, last, step) = match c.keys {
        KeySpec::Range { first, last, step } if step > 0 => {
            (first as i64, last as i64, step as i64)
        }
        KeySpec::NumKeys { .. } => (1, 1, 1),
        _ => (0, 0, 0),
    };
    Reply::Array(vec![
        Reply::bulk_str(c.name),
        Reply::Integer(c.arity as i64),
        Reply::Set(flag_names(c.flags).into_iter().map(Reply::simple).collect()),
        Reply::Integer(first),
        Reply::Integer(last),
        Reply::Integer(step),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn command_docs(idx: usize) -> (Reply, Reply) {
    let c = &TABLE[idx];
    (
        Reply::bulk_str(c.name),
        Reply::Map(vec![
            (Reply::bulk_str("summary"), Reply::bulk_str(c.name)),
            (Reply::bulk_str("since"), Reply::bulk_str("1.0.0")),
            (Reply::bulk_str("group"), Reply::bulk_str("generic")),
        ]),
    )
}

/// A `HELP` subcommand's reply: one status line each.
fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}

/// # Format
/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`,
/// `COMMAND LIST`, `COMMAND GETKEYS cmd args...`
pub fn command(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() == 1 {
        return Reply::Array((0..TABLE.len()).map(command_info).collect());
    }
    let sub = &args[1];
    if eq_ic(sub, "count") {
        Reply::Integer(TABLE.len() as i64)
    } else if eq_ic(sub, "info") {
        if args.len() == 2 {
            return Reply::Array((0..TABLE.len()).map(command_info).collect());
        }
        Reply::Array(
            args[2..]
                .iter()
                .map(|n| lookup(n).map(command_info).unwrap_or(Reply::NullArray))
                .collect(),
        )
    } else if eq_ic(sub, "docs") {
        if args.len() == 2 {
            return Reply::Map((0..TABLE.len()).map(command_docs).collect());
        }
        Reply::Map(
            args[2..]
                .iter()
                .filter_map(|n| lookup(n))
                .map(command_docs)
                .collect(),
        )
    } else if eq_ic(sub, "list") {
        Reply::Array(TABLE.iter().map(|c| Reply::bulk_str(c.name)).collect())
    } else if eq_ic(sub, "getkeys") {
        if args.len() < 3 {
            return Reply::arity("command|getkeys");
        }
        let Some(idx) = lookup(&args[2]) else {
            return Reply::err("ERR Invalid command specified");
        };
        let spec = &TABLE[idx];
        let cargs = &args[2..];
        match spec.keys {
            KeySpec::Range { first, last, step } if step > 0 => {
                let last = if last < 0 {
                    cargs.len() as i64 + last as i64
                } else {
                    last as i64
                };
                let mut keys = Vec::new();
                let mut i = first as i64;
                while i <= last && (i as usize) < cargs.len() {
                    keys.push(Reply::Bulk(cargs[i as usize].clone()));
                    i += step as i64;
                }
                if keys.is_empty() {
                    return Reply::err("ERR The command has no key arguments");
                }
                Reply::Array(keys)
            }
            _ => Reply::err("ERR The command has no key arguments"),
        }
    } else {
        unknown_subcommand(sub, "COMMAND")
    }
}
