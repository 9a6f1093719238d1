//! What Redis clients see of replication: `ROLE` and `INFO replication`, in Redis 7.0's
//! shapes.

use ember_core::Role;

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

/// The `# Replication` section of `INFO`, with Redis 7.0's fields. A replica's link is
/// reported down: replicas do not stream yet (issue 12).
pub fn info_section(state: &ServerState) -> String {
    let (id, offset) = state.repl.position();
    let (size, kept) = state.repl.backlog();
    let (id2, second) = match state.repl.previous() {
        Some((id, at)) => (id.to_string(), (at + 1) as i64),
        None => ("0".repeat(40), -1),
    };
    let role = match primary_addr(state) {
        Some(addr) => {
            let (host, port) = split_addr(&addr);
            format!(
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:{offset}\r\nslave_repl_offset:{offset}\r\nslave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\n"
            )
        }
        None => "role:master\r\nconnected_slaves:0\r\n".to_string(),
    };
    format!(
        "{role}master_failover_state:no-failover\r\nmaster_replid:{id}\r\nmaster_replid2:{id2}\r\nmaster_repl_offset:{offset}\r\nsecond_repl_offset:{second}\r\nrepl_backlog_active:0\r\nrepl_backlog_size:{size}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{kept}\r\n",
        if kept == 0 { 0 } else { state.repl.oldest() + 1 },
    )
}

/// `ROLE`, as Redis answers it: `[master, offset, [[ip, port, offset] ...]]`, or for a
/// replica `[slave, ip, port, state, offset]` (`connect`: it should connect and is not
/// connected; replicas do not stream yet).
pub fn role_reply(state: &ServerState) -> Reply {
    let (_, offset) = state.repl.position();
    match primary_addr(state) {
        Some(addr) => {
            let (host, port) = split_addr(&addr);
            Reply::Array(vec![
                Reply::bulk_str("slave"),
                Reply::bulk(host.as_bytes()),
                Reply::Integer(port.parse().unwrap_or(0)),
                Reply::bulk_str("connect"),
                Reply::Integer(-1),
            ])
        }
        None => Reply::Array(vec![
            Reply::bulk_str("master"),
            Reply::Integer(offset as i64),
            Reply::Array(vec![]),
        ]),
    }
}
