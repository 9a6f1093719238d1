//! Server commands: COMMAND, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME, MEMORY,
//! LASTSAVE, and the dispatch of CLUSTER to the cluster module.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::meta::{self, Begin, Find, KeySpecMeta, Meta};
use super::{eq_ic, glob_match, lookup, unknown_subcommand, Ctx, TABLE};
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
    ctx.state.tracker.flushed(&ctx.state.clients);
    Reply::ok()
}

/// # Format
/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: saves the snapshot (with `SAVE`, or
/// when `save` points are set, unless `NOSAVE`), then stops the node; a primary hands
/// its shard to a replica first unless `NOW` ([`crate::replication::step_down`]). While a script is
/// busy only `NOSAVE` does, and the script is stopped. The client's connection closes
/// without a reply, as in Redis.
pub fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
    let mut now = false;
    for a in &args[1..] {
        if eq_ic(a, "nosave") {
            nosave = true;
        } else if eq_ic(a, "save") {
            save = true;
        } else if eq_ic(a, "now") {
            other = true;
            now = true;
        } else if eq_ic(a, "force") {
            other = true;
        } else if eq_ic(a, "abort") {
            abort = true;
        } else {
            return Reply::syntax();
        }
    }
    if (abort && (nosave || save || other)) || (nosave && save) {
        return Reply::syntax();
    }
    if abort {
        return Reply::err("ERR No shutdown in progress.");
    }
    let scripts = &ctx.state.scripts;
    if !nosave && scripts.busy(ctx.state.config.busy_reply_threshold()) {
        return scripts.busy_reply();
    }
    let state = ctx.state;
    if save || (!nosave && crate::persist::has_save_points(state)) {
        if let Err(e) = crate::persist::save_at_shutdown(state) {
            tracing::error!("SHUTDOWN: cannot save ({e}): the node keeps running");
            return Reply::err("ERR Errors trying to SHUTDOWN. Check logs.");
        }
    }
    state
        .persist
        .shutdown_done
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(client = %ctx.client.info.addr, "SHUTDOWN: the node stops");
    scripts
        .kill
        .store(true, std::sync::atomic::Ordering::Relaxed);
    ctx.state
        .shutdown_now
        .store(now, std::sync::atomic::Ordering::Relaxed);
    ctx.state.shutdown.notify_one();
    ctx.client.close = true;
    Reply::Many(Vec::new())
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
/// `REPLICAOF host port | NO ONE`, `SLAVEOF ...`: who replicates whom is decided by the
/// control plane, so the node answers with the emberctl command (as the gossip-era
/// `CLUSTER` subcommands do). Redis Cluster refuses it too (`not allowed in cluster
/// mode`).
pub fn replicaof(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let name = if eq_ic(&args[0], "slaveof") {
        "SLAVEOF"
    } else {
        "REPLICAOF"
    };
    Reply::error(format!(
        "ERR {name} not allowed in cluster mode: replicas are set with `emberctl join NODE --replica-of PRIMARY`, and promoted by the control plane"
    ))
}

/// # Format
/// `ROLE`
pub fn role(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    crate::replication::report::role_reply(ctx.state)
}

/// # Format
/// `WAIT numreplicas timeout`: waits (in the connection, see `Client::wait`) until
/// `numreplicas` replicas acknowledged this client's last write, or `timeout` ms passed
/// (0: forever); replies with how many did.
pub fn wait(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let replicas = match super::arg_int(&args[1]) {
        Ok(n) => n.max(0) as usize,
        Err(r) => return r,
    };
    let timeout = match crate::resp::parse::parse_i64(&args[2]) {
        Some(t) if t < 0 => return Reply::err("ERR timeout is negative"),
        Some(0) => None,
        Some(t) => Some(std::time::Duration::from_millis(t as u64)),
        None => return Reply::err("ERR timeout is not an integer or out of range"),
    };
    if matches!(ctx.state.cluster.role(), ember_core::Role::Replica { .. }) {
        return Reply::err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    ctx.client.wait = Some(super::WaitFor {
        replicas,
        offset: ctx.client.woff,
        timeout,
    });
    Reply::Null
}

/// # Format
/// # Format
/// `LASTSAVE`: Unix time of the last successful save (or of the start).
pub fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Integer(ctx.state.persist.last_save() as i64)
}

/// # Format
/// `SAVE`: writes the snapshot now (the caller waits; other clients go on).
pub fn save(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    match crate::persist::save(ctx.state) {
        Ok(_) => Reply::ok(),
        Err(e) => Reply::error(e.to_string()),
    }
}

/// # Format
/// `BGSAVE [SCHEDULE]`
pub fn bgsave(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let schedule = match &args[1..] {
        [] => false,
        [s] if eq_ic(s, "schedule") => true,
        _ => return Reply::syntax(),
    };
    let state = ctx.state;
    match crate::persist::bgsave(state) {
        Ok(()) => Reply::simple("Background saving started"),
        Err(crate::persist::SaveRefused::InProgress) if schedule => {
            state.persist.schedule();
            Reply::simple("Background saving scheduled")
        }
        Err(e) => Reply::error(e.to_string()),
    }
}

/// # Format
/// `BGREWRITEAOF`: rewrites the append-only file in the background (refused while one
/// runs, or when the file is off).
pub fn bgrewriteaof(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    match ctx.state.persist.aof.request_rewrite() {
        Ok(()) => Reply::simple("Background append only file rewriting started"),
        Err(e) => Reply::error(e.to_string()),
    }
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
        if let Err(e) = ctx.state.cluster.route(slot, ctx.client.readonly) {
            return Reply::error(e.to_string());
        }
        let now = ctx.now;
        ctx.state.db.with_slot(slot, |t| match t.peek(key, now) {
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
    } else if eq_ic(sub, "help") {
        help(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ])
    } else {
        unknown_subcommand(sub, "MEMORY")
    }
}

/// # Format
/// `INFO [section ...]` (server, clients, memory, persistence, stats, replication, cpu,
/// cluster, keyspace; `all`,
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
    // Counted over every slot table (each locked in turn): once for both sections.
    let tables = std::cell::OnceCell::new();
    let tables = || *tables.get_or_init(|| st.db.stats());
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
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nclient_recent_max_output_buffer:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\n\r\n",
            st.clients.len(),
            st.config.maxclients(),
            st.clients.max_output_buffer(),
            st.blocked.len() + st.pause.waiting(),
            st.tracker.counts().0,
        );
    }
    if want("memory") {
        let used = st.used_memory();
        let max = st.config.memory.maxmemory();
        let rss = crate::state::rss_bytes();
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:{}\r\n\r\n",
            human(used),
            human(rss),
            human(max as usize),
            st.config.memory.policy().name(),
            crate::state::allocator_name(),
        );
    }
    if want("persistence") {
        s.push_str(&st.persist.info());
    }
    if want("stats") {
        let tables = tables();
        let (channels, patterns, shard) = st.pubsub.counts();
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nevicted_clients:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{channels}\r\npubsub_patterns:{patterns}\r\npubsubshard_channels:{shard}\r\ntracking_total_keys:{}\r\nclient_query_buffer_limit_disconnections:{}\r\nclient_output_buffer_limit_disconnections:{}\r\n\r\n",
            st.stats.connections.load(Ordering::Relaxed),
            st.stats.commands.load(Ordering::Relaxed),
            st.stats.rejected_connections.load(Ordering::Relaxed),
            st.stats.sync_full.load(Ordering::Relaxed),
            st.stats.sync_partial_ok.load(Ordering::Relaxed),
            st.stats.sync_partial_err.load(Ordering::Relaxed),
            tables.expired,
            st.evictor.evicted.load(Ordering::Relaxed),
            st.evictor.evicted_clients.load(Ordering::Relaxed),
            tables.hits,
            tables.misses,
            st.tracker.counts().1,
            st.stats.query_limit_disconnections.load(Ordering::Relaxed),
            st.stats.output_limit_disconnections.load(Ordering::Relaxed),
        );
    }
    if want("replication") {
        s.push_str("# Replication\r\n");
        s.push_str(&crate::replication::report::info_section(st));
        s.push_str("\r\n");
    }
    if want("cpu") {
        let (sys, user) = cpu_times(libc::RUSAGE_SELF);
        let (csys, cuser) = cpu_times(libc::RUSAGE_CHILDREN);
        let (tsys, tuser) = cpu_times(libc::RUSAGE_THREAD);
        let _ = write!(
            s,
            "# CPU\r\nused_cpu_sys:{sys}\r\nused_cpu_user:{user}\r\nused_cpu_sys_children:{csys}\r\nused_cpu_user_children:{cuser}\r\nused_cpu_sys_main_thread:{tsys}\r\nused_cpu_user_main_thread:{tuser}\r\n\r\n"
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
            let expires = tables().with_ttl;
            let _ = write!(s, "db0:keys={n},expires={expires},avg_ttl=0\r\n");
        }
        s.push_str("\r\n");
    }
    while s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    Reply::Verbatim("txt", Bytes::from(s))
}

/// `getrusage(who)`'s system and user CPU time, as Redis prints them (`%ld.%06ld`
/// seconds). `RUSAGE_THREAD` is the thread running the command: the connection thread
/// that runs this client's commands, ember's counterpart of Redis's main thread.
fn cpu_times(who: libc::c_int) -> (String, String) {
    // SAFETY: `getrusage` only writes the `rusage` it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let t = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
    (t(ru.ru_stime), t(ru.ru_utime))
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
            Ok(()) => {
                ctx.state.cluster.set_serve_stale(cfg.serve_stale());
                if pairs.iter().any(|(name, _)| {
                    name.eq_ignore_ascii_case(b"appendonly")
                        || name.eq_ignore_ascii_case(b"appendfsync")
                }) {
                    if let Some(node) = ctx.state.persist.node() {
                        crate::persist::aof::reconcile(&node);
                    }
                }
                Reply::ok()
            }
            Err(e) => Reply::error(e.to_string()),
        }
    } else if eq_ic(sub, "resetstat") {
        if args.len() != 2 {
            return Reply::arity("config|resetstat");
        }
        ctx.state.stats.commands.store(0, Ordering::Relaxed);
        ctx.state.stats.connections.store(0, Ordering::Relaxed);
        let stats = &ctx.state.stats;
        for counter in [
            &stats.rejected_connections,
            &stats.sync_full,
            &stats.sync_partial_ok,
            &stats.sync_partial_err,
            &stats.output_limit_disconnections,
            &stats.query_limit_disconnections,
            &ctx.state.evictor.evicted,
            &ctx.state.evictor.evicted_clients,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        ctx.state.db.reset_stats();
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

/// Space-separated words as a RESP3 set of status strings (`COMMAND INFO` flags).
fn status_set(words: &'static str) -> Reply {
    Reply::Set(
        words
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(Reply::simple)
            .collect(),
    )
}

/// One `COMMAND INFO` entry in Redis 7's shape: name, arity, flags, first key, last key,
/// step, ACL categories, tips, key specifications, subcommands.
fn info_entry(m: &'static Meta, subs: Vec<Reply>) -> Reply {
    let tips = Reply::Set(
        m.tips
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(Reply::bulk_str)
            .collect(),
    );
    let key_specs = Reply::Set(m.key_specs.iter().map(key_spec_reply).collect());
    Reply::Array(vec![
        Reply::bulk_str(m.name),
        Reply::Integer(m.arity as i64),
        status_set(m.flags),
        Reply::Integer(m.keys.0),
        Reply::Integer(m.keys.1),
        Reply::Integer(m.keys.2),
        status_set(m.acl),
        tips,
        key_specs,
        // Redis 7.0 replies an empty set when there are none, else an array.
        if subs.is_empty() {
            Reply::Set(subs)
        } else {
            Reply::Array(subs)
        },
    ])
}

fn key_spec_reply(k: &'static KeySpecMeta) -> Reply {
    let s = Reply::bulk_str;
    let int = Reply::Integer;
    let (btype, bspec) = match k.begin {
        Begin::Index(i) => ("index", vec![(s("index"), int(i))]),
        Begin::Keyword { keyword, startfrom } => (
            "keyword",
            vec![(s("keyword"), s(keyword)), (s("startfrom"), int(startfrom))],
        ),
    };
    let (ftype, fspec) = match k.find {
        Find::Range {
            lastkey,
            keystep,
            limit,
        } => (
            "range",
            vec![
                (s("lastkey"), int(lastkey)),
                (s("keystep"), int(keystep)),
                (s("limit"), int(limit)),
            ],
        ),
        Find::Keynum {
            keynumidx,
            firstkey,
            keystep,
        } => (
            "keynum",
            vec![
                (s("keynumidx"), int(keynumidx)),
                (s("firstkey"), int(firstkey)),
                (s("keystep"), int(keystep)),
            ],
        ),
    };
    let mut map = Vec::with_capacity(4);
    if let Some(n) = k.notes {
        map.push((s("notes"), s(n)));
    }
    map.push((s("flags"), status_set(k.flags)));
    map.push((
        s("begin_search"),
        Reply::Map(vec![(s("type"), s(btype)), (s("spec"), Reply::Map(bspec))]),
    ));
    map.push((
        s("find_keys"),
        Reply::Map(vec![(s("type"), s(ftype)), (s("spec"), Reply::Map(fspec))]),
    ));
    Reply::Map(map)
}

/// The `COMMAND INFO` entry of `TABLE[idx]`, with its subcommands.
fn command_info(idx: usize) -> Reply {
    let subs = meta::subcommands(idx)
        .map(|m| info_entry(m, Vec::new()))
        .collect();
    info_entry(meta::of_command(idx), subs)
}

/// `COMMAND INFO name`: a command (with its subcommands) or a `container|sub`.
fn command_info_by_name(name: &[u8]) -> Reply {
    if let Some(idx) = lookup(name) {
        return command_info(idx);
    }
    match meta::lookup(name) {
        Some(m) if m.name.contains('|') => info_entry(m, Vec::new()),
        _ => Reply::Null,
    }
}

fn doc_entry(name: &'static str, with_subs: Option<usize>) -> Option<(Reply, Reply)> {
    let d = meta::doc(name)?;
    let s = Reply::bulk_str;
    let mut map = vec![
        (s("summary"), s(d.summary)),
        (s("since"), s(d.since)),
        (s("group"), s(d.group)),
        (s("complexity"), s(d.complexity)),
    ];
    if let Some(idx) = with_subs {
        let subs: Vec<(Reply, Reply)> = meta::subcommands(idx)
            .filter_map(|m| doc_entry(m.name, None))
            .collect();
        if !subs.is_empty() {
            map.push((s("subcommands"), Reply::Map(subs)));
        }
    }
    Some((s(name), Reply::Map(map)))
}

/// The command (`TABLE` index and metadata) that `COMMAND GETKEYS` is asked about:
/// `args` starts with its name (then, for a container, the subcommand).
fn getkeys_target(args: &[Bytes]) -> Option<&'static Meta> {
    let idx = lookup(&args[0])?;
    if args.len() >= 2 && meta::subcommands(idx).next().is_some() {
        let n = meta::subcommand_position(idx, &args[1])?;
        return meta::subcommand(idx, n);
    }
    Some(meta::of_command(idx))
}

/// # Format
/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`,
/// The flags of a key whose spec says `variable_flags`, for these arguments (Redis's
/// `getkeys_proc`): `SET` reads its key only with `GET`.
fn actual_key_flags(m: &Meta, args: &[Bytes], flags: &'static str) -> &'static str {
    if !flags.split(' ').any(|f| f == "variable_flags") {
        return flags;
    }
    match m.name {
        "set" if args[3..].iter().any(|a| eq_ic(a, "get")) => "RW access update",
        "set" => "OW update",
        _ => flags,
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`,
/// `COMMAND GETKEYS cmd args...`, `COMMAND GETKEYSANDFLAGS cmd args...`, `COMMAND HELP`
///
/// In Redis 7's shapes, from [`meta`]: key specifications, ACL categories, tips and
/// the subcommands of containers. `DOCS` has the summary, since, group and complexity
/// of each command, not its arguments.
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
        Reply::Array(args[2..].iter().map(|n| command_info_by_name(n)).collect())
    } else if eq_ic(sub, "docs") {
        if args.len() == 2 {
            return Reply::Map(
                TABLE
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| doc_entry(c.name, Some(i)))
                    .collect(),
            );
        }
        Reply::Map(
            args[2..]
                .iter()
                .filter_map(|n| {
                    let m = meta::lookup(n)?;
                    doc_entry(m.name, lookup(m.name.as_bytes()))
                })
                .collect(),
        )
    } else if eq_ic(sub, "list") {
        command_list(args)
    } else if eq_ic(sub, "getkeys") || eq_ic(sub, "getkeysandflags") {
        let with_flags = eq_ic(sub, "getkeysandflags");
        let cargs = &args[2..];
        let Some(m) = getkeys_target(cargs) else {
            return Reply::err("ERR Invalid command specified");
        };
        if m.key_specs.is_empty() {
            return Reply::err("ERR The command has no key arguments");
        }
        let n = cargs.len() as i32;
        if (m.arity > 0 && m.arity != n) || n < -m.arity {
            return Reply::err("ERR Invalid number of arguments specified for command");
        }
        match m.key_positions(cargs) {
            Some(keys) if !keys.is_empty() || m.has_flag("no_mandatory_keys") => Reply::Array(
                keys.into_iter()
                    .map(|(i, flags)| {
                        let flags = actual_key_flags(m, cargs, flags);
                        let key = Reply::Bulk(cargs[i].clone());
                        if with_flags {
                            Reply::Array(vec![key, status_set(flags)])
                        } else {
                            key
                        }
                    })
                    .collect(),
            ),
            _ => Reply::err("ERR Invalid arguments specified for command"),
        }
    } else if eq_ic(sub, "help") {
        help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
            "HELP",
            "    Prints this help.",
        ])
    } else {
        unknown_subcommand(sub, "COMMAND")
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`: every
/// command and subcommand name.
fn command_list(args: &[Bytes]) -> Reply {
    enum Filter<'a> {
        All,
        Module,
        Acl(&'a [u8]),
        Pattern(&'a [u8]),
    }
    let filter = match &args[2..] {
        [] => Filter::All,
        [by, kind, arg] if eq_ic(by, "filterby") => {
            if eq_ic(kind, "module") {
                Filter::Module
            } else if eq_ic(kind, "aclcat") {
                Filter::Acl(arg)
            } else if eq_ic(kind, "pattern") {
                Filter::Pattern(arg)
            } else {
                return Reply::syntax();
            }
        }
        _ => return Reply::syntax(),
    };
    let names = (0..TABLE.len())
        .flat_map(|i| std::iter::once(meta::of_command(i)).chain(meta::subcommands(i)))
        .filter(|m| match filter {
            Filter::All => true,
            Filter::Module => false,
            Filter::Acl(cat) => m.acl.split(' ').any(|c| {
                c.trim_start_matches('@')
                    .as_bytes()
                    .eq_ignore_ascii_case(cat)
            }),
            Filter::Pattern(p) => glob_match(p, m.name.as_bytes(), true),
        })
        .map(|m| Reply::bulk_str(m.name))
        .collect();
    Reply::Array(names)
}

/// A `HELP` subcommand's reply: one status line each.
pub(crate) fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}
