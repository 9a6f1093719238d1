//! `CLUSTER ...` subcommands: INFO, NODES, SLOTS, SHARDS, MYID, MYSHARDID, KEYSLOT,
//! COUNTKEYSINSLOT, GETKEYSINSLOT, REPLICAS, LINKS, HELP, all in Redis's formats; and
//! the gossip-era ones (MEET, ADDSLOTS, SETSLOT, ...), which answer an error naming the
//! emberctl command to use instead.

use bytes::Bytes;
use ember_core::{NodeId, NodeInfo, Role, Topology, SLOT_COUNT};

use super::{Applied, Cluster};
use crate::db::{now_ms, Db};
use crate::resp::parse::parse_i64;
use crate::resp::Reply;

/// The 40-hex-digit node id Redis clients expect: the uuid's 32 digits, then 8 zeros.
pub fn redis_id(id: &NodeId) -> String {
    format!("{}00000000", id.simple())
}

/// Runs `CLUSTER <subcommand> args...` (`args[0]` is `CLUSTER`).
pub fn cluster_command(cluster: &Cluster, db: &Db, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_uppercase();
    let rest = &args[2..];
    let applied = cluster.applied();
    let arity = |n: usize| -> Option<Reply> {
        (rest.len() != n).then(|| {
            Reply::error(format!(
                "ERR wrong number of arguments for 'cluster|{}' command",
                sub.to_ascii_lowercase()
            ))
        })
    };
    if let Some(cmd) = gossip_replacement(&sub) {
        return Reply::error(format!(
            "ERR CLUSTER {sub} is not supported: ember's topology is owned by its control plane; use `{cmd}`"
        ));
    }
    match sub.as_str() {
        "INFO" => arity(0).unwrap_or_else(|| text(info(cluster, applied.as_deref()))),
        "MYID" | "MYSHARDID" => {
            arity(0).unwrap_or_else(|| Reply::bulk_str(&redis_id(&cluster.me())))
        }
        "NODES" => arity(0).unwrap_or_else(|| text(nodes(cluster, applied.as_deref(), None))),
        "REPLICAS" | "SLAVES" => {
            arity(1).unwrap_or_else(|| replicas(cluster, applied.as_deref(), &rest[0]))
        }
        "SLOTS" => arity(0).unwrap_or_else(|| slots(applied.as_deref())),
        "SHARDS" => arity(0).unwrap_or_else(|| shards(applied.as_deref())),
        "LINKS" => arity(0).unwrap_or(Reply::Array(vec![])),
        "KEYSLOT" => {
            arity(1).unwrap_or_else(|| Reply::Integer(ember_core::key_slot(&rest[0]).into()))
        }
        "COUNTKEYSINSLOT" => arity(1).unwrap_or_else(|| match slot_arg(&rest[0]) {
            Ok(slot) => Reply::Integer(db.count_in_slot(slot) as i64),
            Err(e) => e,
        }),
        "GETKEYSINSLOT" => arity(2).unwrap_or_else(|| {
            let slot = match slot_arg(&rest[0]) {
                Ok(s) => s,
                Err(e) => return e,
            };
            match parse_i64(&rest[1]) {
                None => Reply::not_integer(),
                Some(n) if n < 0 => Reply::err("ERR Invalid number of keys"),
                Some(n) => Reply::Array(
                    db.keys_in_slot(slot, n as usize)
                        .into_iter()
                        .map(Reply::Bulk)
                        .collect(),
                ),
            }
        }),
        "DROP-ORPHANED" => arity(0).unwrap_or_else(|| drop_orphaned(cluster, db)),
        "HELP" => Reply::Array(
            HELP.iter()
                .map(|l| Reply::Simple(std::borrow::Cow::Borrowed(*l)))
                .collect(),
        ),
        _ => crate::cmd::unknown_subcommand(&args[1], "CLUSTER"),
    }
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "DROP-ORPHANED",
    "    Delete the keys of slots this node does not hold (loaded from its files after the",
    "    slots moved on; `emberctl nodes` shows them as orphaned). Returns how many.",
    "GETKEYSINSLOT <slot> <count>",
    "INFO",
    "KEYSLOT <key>",
    "LINKS",
    "MYID",
    "MYSHARDID",
    "NODES",
    "REPLICAS <node-id>",
    "SHARDS",
    "SLOTS",
    "Topology changes (MEET, ADDSLOTS, SETSLOT, FORGET, REPLICATE, FAILOVER, ...) are made with emberctl.",
    "HELP",
];

/// `CLUSTER DROP-ORPHANED`: deletes the keys of every slot the applied topology does not
/// give this node (an operator's decision: they are never dropped on their own).
fn drop_orphaned(cluster: &Cluster, db: &Db) -> Reply {
    if cluster.applied().is_none() {
        return Reply::err(
            "ERR this node has not received its topology yet: no key is known to be orphaned",
        );
    }
    let orphaned: Vec<u16> = db
        .nonempty_slots()
        .filter(|&s| cluster.holds(s) == Some(false))
        .collect();
    let dropped: usize = orphaned.into_iter().map(|s| db.drop_slot(s)).sum();
    if dropped > 0 {
        tracing::warn!(
            keys = dropped,
            "CLUSTER DROP-ORPHANED: the keys of slots this node does not hold are deleted"
        );
    }
    Reply::Integer(dropped as i64)
}

/// The emberctl command that replaces a gossip-era subcommand.
fn gossip_replacement(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "MEET" => "emberctl join NODE",
        "ADDSLOTS" | "ADDSLOTSRANGE" => "emberctl assign NODE SLOTS...",
        "DELSLOTS" | "DELSLOTSRANGE" | "FLUSHSLOTS" => {
            "emberctl assign OTHER-NODE SLOTS... (or emberctl drain NODE)"
        }
        "SETSLOT" => "emberctl assign NODE SLOTS... (live migration, no ASK/IMPORTING states)",
        "FORGET" => "emberctl forget NODE",
        "REPLICATE" => "emberctl join NODE --replica-of PRIMARY",
        "FAILOVER" => "emberctl failover REPLICA (failover is decided by the control plane)",
        "RESET" => "emberctl forget NODE",
        "SAVECONFIG" => "emberctl status (the control plane persists every change)",
        "BUMPEPOCH" | "SET-CONFIG-EPOCH" => {
            "emberctl status (epochs are assigned by the control plane)"
        }
        "COUNT-FAILURE-REPORTS" => "emberctl nodes (failures are detected by the control plane)",
        _ => return None,
    })
}

/// CLUSTER INFO / NODES are bulk strings (verbatim `txt` in RESP3).
fn text(s: String) -> Reply {
    Reply::Verbatim("txt", Bytes::from(s))
}

fn slot_arg(arg: &[u8]) -> Result<u16, Reply> {
    match parse_i64(arg) {
        None => Err(Reply::not_integer()),
        Some(s) if (0..i64::from(SLOT_COUNT)).contains(&s) => Ok(s as u16),
        Some(_) => Err(Reply::err("ERR Invalid slot")),
    }
}

fn info(cluster: &Cluster, applied: Option<&Applied>) -> String {
    let (state, assigned, ok, fail, known, size, current, mine) = match applied {
        None => ("fail", 0, 0, 0, 1, 0, 0, 0),
        Some(a) => {
            let t = &a.topology;
            let assigned = t.slots.assigned();
            let ok = (0..SLOT_COUNT).filter(|s| t.slot_ok(*s)).count();
            let state = if a.state_ok { "ok" } else { "fail" };
            let known = t.nodes.len().max(1);
            (
                state,
                assigned,
                ok,
                assigned - ok,
                known,
                t.size(),
                t.current_epoch,
                t.effective_config_epoch(&cluster.me()),
            )
        }
    };
    let (sent, received) = cluster.message_counts();
    format!(
        "cluster_state:{state}\r\n\
         cluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:0\r\n\
         cluster_slots_fail:{fail}\r\n\
         cluster_known_nodes:{known}\r\n\
         cluster_size:{size}\r\n\
         cluster_current_epoch:{current}\r\n\
         cluster_my_epoch:{mine}\r\n\
         cluster_stats_messages_sent:{sent}\r\n\
         cluster_stats_messages_received:{received}\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    )
}

/// One `CLUSTER NODES` line (ending in `\n`).
fn node_line(t: &Topology, n: &NodeInfo, me: NodeId, now: u64) -> String {
    let mut flags = Vec::new();
    if n.id == me {
        flags.push("myself");
    }
    flags.push(if n.is_primary() { "master" } else { "slave" });
    if n.failed {
        flags.push("fail");
    }
    let master = match n.role {
        Role::Replica { of } => redis_id(&of),
        Role::Primary => "-".into(),
    };
    let cport = n.internal_addr.rsplit(':').next().unwrap_or("0");
    let pong = if n.id == me || n.failed { 0 } else { now };
    let link = if n.failed {
        "disconnected"
    } else {
        "connected"
    };
    let mut line = format!(
        "{} {}@{cport} {} {master} 0 {pong} {} {link}",
        redis_id(&n.id),
        n.client_addr,
        flags.join(","),
        t.effective_config_epoch(&n.id),
    );
    for r in t.slots.ranges_of(&n.id) {
        line.push(' ');
        line.push_str(&r.to_string());
    }
    line.push('\n');
    line
}

fn nodes(
    cluster: &Cluster,
    applied: Option<&Applied>,
    only: Option<&dyn Fn(&NodeInfo) -> bool>,
) -> String {
    let me = cluster.me();
    let now = now_ms();
    match applied {
        // Before the first topology a node knows only itself, like a fresh Redis node.
        None => format!("{} :0@0 myself,master - 0 0 0 connected\n", redis_id(&me)),
        Some(a) => a
            .topology
            .nodes
            .values()
            .filter(|n| only.is_none_or(|f| f(n)))
            .map(|n| node_line(&a.topology, n, me, now))
            .collect(),
    }
}

fn replicas(cluster: &Cluster, applied: Option<&Applied>, id: &[u8]) -> Reply {
    let id = String::from_utf8_lossy(id).to_ascii_lowercase();
    let Some(a) = applied else {
        return Reply::error(format!("ERR Unknown node {id}"));
    };
    let Some(primary) = a.topology.nodes.values().find(|n| redis_id(&n.id) == id) else {
        return Reply::error(format!("ERR Unknown node {id}"));
    };
    if !primary.is_primary() {
        return Reply::err("ERR The specified node is not a master");
    }
    let pid = primary.id;
    let is_replica = move |n: &NodeInfo| n.role == Role::Replica { of: pid };
    let text = nodes(cluster, applied, Some(&is_replica));
    Reply::Array(text.lines().map(Reply::bulk_str).collect())
}

/// `[ip, port, id, {}]` as CLUSTER SLOTS lists a node.
fn slot_node(n: &NodeInfo) -> Reply {
    let (host, port) = split_addr(&n.client_addr);
    Reply::Array(vec![
        Reply::bulk_str(host),
        Reply::Integer(port),
        Reply::bulk_str(&redis_id(&n.id)),
        Reply::Map(vec![]),
    ])
}

fn split_addr(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

fn slots(applied: Option<&Applied>) -> Reply {
    let Some(a) = applied else {
        return Reply::Array(vec![]);
    };
    let t = &a.topology;
    Reply::Array(
        t.slots
            .ranges()
            .into_iter()
            .map(|(r, owner)| {
                let mut entry = vec![Reply::Integer(r.start.into()), Reply::Integer(r.end.into())];
                entry.push(slot_node(&t.nodes[&owner]));
                entry.extend(t.replicas_of(&owner).map(slot_node));
                Reply::Array(entry)
            })
            .collect(),
    )
}

fn shards(applied: Option<&Applied>) -> Reply {
    let Some(a) = applied else {
        return Reply::Array(vec![]);
    };
    let t = &a.topology;
    let s = |x: &str| Reply::bulk_str(x);
    let node = |n: &NodeInfo| {
        let (host, port) = split_addr(&n.client_addr);
        Reply::Map(vec![
            (s("id"), s(&redis_id(&n.id))),
            (s("port"), Reply::Integer(port)),
            (s("ip"), s(host)),
            (s("endpoint"), s(host)),
            (
                s("role"),
                s(if n.is_primary() { "master" } else { "replica" }),
            ),
            (s("replication-offset"), Reply::Integer(0)),
            (s("health"), s(if n.failed { "fail" } else { "online" })),
        ])
    };
    Reply::Array(
        t.nodes
            .values()
            .filter(|n| n.is_primary())
            .map(|p| {
                let ranges: Vec<Reply> = t
                    .slots
                    .ranges_of(&p.id)
                    .iter()
                    .flat_map(|r| [Reply::Integer(r.start.into()), Reply::Integer(r.end.into())])
                    .collect();
                let mut members = vec![node(p)];
                members.extend(t.replicas_of(&p.id).map(node));
                Reply::Map(vec![
                    (s("slots"), Reply::Array(ranges)),
                    (s("nodes"), Reply::Array(members)),
                ])
            })
            .collect(),
    )
}
