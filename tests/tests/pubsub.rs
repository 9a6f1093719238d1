//! Pub/sub on a real cluster: a classic `PUBLISH` on any node reaches the subscribers of
//! every node, in order; shard channels are routed by slot, reach the slot's replicas,
//! and end with `sunsubscribe` when the slot moves away or its primary is failed over;
//! a subscriber that does not read is disconnected by the `pubsub` output limit.

use std::time::Duration;

use ember_tests::TestCluster;
use redis::Value;

const T: Duration = Duration::from_secs(30);

fn send(conn: &mut redis::Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    conn.send_packed_command(&cmd.get_packed_command()).unwrap();
}

/// The next reply or push on `conn`, as strings (integers as their digits).
fn next(conn: &mut redis::Connection) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Nil => "nil".into(),
        other => format!("{other:?}"),
    };
    match conn.recv_response().unwrap() {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::ServerError(e) => vec![format!("{} {}", e.code(), e.details().unwrap_or(""))],
        other => vec![text(&other)],
    }
}

/// A RESP2 connection to node `i` subscribed with `verb` to `names` (confirmations read).
fn subscriber(c: &TestCluster, i: usize, verb: &str, names: &[&str]) -> redis::Connection {
    let mut conn = c.conn(i).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut args = vec![verb];
    args.extend_from_slice(names);
    send(&mut conn, &args);
    for name in names {
        let confirm = next(&mut conn);
        assert_eq!(&confirm[..2], &[verb.to_lowercase(), name.to_string()]);
    }
    conn
}

#[test]
fn a_publish_on_any_node_reaches_every_subscriber_in_order() {
    let c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let mut subs: Vec<_> = (0..3)
        .map(|i| subscriber(&c, i, "SUBSCRIBE", &["news"]))
        .collect();
    let mut pattern = subscriber(&c, 2, "PSUBSCRIBE", &["n*s"]);

    // The links to the other nodes come up with the first message: publish until every
    // subscriber has one (a message published before a link is up may be dropped).
    let mut publisher = c.conn(1).unwrap();
    let local: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query(&mut publisher)
        .unwrap();
    assert_eq!(local, 1, "PUBLISH counts the receivers of its own node");
    for s in subs.iter_mut().chain([&mut pattern]) {
        let m = next(s);
        assert_eq!(m.last().map(String::as_str), Some("hello"), "{m:?}");
    }
    // Then 500 messages from one connection arrive everywhere, all and in order.
    let mut pipe = redis::pipe();
    for n in 0..500 {
        pipe.cmd("PUBLISH").arg("news").arg(n).ignore();
    }
    pipe.query::<()>(&mut publisher).unwrap();
    for (i, s) in subs.iter_mut().enumerate() {
        for n in 0..500 {
            assert_eq!(next(s), ["message", "news", &n.to_string()], "node {i}");
        }
    }
    for n in 0..500 {
        assert_eq!(
            next(&mut pattern),
            ["pmessage", "n*s", "news", &n.to_string()]
        );
    }
}

#[test]
fn shard_channels_follow_their_slot_through_migration_and_failover() {
    let c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.ctl_ok(&["join", "n3", "--replica-of", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    c.wait("the replica's link is up", T, |c| {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut c.conn(2)?)?;
        Ok(info.contains("master_link_status:up"))
    });
    // One channel in a slot of n1 (which has the replica), one in a slot of n2.
    let on = |i: usize| {
        (0..)
            .map(|n| format!("orders:{n}"))
            .find(|ch| c.key_owner(ch) == i)
            .unwrap()
    };
    let (ch1, ch2) = (on(0), on(1));

    // Routed like keys: MOVED elsewhere, CROSSSLOT across slots.
    let mut other = c.conn(1).unwrap();
    send(&mut other, &["SSUBSCRIBE", &ch1]);
    assert!(next(&mut other)[0].starts_with("MOVED"));
    send(&mut other, &["SPUBLISH", &ch1, "x"]);
    assert!(next(&mut other)[0].starts_with("MOVED"));
    send(&mut other, &["SSUBSCRIBE", &ch2, &ch1]);
    assert!(next(&mut other)[0].starts_with("CROSSSLOT"));

    // The primary's and (after READONLY) the replica's subscribers get SPUBLISH.
    let mut on_primary = subscriber(&c, 0, "SSUBSCRIBE", &[&ch1]);
    let mut on_replica = c.conn(2).unwrap();
    on_replica
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send(&mut on_replica, &["SSUBSCRIBE", &ch1]);
    assert!(
        next(&mut on_replica)[0].starts_with("MOVED"),
        "no READONLY yet"
    );
    let _: () = redis::cmd("READONLY").query(&mut on_replica).unwrap();
    send(&mut on_replica, &["SSUBSCRIBE", &ch1]);
    assert_eq!(next(&mut on_replica), ["ssubscribe", ch1.as_str(), "1"]);
    let mut n2_sub = subscriber(&c, 1, "SSUBSCRIBE", &[&ch2]);
    let mut publisher = c.conn(0).unwrap();
    let n: i64 = redis::cmd("SPUBLISH")
        .arg(&ch1)
        .arg("first")
        .query(&mut publisher)
        .unwrap();
    assert_eq!(n, 1, "SPUBLISH counts this node's receivers");
    assert_eq!(next(&mut on_primary), ["smessage", ch1.as_str(), "first"]);
    assert_eq!(next(&mut on_replica), ["smessage", ch1.as_str(), "first"]);

    // n2's slot moves to n1: its subscriber is told, and no longer receives.
    let slot2 = ember_core::key_slot(ch2.as_bytes()).to_string();
    c.ctl_ok(&["assign", "n1", &slot2]);
    assert_eq!(next(&mut n2_sub), ["sunsubscribe", ch2.as_str(), "0"]);

    // A manual failover: the old primary's subscribers are told; the promoted replica's
    // keep receiving, now from the new primary.
    c.ctl_ok(&["failover", "n3"]);
    assert_eq!(next(&mut on_primary), ["sunsubscribe", ch1.as_str(), "0"]);
    let mut new_primary = c.conn(2).unwrap();
    let n: i64 = redis::cmd("SPUBLISH")
        .arg(&ch1)
        .arg("after")
        .query(&mut new_primary)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(next(&mut on_replica), ["smessage", ch1.as_str(), "after"]);
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_by_the_pubsub_limit() {
    let c = TestCluster::start(1, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    let mut admin = c.conn(0).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 1mb 256kb 60")
        .query(&mut admin)
        .unwrap();
    let _slow = subscriber(&c, 0, "SUBSCRIBE", &["firehose"]);
    let _reader = subscriber(&c, 0, "SUBSCRIBE", &["other"]);
    let payload = "x".repeat(16 * 1024);
    // 8 MB published; the subscriber never reads, so its unsent output passes 1 MB.
    let mut delivered = 0;
    for _ in 0..512 {
        delivered += redis::cmd("PUBLISH")
            .arg("firehose")
            .arg(&payload)
            .query::<i64>(&mut admin)
            .unwrap();
    }
    assert!(
        delivered < 512,
        "the slow subscriber was still there at the end"
    );
    let info: String = redis::cmd("INFO").arg("stats").query(&mut admin).unwrap();
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1"),
        "{info}"
    );
    let n: Vec<Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("firehose")
        .arg("other")
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        n,
        [
            Value::BulkString(b"firehose".to_vec()),
            Value::Int(0),
            Value::BulkString(b"other".to_vec()),
            Value::Int(1)
        ]
    );
}

/// Client-side caching in a cluster: a tracking client that read a key is told it is
/// invalid when the key's slot migrates away (the new owner never saw the read), and the
/// new owner tracks what it reads there.
#[test]
fn tracked_keys_are_invalidated_when_their_slot_moves_away() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.wait_all_info("cluster_state", "ok", T);
    let key = "{cache}user:1";
    let from = c.key_owner(key);
    let to = 1 - from;
    let url = |i: usize| format!("redis://{}/?protocol=resp3", c.specs[i].addr());
    let mut tracking = redis::Client::open(url(from))
        .unwrap()
        .get_connection()
        .unwrap();
    tracking
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("on")
        .query(&mut tracking)
        .unwrap();
    let _: Value = redis::cmd("GET").arg(key).query(&mut tracking).unwrap();

    let slot = ember_core::key_slot(key.as_bytes()).to_string();
    c.ctl_ok(&["assign", &c.specs[to].name, &slot]);
    let push = tracking.recv_response().unwrap();
    let Value::Push { kind, data } = push else {
        panic!("expected an invalidation push, got {push:?}")
    };
    assert_eq!(kind, redis::PushKind::Invalidate);
    assert_eq!(
        data,
        vec![Value::Array(vec![Value::BulkString(
            key.as_bytes().to_vec()
        )])]
    );

    // On the new owner: read, written by another client, invalidated.
    let mut there = redis::Client::open(url(to))
        .unwrap()
        .get_connection()
        .unwrap();
    there
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("on")
        .query(&mut there)
        .unwrap();
    let _: Value = redis::cmd("GET").arg(key).query(&mut there).unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query(&mut c.conn(to).unwrap())
        .unwrap();
    let push = there.recv_response().unwrap();
    assert!(
        matches!(
            &push,
            Value::Push {
                kind: redis::PushKind::Invalidate,
                ..
            }
        ),
        "{push:?}"
    );
}
