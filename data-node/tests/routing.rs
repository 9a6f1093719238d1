//! Every keyed command is routed: with a cluster that serves no slot, each command of
//! the table that has keys answers the routing error and touches nothing.

use std::sync::Arc;

use bytes::Bytes;
use ember_data_node::cluster::Cluster;
use ember_data_node::cmd::{execute, Client, Handler, TABLE};
use ember_data_node::state::ClientInfo;
use ember_data_node::{Config, ServerState};

fn client() -> Client {
    Client::new(Arc::new(ClientInfo::new(1, "test".into(), "test".into())))
}

/// Arguments of the right arity for `name`, all keys in one slot.
fn args_for(name: &str, arity: i32) -> Vec<Bytes> {
    let n = arity.unsigned_abs() as usize;
    let mut v = vec![Bytes::copy_from_slice(name.as_bytes())];
    for i in 1..n.max(3) {
        v.push(Bytes::from(format!("{{t}}{i}")));
    }
    if ["sintercard", "lmpop", "zmpop"].contains(&name) {
        v[1] = Bytes::from_static(b"1");
    }
    if ["blmpop", "bzmpop"].contains(&name) {
        v[2] = Bytes::from_static(b"1");
    }
    if arity > 0 {
        v.truncate(n);
    }
    v
}

#[test]
fn every_keyed_command_is_routed() {
    let state = ServerState::new(
        Arc::new(Cluster::new(uuid::Uuid::new_v4())),
        Config::default(),
    );
    let mut c = client();
    let mut checked = 0;
    for spec in TABLE {
        if !matches!(spec.handler, Handler::Keyed(_)) {
            continue;
        }
        let args = args_for(spec.name, spec.arity);
        let reply = execute(&state, &mut c, &args);
        assert_eq!(
            reply,
            ember_data_node::Reply::err("CLUSTERDOWN The cluster is down"),
            "{} was not routed",
            spec.name
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} keyed commands");
    // Keyless in the table, routed by the handler: shard channels and scripts' keys.
    for args in [
        &["SSUBSCRIBE", "{t}1"][..],
        &["SPUBLISH", "{t}1", "m"],
        &["EVAL", "return 1", "1", "{t}1"],
        &["EVAL_RO", "return 1", "1", "{t}1"],
    ] {
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let reply = execute(&state, &mut c, &args);
        assert_eq!(
            reply,
            ember_data_node::Reply::err("CLUSTERDOWN The cluster is down"),
            "{args:?} was not routed"
        );
    }
    // MEMORY USAGE routes its key itself.
    let reply = execute(
        &state,
        &mut c,
        &[
            Bytes::from_static(b"MEMORY"),
            Bytes::from_static(b"USAGE"),
            Bytes::from_static(b"k"),
        ],
    );
    assert_eq!(
        reply,
        ember_data_node::Reply::err("CLUSTERDOWN The cluster is down")
    );
    assert_eq!(state.db.dbsize(), 0);
    // Keyless commands are not routed.
    let reply = execute(&state, &mut c, &[Bytes::from_static(b"PING")]);
    assert_eq!(reply, ember_data_node::Reply::simple("PONG"));
}
