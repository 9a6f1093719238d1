//! Replication between real data nodes: full sync while writes continue, the effect
//! stream, `WAIT`, `READONLY` reads, and partial resync after a cut link.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ember_tests::proxy::Proxy;
use ember_tests::TestCluster;
use redis::Commands;

const T: Duration = Duration::from_secs(30);

/// Every key of the node behind `conn` with its type, TTL presence and content, in a
/// canonical form (members of sets and hashes sorted), read with `READONLY`.
fn dataset(conn: &mut redis::Connection) -> BTreeMap<Vec<u8>, String> {
    redis::cmd("READONLY").query::<()>(conn).unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(conn).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(conn).unwrap();
        let content = match kind.as_str() {
            "string" => format!("{:?}", conn.get::<_, Vec<u8>>(&k).unwrap()),
            "list" => format!("{:?}", conn.lrange::<_, Vec<Vec<u8>>>(&k, 0, -1).unwrap()),
            "set" => {
                let mut m: Vec<Vec<u8>> = conn.smembers(&k).unwrap();
                m.sort();
                format!("{m:?}")
            }
            "hash" => {
                let m: BTreeMap<Vec<u8>, Vec<u8>> = conn.hgetall(&k).unwrap();
                format!("{m:?}")
            }
            "zset" => {
                let m: Vec<(Vec<u8>, f64)> = conn.zrange_withscores(&k, 0, -1).unwrap();
                format!("{m:?}")
            }
            "none" => continue, // expired between KEYS and TYPE
            other => panic!("unexpected type {other}"),
        };
        let ttl: i64 = conn.pttl(&k).unwrap();
        out.insert(k, format!("{kind} ttl:{} {content}", ttl > 0));
    }
    out
}

fn info(conn: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(conn).unwrap()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::to_string)
}

/// Fills node `i` with every type, big values (sent in pieces) included.
fn fill(c: &TestCluster, i: usize) {
    let mut conn = c.conn(i).unwrap();
    let mut pipe = redis::pipe();
    for n in 0..3000 {
        pipe.set(format!("s:{n}"), format!("v{n}")).ignore();
    }
    for n in 0..200 {
        pipe.cmd("SET")
            .arg(format!("ttl:{n}"))
            .arg(n)
            .arg("PX")
            .arg(600_000)
            .ignore();
    }
    // Bigger than one piece (4096 elements): sent under several locks.
    for n in 0..10_000 {
        pipe.rpush("big:list", n).ignore();
        pipe.sadd("big:set", n).ignore();
        pipe.hset("big:hash", format!("f{n}"), n).ignore();
        pipe.zadd("big:zset", format!("m{n}"), n as f64 / 7.0)
            .ignore();
    }
    pipe.set("big:string", "x".repeat(600 * 1024)).ignore();
    pipe.query::<()>(&mut conn).unwrap();
}

/// Writes to node `i` until `stop`: counters, appends to the big values, deletes,
/// expiries, renames (effects that depend on keys a full sync may not have sent yet).
fn writer(
    c: &TestCluster,
    i: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let mut conn = c.conn(i).unwrap();
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let mut pipe = redis::pipe();
            pipe.incr(format!("ctr:{}", n % 50), 1).ignore();
            pipe.rpush("big:list", format!("w{n}")).ignore();
            pipe.sadd("big:set", format!("w{n}")).ignore();
            pipe.hincr("big:hash", format!("f{}", n % 10_000), 1)
                .ignore();
            pipe.zincr("big:zset", format!("m{}", n % 10_000), 1.5)
                .ignore();
            pipe.del(format!("s:{}", n % 1000)).ignore();
            pipe.cmd("EXPIRE")
                .arg(format!("s:{}", (n + 7) % 1000))
                .arg(1000)
                .ignore();
            // {r} keeps both names in one slot.
            pipe.set(format!("{{r}}a{n}"), n).ignore();
            pipe.cmd("RENAME")
                .arg(format!("{{r}}a{n}"))
                .arg(format!("{{r}}b{}", n % 20))
                .ignore();
            pipe.cmd("SPOP").arg("big:set").ignore();
            if pipe.query::<()>(&mut conn).is_ok() {
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

#[test]
fn a_replica_syncs_in_full_while_writes_run_then_follows_the_stream() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait("n1 serves", T, |c| {
        Ok(c.cluster_info(0)?.get("cluster_state").map(String::as_str) == Some("ok"))
    });
    fill(&c, 0);

    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let w = writer(&c, 0, stop.clone(), done.clone());
    c.ctl_ok(&["join", "n2", "--replica-of", "n1"]);
    c.wait("n2's link to n1 is up", T, |c| {
        Ok(
            field(&info(&mut c.conn(1)?, "replication"), "master_link_status").as_deref()
                == Some("up"),
        )
    });
    // Writes go on a little after the sync, through the stream.
    let at_sync = done.load(Ordering::Relaxed);
    c.wait("writes continue after the sync", T, |_| {
        Ok(done.load(Ordering::Relaxed) > at_sync + 20)
    });
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    assert!(done.load(Ordering::Relaxed) > 0, "the writer made progress");

    let mut primary = c.conn(0).unwrap();
    let _: () = primary.set("last", "write").unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut primary)
        .unwrap();
    assert_eq!(
        acked,
        1,
        "WAIT 1 counts the replica once it applied the write:\n{}\n{}",
        info(&mut primary, "replication"),
        info(&mut c.conn(1).unwrap(), "replication")
    );
    let mut replica = c.conn(1).unwrap();
    let want = dataset(&mut primary);
    let got = dataset(&mut replica);
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("extra {}", String::from_utf8_lossy(k))),
        )
        .take(10)
        .collect();
    assert!(
        differ.is_empty(),
        "replica differs from its primary: {differ:?}"
    );
    assert!(
        want.len() > 2200,
        "the dataset was filled ({} keys)",
        want.len()
    );

    // The primary shows its replica; the replica serves reads only after READONLY.
    let info0 = info(&mut primary, "replication");
    assert_eq!(field(&info0, "connected_slaves").as_deref(), Some("1"));
    let slave0 = field(&info0, "slave0").unwrap();
    assert!(
        slave0.starts_with(&format!(
            "ip=127.0.0.1,port={},state=online,offset=",
            c.specs[1].port
        )),
        "{slave0}"
    );
    assert_eq!(
        field(&info(&mut replica, "stats"), "sync_full").as_deref(),
        Some("0"),
        "the replica served no sync"
    );
    assert_eq!(field(&info0, "master_repl_offset"), {
        let i = info(&mut replica, "replication");
        field(&i, "master_repl_offset")
    });
    let mut fresh = c.conn(1).unwrap();
    let moved = fresh.get::<_, String>("last").unwrap_err();
    assert_eq!(moved.code(), Some("MOVED"), "{moved}");
    let write = {
        redis::cmd("READONLY").query::<()>(&mut fresh).unwrap();
        fresh.set::<_, _, ()>("last", "x").unwrap_err()
    };
    assert_eq!(
        write.code(),
        Some("MOVED"),
        "writes to a replica are redirected: {write}"
    );
    assert_eq!(fresh.get::<_, String>("last").unwrap(), "write");
    let wait_on_replica = redis::cmd("WAIT")
        .arg(1)
        .arg(10)
        .query::<i64>(&mut fresh)
        .unwrap_err();
    assert!(
        wait_on_replica
            .to_string()
            .contains("WAIT cannot be used with replica instances"),
        "{wait_on_replica}"
    );
}

#[test]
fn a_cut_link_resumes_from_the_backlog_and_a_restarted_replica_syncs_in_full() {
    let mut c = TestCluster::start(1, Duration::from_secs(5));
    let mut proxy = None;
    let i = c.add_node_with(|port| {
        let p = Proxy::start(format!("127.0.0.1:{port}"));
        let a = p.addr();
        proxy = Some(p);
        Some(a)
    });
    let proxy = proxy.unwrap();
    c.wait("n2 registered", T, |c| {
        let s = c.ctl_json(&["nodes"])?;
        Ok(
            s["nodes"].as_array().map_or(0, Vec::len) + s["pending"].as_array().map_or(0, Vec::len)
                == 2,
        )
    });
    // n2 (behind the proxy) is the primary, n1 its replica.
    c.ctl_ok(&["bootstrap", "n2"]);
    c.ctl_ok(&["join", "n1", "--replica-of", "n2"]);
    let mut primary = c.conn(i).unwrap();
    let wait1 = |conn: &mut redis::Connection| -> i64 {
        redis::cmd("WAIT").arg(1).arg(5000).query(conn).unwrap()
    };
    c.wait("n1's link to n2 is up", T, |c| {
        Ok(
            field(&info(&mut c.conn(0)?, "replication"), "master_link_status").as_deref()
                == Some("up"),
        )
    });
    for n in 0..100 {
        let _: () = primary.set(format!("k{n}"), n).unwrap();
    }
    assert_eq!(wait1(&mut primary), 1);

    proxy.cut();
    c.wait("n1 sees its link down", T, |c| {
        Ok(
            field(&info(&mut c.conn(0)?, "replication"), "master_link_status").as_deref()
                == Some("down"),
        )
    });
    for n in 100..200 {
        let _: () = primary.set(format!("k{n}"), n).unwrap();
    }
    let none: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(200)
        .query(&mut primary)
        .unwrap();
    assert_eq!(none, 0, "WAIT times out with no replica reachable");
    proxy.heal();
    assert_eq!(
        wait1(&mut primary),
        1,
        "the replica caught up after the link healed"
    );
    let stats = info(&mut primary, "stats");
    assert_eq!(field(&stats, "sync_full").as_deref(), Some("1"), "{stats}");
    assert_eq!(
        field(&stats, "sync_partial_ok").as_deref(),
        Some("1"),
        "{stats}"
    );
    assert_eq!(dataset(&mut primary), dataset(&mut c.conn(0).unwrap()));

    // A restarted replica has no data: it syncs in full again.
    c.nodes[0].kill();
    c.restart_node(0);
    c.wait("the restarted replica is in sync", T, |c| {
        Ok(
            field(&info(&mut c.conn(0)?, "replication"), "master_link_status").as_deref()
                == Some("up"),
        )
    });
    let _: () = primary.set("after", "restart").unwrap();
    assert_eq!(wait1(&mut primary), 1);
    assert_eq!(
        field(&info(&mut primary, "stats"), "sync_full").as_deref(),
        Some("2")
    );
    assert_eq!(dataset(&mut primary), dataset(&mut c.conn(0).unwrap()));
}
