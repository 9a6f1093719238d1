//! What Redis clients see of replication: `ROLE` and `INFO replication`, in Redis 7.0's
//! shapes.

use std::sync::atomic::Ordering;

use ember_core::Role;

use super::replica::LinkStatus;

use crate::resp::Reply;
use crate::state::ServerState;

/// This node's primary's client address (`host:port`), if the applied topology makes it
/// a replica.
pub fn primary_addr(state: &ServerState) -> Option<String> {
    let applied = state.cluster.applied()?;
    let t = &applied.topology;
    match t.nodes.get(&state.cluster.me())?.role {
        Role::Replica { of } => Some(
            t.nodes
                .get(&of)
                .map_or_else(|| "?:0".into(), |p| p.client_addr.clone()),
        ),
        Role::Primary => None,
    }
}

fn split_addr(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap_or((addr, "0"))
}

/// The `# Replication` section of `INFO`, with Redis 7.0's fields.
pub fn info_section(state: &ServerState) -> String {
    let (id, offset) = state.repl.position();
    let (size, kept) = state.repl.backlog();
    let (id2, second) = match state.repl.previous() {
        Some((id, at)) => (id.to_string(), (at + 1) as i64),
        None => ("0".repeat(40), -1),
    };
    let primary = primary_addr(state);
    let active = u8::from(state.repl.is_attached() || primary.is_some());
    let role = match primary {
        Some(addr) => {
            let (host, port) = split_addr(&addr);
            let link = state.link.status();
            let status = if link == LinkStatus::Up { "up" } else { "down" };
            let last_io = state.link.last_io_secs().map_or(-1, |s| s as i64);
            let syncing = u8::from(link == LinkStatus::Syncing);
            let down_since = match link {
                LinkStatus::Up => String::new(),
                _ => format!(
                    "master_link_down_since_seconds:{}\r\n",
                    state.link.down_secs()
                ),
            };
            format!(
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{status}\r\nmaster_last_io_seconds_ago:{last_io}\r\nmaster_sync_in_progress:{syncing}\r\nslave_read_repl_offset:{offset}\r\nslave_repl_offset:{offset}\r\n{down_since}slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\n"
            )
        }
        None => {
            let followers = state.followers.list();
            let mut s = format!("role:master\r\nconnected_slaves:{}\r\n", followers.len());
            for (i, f) in followers.iter().enumerate() {
                let (host, port) = split_addr(&f.addr);
                let online = f.online.load(Ordering::Acquire);
                s.push_str(&format!(
                    "slave{i}:ip={host},port={port},state={},offset={},lag={}\r\n",
                    if online { "online" } else { "wait_bgsave" },
                    f.acked.load(Ordering::Acquire),
                    f.last_ack.lock().elapsed().as_secs()
                ));
            }
            s
        }
    };
    format!(
        "{role}master_failover_state:no-failover\r\nmaster_replid:{id}\r\nmaster_replid2:{id2}\r\nmaster_repl_offset:{offset}\r\nsecond_repl_offset:{second}\r\nrepl_backlog_active:{active}\r\nrepl_backlog_size:{size}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{kept}\r\n",
        if kept == 0 { 0 } else { state.repl.oldest() + 1 },
    )
}

/// `ROLE`, as Redis answers it: `[master, offset, [[ip, port, offset] ...]]`, or for a
/// replica `[slave, ip, port, state, offset]` (`connect`: not connected, `sync`: a full
/// sync is running, `connected`: streaming; the offset is -1 until it has a dataset).
pub fn role_reply(state: &ServerState) -> Reply {
    let (_, offset) = state.repl.position();
    match primary_addr(state) {
        Some(addr) => {
            let (host, port) = split_addr(&addr);
            let (link, offset) = match state.link.status() {
                LinkStatus::Down => ("connect", -1),
                LinkStatus::Syncing => ("sync", -1),
                LinkStatus::Up => ("connected", offset as i64),
            };
            Reply::Array(vec![
                Reply::bulk_str("slave"),
                Reply::bulk(host.as_bytes()),
                Reply::Integer(port.parse().unwrap_or(0)),
                Reply::bulk_str(link),
                Reply::Integer(offset),
            ])
        }
        None => Reply::Array(vec![
            Reply::bulk_str("master"),
            Reply::Integer(offset as i64),
            Reply::Array(
                state
                    .followers
                    .list()
                    .iter()
                    .map(|f| {
                        let (host, port) = split_addr(&f.addr);
                        Reply::Array(vec![
                            Reply::bulk(host.as_bytes()),
                            Reply::bulk(port.as_bytes()),
                            Reply::bulk(f.acked.load(Ordering::Acquire).to_string().as_bytes()),
                        ])
                    })
                    .collect(),
            ),
        ]),
    }
}

/// This node's replication position for the control plane's heartbeat.
pub fn status(state: &ServerState) -> ember_proto::pb::ReplicationStatus {
    let (id, offset) = state.repl.position();
    let link = state.link.status();
    ember_proto::pb::ReplicationStatus {
        replid: id.to_string(),
        offset,
        link_up: link == LinkStatus::Up,
        link_down_millis: match link {
            LinkStatus::Up => 0,
            _ => state.link.down_millis(),
        },
        syncing: state.cluster.is_partial(),
        replicas: state.followers.list().len() as u32,
        lease_granted_millis_ago: state.lease.granted_ago().as_millis() as u64,
        synced: state.link.synced(),
    }
}
