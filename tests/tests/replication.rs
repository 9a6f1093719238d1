//! Replication between real data nodes: full sync while writes continue, the effect
//! stream, `WAIT`, `READONLY` reads, and partial resync after a cut link.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ember_tests::proxy::Proxy;
use ember_tests::{dataset, TestCluster};
use redis::Commands;

const T: Duration = Duration::from_secs(30);

fn info(conn: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(conn).unwrap()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::to_string)
}

/// `WAIT 1 5000` on `conn`: how many replicas acknowledged its last write.
fn wait1(conn: &mut redis::Connection) -> i64 {
    redis::cmd("WAIT").arg(1).arg(5000).query(conn).unwrap()
}

/// Waits until node `i`'s link to its primary is up.
fn wait_link_up(c: &TestCluster, i: usize, what: &str) {
    c.wait(what, T, |c| {
        Ok(
            field(&info(&mut c.conn(i)?, "replication"), "master_link_status").as_deref()
                == Some("up"),
        )
    });
}

/// Every counter write that `WAIT 1` confirmed (key -> the last value written) is on
/// the node behind `conn` (the promoted replica), or a later one.
fn assert_has_confirmed(conn: &mut redis::Connection, confirmed: &BTreeMap<String, u64>) {
    for (key, value) in confirmed {
        let got: Option<u64> = conn.get(key).unwrap();
        assert!(
            got.is_some_and(|g| g >= *value),
            "{key}: WAIT confirmed {value}, the new primary has {got:?}"
        );
    }
}

/// Waits until node `i` is a replica of node `primary` with its link up.
fn wait_follows(c: &TestCluster, i: usize, primary: usize, what: &str) {
    c.wait(what, T, |c| {
        let r = info(&mut c.conn(i)?, "replication");
        Ok(field(&r, "role").as_deref() == Some("slave")
            && field(&r, "master_port") == Some(c.specs[primary].port.to_string())
            && field(&r, "master_link_status").as_deref() == Some("up"))
    });
}

/// Waits until node 1 (n2) is a primary and node 0 (n1) its replica with the link up.
fn wait_roles_swapped(c: &TestCluster, what: &str) {
    c.wait(what, T, |c| {
        let i1 = info(&mut c.conn(0)?, "replication");
        let i2 = info(&mut c.conn(1)?, "replication");
        Ok(field(&i2, "role").as_deref() == Some("master")
            && field(&i1, "role").as_deref() == Some("slave")
            && field(&i1, "master_link_status").as_deref() == Some("up"))
    });
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
    wait_link_up(&c, 1, "n2's link to n1 is up");
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
    let acked = wait1(&mut primary);
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
    wait_link_up(&c, 0, "n1's link to n2 is up");
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
    // A replica whose link is down serves its stale data (replica-serve-stale-data yes,
    // the default), or refuses reads with Redis's MASTERDOWN when told not to.
    let mut replica = c.conn(0).unwrap();
    redis::cmd("READONLY").query::<()>(&mut replica).unwrap();
    assert_eq!(replica.get::<_, Option<u64>>("k7").unwrap(), Some(7));
    redis::cmd("CONFIG")
        .arg(&["SET", "replica-serve-stale-data", "no"])
        .query::<()>(&mut replica)
        .unwrap();
    let refused = replica.get::<_, Option<u64>>("k7").unwrap_err();
    assert_eq!(refused.code(), Some("MASTERDOWN"), "{refused}");
    for n in 100..200 {
        let _: () = primary.set(format!("k{n}"), n).unwrap();
    }
    let none: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(200)
        .query(&mut primary)
        .unwrap();
    assert_eq!(none, 0, "WAIT times out with no replica reachable");
    // min-replicas-to-write 1: with the only replica gone for over a second, writes
    // are refused (reads are not); once it is back they are accepted again.
    redis::cmd("CONFIG")
        .arg(&[
            "SET",
            "min-replicas-to-write",
            "1",
            "min-replicas-max-lag",
            "1",
        ])
        .query::<()>(&mut primary)
        .unwrap();
    c.wait("writes refused without a good replica", T, |_| {
        let r = primary.set::<_, _, ()>("k-min", 1);
        Ok(r.is_err_and(|e| e.code() == Some("NOREPLICAS")))
    });
    assert_eq!(primary.get::<_, Option<u64>>("k100").unwrap(), Some(100));
    proxy.heal();
    c.wait("writes accepted with the replica back", T, |_| {
        Ok(primary.set::<_, _, ()>("k-min", 1).is_ok())
    });
    redis::cmd("CONFIG")
        .arg(&["SET", "min-replicas-to-write", "0"])
        .query::<()>(&mut primary)
        .unwrap();
    assert_eq!(
        wait1(&mut primary),
        1,
        "the replica caught up after the link healed"
    );
    assert_eq!(replica.get::<_, Option<u64>>("k150").unwrap(), Some(150));
    redis::cmd("CONFIG")
        .arg(&["SET", "replica-serve-stale-data", "yes"])
        .query::<()>(&mut replica)
        .unwrap();
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
    wait_link_up(&c, 0, "the restarted replica is in sync");
    let _: () = primary.set("after", "restart").unwrap();
    assert_eq!(wait1(&mut primary), 1);
    assert_eq!(
        field(&info(&mut primary, "stats"), "sync_full").as_deref(),
        Some("2")
    );
    assert_eq!(dataset(&mut primary), dataset(&mut c.conn(0).unwrap()));
}

/// Writes `n` keys that all hash to slots of node `owner` (found by asking the node).
fn keys_on(c: &TestCluster, owner: usize, n: usize, prefix: &str) -> Vec<String> {
    let mut conn = c.conn(owner).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let key = format!("{prefix}{i}");
        i += 1;
        if conn.get::<_, Option<String>>(&key).is_ok() {
            out.push(key);
        }
    }
    out
}

#[test]
fn killing_a_primary_promotes_its_replica_with_every_waited_write() {
    let node_timeout = Duration::from_millis(1500);
    let mut c = TestCluster::start(4, node_timeout);
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.ctl_ok(&["join", "n4", "--replica-of", "n3"]);
    wait_link_up(&c, 3, "n4's link to n3 is up");
    let keys = keys_on(&c, 2, 200, "fo:");

    // One writer on n3's slots, each write followed by WAIT 1: what WAIT confirmed
    // must survive the failover.
    let stop = Arc::new(AtomicBool::new(false));
    let confirmed = Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let writer = {
        let (stop, confirmed, keys) = (stop.clone(), confirmed.clone(), keys.clone());
        let mut conn = c.conn(2).unwrap();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = &keys[n as usize % keys.len()];
                if conn.set::<_, _, ()>(key, n).is_err() {
                    break; // n3 is gone
                }
                match redis::cmd("WAIT").arg(1).arg(100).query::<i64>(&mut conn) {
                    Ok(1) => confirmed.lock().unwrap().push((key.clone(), n)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
    };
    // A second writer without WAIT (unique keys): how many of its acknowledged writes
    // the failover loses is reported (bounded by the replica's lag).
    let killed = Arc::new(AtomicBool::new(false));
    let unwaited_acked = Arc::new(AtomicU64::new(0));
    let unwaited = {
        let keys = keys_on(&c, 2, 200, "fu:");
        let mut conn = c.conn(2).unwrap();
        let (killed, count) = (killed.clone(), unwaited_acked.clone());
        std::thread::spawn(move || {
            let (mut acked, mut refused) = (Vec::new(), Vec::new());
            for n in 0u64.. {
                // A key of n3's, as a hash tag: the unique key lands in the same slot.
                let key = format!("{{{}}}:{n}", keys[n as usize % keys.len()]);
                match conn.set::<_, _, ()>(&key, n) {
                    Ok(()) => {
                        acked.push(key);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if killed.load(Ordering::Relaxed) => break, // n3 is gone
                    Err(e) => refused.push(e.to_string()),
                }
            }
            (acked, refused)
        })
    };
    c.wait("some writes confirmed", T, |_| {
        Ok(confirmed.lock().unwrap().len() > 50)
    });
    c.wait("some writes without WAIT acknowledged", T, |_| {
        Ok(unwaited_acked.load(Ordering::Relaxed) > 50)
    });
    let killed_at = std::time::Instant::now();
    killed.store(true, Ordering::Relaxed);
    c.nodes[2].kill();
    writer.join().unwrap();
    let (unwaited, refused) = unwaited.join().unwrap();
    // Refusals before the kill are possible on a loaded machine (a write lease renewed
    // late answers CLUSTERDOWN for a moment): the writer retried them.
    if !refused.is_empty() {
        eprintln!(
            "failover: {} writes refused before the kill, e.g. {}",
            refused.len(),
            refused[0]
        );
    }
    stop.store(true, Ordering::Relaxed);

    // n4 takes n3's slots; every surviving node agrees.
    let mut served_after = None;
    c.wait("n4 serves n3's slots and the cluster is ok", T, |c| {
        let mut n4 = c.conn(3)?;
        let ok = n4.get::<_, Option<String>>(&keys[0]).is_ok()
            && [0, 1, 3].iter().all(|&i| {
                c.cluster_info(i)
                    .ok()
                    .and_then(|m| m.get("cluster_state").cloned())
                    .as_deref()
                    == Some("ok")
            });
        if ok && served_after.is_none() {
            served_after = Some(killed_at.elapsed());
        }
        Ok(ok)
    });
    eprintln!(
        "failover: kill -9 -> n4 serves and cluster_state ok after {:?} (node timeout {node_timeout:?})",
        served_after.unwrap()
    );
    let mut n4 = c.conn(3).unwrap();
    let latest: BTreeMap<String, u64> = confirmed.lock().unwrap().iter().cloned().collect();
    assert_has_confirmed(&mut n4, &latest);
    let lost = unwaited
        .iter()
        .filter(|k| n4.get::<_, Option<u64>>(*k).unwrap().is_none())
        .count();
    eprintln!(
        "failover: {lost} of {} acknowledged writes without WAIT were lost (the replica's lag)",
        unwaited.len()
    );
    assert!(!unwaited.is_empty());
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut n4).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));

    // The old primary comes back empty and becomes a replica of n4, synced in full.
    c.restart_node(2);
    wait_follows(&c, 2, 3, "n3 is a replica of n4 with its link up");
    let _: () = n4.set(&keys[1], "after").unwrap();
    assert_eq!(wait1(&mut n4), 1);
    assert_eq!(
        dataset(&mut n4).len(),
        dataset(&mut c.conn(2).unwrap()).len()
    );
    assert_eq!(dataset(&mut n4), dataset(&mut c.conn(2).unwrap()));
}

#[test]
fn a_primary_restarted_without_its_data_does_not_wipe_its_replica() {
    // A long node timeout: the restart is over before anyone could be marked failed.
    let mut c = TestCluster::start(2, Duration::from_secs(30));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.ctl_ok(&["join", "n2", "--replica-of", "n1"]);
    wait_link_up(&c, 1, "n2's link to n1 is up");
    let mut n1 = c.conn(0).unwrap();
    for n in 0..500 {
        let _: () = n1.set(format!("keep:{n}"), n).unwrap();
    }
    assert_eq!(wait1(&mut n1), 1);
    let before = dataset(&mut c.conn(1).unwrap());
    assert_eq!(before.len(), 500);

    c.nodes[0].kill();
    c.restart_node(0);
    wait_roles_swapped(&c, "n2 took over and n1 follows it");
    let mut n2 = c.conn(1).unwrap();
    assert_eq!(dataset(&mut n2), before, "the replica kept every key");
    let _: () = n2.set("keep:new", 1).unwrap();
    assert_eq!(wait1(&mut n2), 1);
    assert_eq!(dataset(&mut c.conn(0).unwrap()), dataset(&mut n2));
}

#[test]
fn emberctl_replicate_then_failover_force_swaps_the_roles() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.ctl_ok(&["join", "n2"]);
    let refused = c.ctl(&["replicate", "n1", "n2"]);
    assert!(!refused.status.success(), "n1 owns slots");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("owns slots"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    c.ctl_ok(&["replicate", "n2", "n1"]);
    wait_link_up(&c, 1, "n2's link to n1 is up");
    let mut n1 = c.conn(0).unwrap();
    for n in 0..100 {
        let _: () = n1.set(format!("sw:{n}"), n).unwrap();
    }
    assert_eq!(wait1(&mut n1), 1);
    let before = dataset(&mut n1);

    c.ctl_ok(&["failover", "n2", "--force"]);
    wait_roles_swapped(&c, "n2 is the primary and n1 follows it");
    let mut n2 = c.conn(1).unwrap();
    assert_eq!(dataset(&mut n2), before);
    let _: () = n2.set("sw:new", 1).unwrap();
    assert_eq!(wait1(&mut n2), 1);
    // n1 kept its history: it resumed from n2's backlog (PSYNC2), no second full sync.
    let stats = info(&mut n2, "stats");
    assert_eq!(
        field(&stats, "sync_partial_ok").as_deref(),
        Some("1"),
        "{stats}"
    );
    assert_eq!(dataset(&mut c.conn(0).unwrap()), dataset(&mut n2));
}

#[test]
fn a_primary_cut_off_from_the_control_plane_and_its_replica_stops_writing_before_the_promotion() {
    // n1 a primary, n2 a primary reached (by the control plane and by its replica n3)
    // only through proxies; clients reach n2 directly, as on a partitioned host.
    let node_timeout = Duration::from_millis(1500);
    let mut c = TestCluster::start(1, node_timeout);
    let (cp_proxy, link_proxy) = (std::cell::OnceCell::new(), std::cell::OnceCell::new());
    c.add_node_linked(
        |port| {
            let p = Proxy::start(format!("127.0.0.1:{port}"));
            let addr = p.addr();
            let _ = link_proxy.set(p);
            Some(addr)
        },
        |cp| {
            let p = Proxy::start(cp);
            let addr = p.addr();
            let _ = cp_proxy.set(p);
            Some(addr)
        },
    );
    let (cp_proxy, link_proxy) = (
        cp_proxy.into_inner().unwrap(),
        link_proxy.into_inner().unwrap(),
    );
    c.add_node();
    c.wait("all registered", T, |c| {
        Ok(c.ctl_json(&["nodes"])?["pending"]
            .as_array()
            .map_or(0, Vec::len)
            == 3)
    });
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.ctl_ok(&["join", "n3", "--replica-of", "n2"]);
    wait_link_up(&c, 2, "n3's link to n2 is up");
    let keys = keys_on(&c, 1, 100, "part:");
    let lease = (node_timeout / 2).max(Duration::from_millis(900));

    // A writer on n2 records every acknowledged write (and whether WAIT confirmed it).
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(
        String,
        u64,
        std::time::Instant,
        bool,
    )>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked, errors, keys) =
            (stop.clone(), acked.clone(), errors.clone(), keys.clone());
        let mut conn = c.conn(1).unwrap();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = &keys[n as usize % keys.len()];
                match conn.set::<_, _, ()>(key, n) {
                    Ok(()) => {
                        let at = std::time::Instant::now();
                        let waited = redis::cmd("WAIT")
                            .arg(1)
                            .arg(100)
                            .query::<i64>(&mut conn)
                            .is_ok_and(|r| r == 1);
                        acked.lock().unwrap().push((key.clone(), n, at, waited));
                    }
                    Err(e) => {
                        assert!(
                            e.to_string().contains("write lease expired"),
                            "only the lease refuses writes here: {e}"
                        );
                        errors.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        })
    };
    c.wait("some writes confirmed", T, |_| {
        Ok(acked.lock().unwrap().iter().filter(|a| a.3).count() > 50)
    });

    let cut_at = std::time::Instant::now();
    cp_proxy.cut();
    link_proxy.cut();
    c.wait("n2 refuses writes", T, |_| {
        Ok(errors.load(Ordering::Relaxed) > 0)
    });
    let last_ack = acked.lock().unwrap().last().unwrap().2;
    eprintln!(
        "partition: n2's last acknowledged write {:?} after the cut (lease {lease:?})",
        last_ack.saturating_duration_since(cut_at)
    );
    assert!(
        last_ack.saturating_duration_since(cut_at) <= lease + Duration::from_millis(300),
        "n2 acknowledged writes for longer than its lease"
    );

    let mut promoted_seen = None;
    c.wait("n3 is promoted", T, |c| {
        let i = info(&mut c.conn(2)?, "replication");
        let promoted = field(&i, "role").as_deref() == Some("master");
        if promoted {
            promoted_seen = Some(std::time::Instant::now());
        }
        Ok(promoted)
    });
    let promoted_seen = promoted_seen.unwrap();
    // The writer keeps trying n2 for a while after the promotion: nothing is acknowledged.
    let errors_then = errors.load(Ordering::Relaxed);
    c.wait("n2 refused more writes after the promotion", T, |_| {
        Ok(errors.load(Ordering::Relaxed) > errors_then + 20)
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.iter().all(|a| a.2 < promoted_seen),
        "n2 acknowledged a write after n3 was promoted"
    );

    // Every write WAIT confirmed is on n3.
    let mut n3 = c.conn(2).unwrap();
    let mut latest = BTreeMap::new();
    for (key, n, _, waited) in &acked {
        if *waited {
            latest.insert(key.clone(), *n);
        }
    }
    assert_has_confirmed(&mut n3, &latest);
    let lost = acked
        .iter()
        .filter(|(key, n, _, waited)| {
            !waited
                && n3
                    .get::<_, Option<u64>>(key)
                    .unwrap()
                    .is_none_or(|g| g < *n)
        })
        .count();
    eprintln!("partition: {lost} acknowledged writes without WAIT were lost");

    // Healed: n2 learns it was replaced, follows n3 and converges.
    cp_proxy.heal();
    link_proxy.heal();
    wait_follows(&c, 1, 2, "n2 is a replica of n3 with its link up");
    let _: () = n3.set(&keys[0], "healed").unwrap();
    assert_eq!(wait1(&mut n3), 1);
    assert_eq!(dataset(&mut c.conn(1).unwrap()), dataset(&mut n3));
}

#[test]
fn with_the_control_plane_down_primaries_keep_writing_and_replicating() {
    let node_timeout = Duration::from_millis(1500);
    let mut c = TestCluster::start(4, node_timeout);
    c.ctl_ok(&["bootstrap", "--replicas", "1", "n1", "n2", "n3", "n4"]);
    let primaries: Vec<usize> = (0..4)
        .filter(|&i| {
            field(&info(&mut c.conn(i).unwrap(), "replication"), "role").as_deref()
                == Some("master")
        })
        .collect();
    assert_eq!(primaries.len(), 2);
    for i in (0..4).filter(|i| !primaries.contains(i)) {
        wait_link_up(&c, i, "replica link up");
    }

    // One writer per primary, each write followed by WAIT 1 100: any error, and any
    // write its replica did not acknowledge, counts.
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, errors, unreplicated) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let writers: Vec<_> = primaries
        .iter()
        .map(|&p| {
            let keys = keys_on(&c, p, 50, &format!("cpd{p}:"));
            let mut conn = c.conn(p).unwrap();
            let (stop, writes, errors, unreplicated) = (
                stop.clone(),
                writes.clone(),
                errors.clone(),
                unreplicated.clone(),
            );
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if let Err(e) = conn.set::<_, _, ()>(&keys[n % keys.len()], n) {
                        eprintln!("write error: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    writes.fetch_add(1, Ordering::Relaxed);
                    match redis::cmd("WAIT").arg(1).arg(100).query::<i64>(&mut conn) {
                        Ok(1) => {}
                        _ => {
                            unreplicated.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    c.wait("writes flow", T, |_| {
        Ok(writes.load(Ordering::Relaxed) > 100)
    });

    c.cp.kill();
    let down_from = writes.load(Ordering::Relaxed);
    // Ten seconds without a control plane: several lease lengths, many node timeouts.
    let back = std::time::Instant::now() + Duration::from_secs(10);
    c.wait("ten seconds pass", T, |_| {
        Ok(std::time::Instant::now() >= back)
    });
    let while_down = writes.load(Ordering::Relaxed) - down_from;
    c.cp.start();
    c.wait("every node is back in session", T, |c| {
        let state = c.ctl_json(&["nodes"])?;
        Ok(state["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 4 && n.iter().all(|n| n["health"] == "ok")))
    });
    let after = writes.load(Ordering::Relaxed);
    c.wait("writes flow after the restart", T, |_| {
        Ok(writes.load(Ordering::Relaxed) > after + 100)
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    eprintln!("control plane down 10 s: {while_down} writes meanwhile");
    assert!(
        while_down > 1000,
        "writes stalled while the control plane was down"
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "client errors");
    assert_eq!(
        unreplicated.load(Ordering::Relaxed),
        0,
        "writes the replicas did not acknowledge within 100 ms"
    );
    let state = c.ctl_json(&["nodes"]).unwrap();
    assert!(
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["health"] == "ok"),
        "a node was marked failed: {state}"
    );
}

#[test]
fn a_manual_failover_under_load_loses_nothing_and_clients_only_follow_redirects() {
    let c = TestCluster::start(4, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "--replicas", "1", "n1", "n2", "n3", "n4"]);
    let role = |c: &TestCluster, i: usize| {
        field(&info(&mut c.conn(i).unwrap(), "replication"), "role").unwrap()
    };
    let replica = (0..4).find(|&i| role(&c, i) == "slave").unwrap();
    wait_link_up(&c, replica, "the replica's link is up");
    let primary_port = field(
        &info(&mut c.conn(replica).unwrap(), "replication"),
        "master_port",
    )
    .unwrap();
    let primary = (0..4)
        .find(|&i| c.specs[i].port.to_string() == primary_port)
        .unwrap();
    for i in (0..4).filter(|&i| role(&c, i) == "slave") {
        wait_link_up(&c, i, "every replica's link is up");
    }

    // Writers through a cluster client: unique SETs and INCRs, every reply recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let slowest = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, errors, slowest) = (stop.clone(), errors.clone(), slowest.clone());
            let client = c.cluster_client();
            std::thread::spawn(move || {
                let mut conn = client.get_connection().unwrap();
                let (mut sets, mut incrs) = (Vec::new(), BTreeMap::<String, u64>::new());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let began = std::time::Instant::now();
                    let key = format!("mf:{w}:{n}");
                    match conn.set::<_, _, ()>(&key, n) {
                        Ok(()) => sets.push((key, n)),
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                    let ctr = format!("mfc:{w}:{}", n % 64);
                    match conn.incr::<_, _, u64>(&ctr, 1) {
                        Ok(v) => {
                            incrs.insert(ctr, v);
                        }
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                    let took = began.elapsed().as_micros() as u64;
                    slowest.fetch_max(took, Ordering::Relaxed);
                }
                (sets, incrs)
            })
        })
        .collect();
    let written = |c: &TestCluster| -> anyhow::Result<i64> {
        Ok(redis::cmd("DBSIZE").query(&mut c.conn(primary)?)?)
    };
    c.wait("writes flow", T, |c| Ok(written(c)? > 500));

    // Over to the replica, then back: two zero-loss swaps under load.
    let name = |i: usize| c.specs[i].name.clone();
    c.ctl_ok(&["failover", &name(replica)]);
    c.wait("the replica is the primary now", T, |c| {
        let old = info(&mut c.conn(primary)?, "replication");
        Ok(role(c, replica) == "master"
            && field(&old, "role").as_deref() == Some("slave")
            && field(&old, "master_link_status").as_deref() == Some("up"))
    });
    let first_swap_slowest = slowest.swap(0, Ordering::Relaxed);
    c.ctl_ok(&["failover", &name(primary)]);
    c.wait("the old primary is the primary again", T, |c| {
        let old = info(&mut c.conn(replica)?, "replication");
        Ok(role(c, primary) == "master"
            && field(&old, "role").as_deref() == Some("slave")
            && field(&old, "master_link_status").as_deref() == Some("up"))
    });
    let settled = written(&c).unwrap();
    c.wait("writes flow after the swaps", T, |c| {
        Ok(written(c)? > settled + 200)
    });
    stop.store(true, Ordering::Relaxed);
    let mut sets = Vec::new();
    let mut incrs = BTreeMap::new();
    for w in writers {
        let (s, i) = w.join().unwrap();
        sets.extend(s);
        incrs.extend(i);
    }
    eprintln!(
        "manual failover: slowest write {} us (first swap), {} us (second); {} writes",
        first_swap_slowest,
        slowest.load(Ordering::Relaxed),
        sets.len()
    );
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "client errors: {errors:?}");

    ember_tests::assert_acknowledged(&c, &sets, &incrs);
    // Both swaps resumed partially (PSYNC2): the datasets agree without a second full sync.
    let mut p = c.conn(primary).unwrap();
    assert_eq!(wait1(&mut p), 1);
    assert_eq!(dataset(&mut p), dataset(&mut c.conn(replica).unwrap()));
}

#[test]
fn a_migration_between_shards_with_replicas_survives_the_target_dying_at_the_commit() {
    let node_timeout = Duration::from_millis(1500);
    let mut c = TestCluster::start(4, node_timeout);
    c.ctl_ok(&["bootstrap", "--replicas", "1", "n1", "n2", "n3", "n4"]);
    let nodes = c.ctl_json(&["nodes"]).unwrap();
    let index = |id: &str| {
        let n = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap();
        let addr = n["client_addr"].as_str().unwrap();
        c.specs.iter().position(|s| s.addr() == addr).unwrap()
    };
    let replica_of = |p: usize| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["primary_id"].is_string())
            .map(|n| {
                (
                    index(n["id"].as_str().unwrap()),
                    index(n["primary_id"].as_str().unwrap()),
                )
            })
            .find(|&(_, of)| of == p)
            .unwrap()
            .0
    };
    let (source, target) = (0, 1);
    let (source_replica, target_replica) = (replica_of(source), replica_of(target));
    wait_link_up(&c, source_replica, "the source's replica is linked");
    wait_link_up(&c, target_replica, "the target's replica is linked");

    // Keys in a few slots of the source, under hash tags.
    let mut src = c.conn(source).unwrap();
    let tags: Vec<String> = (0..)
        .map(|i| format!("t{i}"))
        .filter(|t| src.get::<_, Option<String>>(format!("{{{t}}}")).is_ok())
        .take(4)
        .collect();
    let value = "v".repeat(200);
    let mut pipe = redis::pipe();
    for t in &tags {
        for i in 0..5000 {
            pipe.set(format!("{{{t}}}k{i}"), &value).ignore();
        }
    }
    pipe.query::<()>(&mut src).unwrap();
    assert_eq!(wait1(&mut src), 1);
    let slots: Vec<String> = tags
        .iter()
        .map(|t| {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(t)
                .query::<u16>(&mut src)
                .unwrap()
                .to_string()
        })
        .collect();

    // Move them live, and kill -9 the target the moment the move is committed.
    let mut args = vec!["assign", c.specs[target].name.as_str()];
    args.extend(slots.iter().map(String::as_str));
    c.ctl_ok(&args);
    c.nodes[target].kill();

    // The target's replica takes over, with every moved key.
    c.wait("the target's replica serves the moved slots", T, |c| {
        let mut r = c.conn(target_replica)?;
        Ok(r.get::<_, Option<String>>(format!("{{{}}}k0", tags[0]))
            .is_ok())
    });
    let mut heir = c.conn(target_replica).unwrap();
    for t in &tags {
        let n: i64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(
                redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(t)
                    .query::<u16>(&mut heir)
                    .unwrap(),
            )
            .query(&mut heir)
            .unwrap();
        assert_eq!(
            n, 5000,
            "slot of {{{t}}}: the promoted replica holds every moved key"
        );
    }
    // The source and its replica dropped them, and still agree.
    c.wait("the source's replica equals the source", T, |c| {
        Ok(dataset(&mut c.conn(source_replica)?) == dataset(&mut c.conn(source)?))
    });
    assert!(dataset(&mut c.conn(source).unwrap())
        .keys()
        .all(|k| !k.starts_with(b"{t")));
}

#[test]
fn a_replica_applies_each_transaction_whole() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.ctl_ok(&["join", "n2", "--replica-of", "n1"]);
    wait_link_up(&c, 1, "n2's link is up");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut conn = c.conn(0).unwrap();
        std::thread::spawn(move || {
            for _ in 0..3000 {
                redis::pipe()
                    .atomic()
                    .incr("{t}a", 1)
                    .ignore()
                    .incr("{t}b", 1)
                    .ignore()
                    .query::<()>(&mut conn)
                    .unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut reader = c.conn(1).unwrap();
    redis::cmd("READONLY").query::<()>(&mut reader).unwrap();
    let (mut reads, mut seen) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let (a, b): (Option<u64>, Option<u64>) = redis::cmd("MGET")
            .arg("{t}a")
            .arg("{t}b")
            .query(&mut reader)
            .unwrap();
        reads += 1;
        assert_eq!(a, b, "a reader on the replica saw half of a transaction");
        seen += u64::from(a.is_some());
    }
    writer.join().unwrap();
    assert!(
        seen > 100,
        "the reader saw the transactions land ({seen} of {reads})"
    );
}

#[test]
fn a_replica_whose_link_was_down_too_long_is_not_promoted_and_says_why() {
    let node_timeout = Duration::from_millis(500);
    let options = ember_tests::NodeOptions {
        control_plane_args: vec!["--replica-validity-factor".into(), "2".into()],
        ..Default::default()
    };
    let mut c = TestCluster::start_with(1, node_timeout, options);
    let mut proxy = None;
    c.add_node_with(|port| {
        let p = Proxy::start(format!("127.0.0.1:{port}"));
        let a = p.addr();
        proxy = Some(p);
        Some(a)
    });
    let proxy = proxy.unwrap();
    c.add_node();
    c.wait("three registered", T, |c| {
        Ok(c.ctl_json(&["pending"])?["pending"]
            .as_array()
            .map_or(0, Vec::len)
            == 3)
    });
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.ctl_ok(&["join", "n3", "--replica-of", "n2"]);
    wait_link_up(&c, 2, "n3 streams from n2");
    let n3 = |c: &TestCluster| -> anyhow::Result<serde_json::Value> {
        let nodes = c.ctl_json(&["nodes"])?;
        Ok(nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "n3")
            .unwrap()
            .clone())
    };
    c.wait("n3 is promotable (its synced link reported)", T, |c| {
        Ok(n3(c)?["not_promotable"].is_null())
    });

    // The link stays down for longer than 2 node timeouts: n3 is too stale.
    proxy.cut();
    c.wait("n3 is marked not promotable", T, |c| {
        Ok(n3(c)?["not_promotable"]
            .as_str()
            .is_some_and(|why| why.contains("--replica-validity-factor")))
    });
    let text = c.ctl_ok(&["nodes"]);
    assert!(text.contains("not promotable"), "{text}");
    c.nodes[1].kill();
    c.wait("n2 is marked failed", T, |c| {
        Ok(c.ctl_json(&["nodes"])?["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "n2" && n["health"] == "fail"))
    });
    // Failover is evaluated every 20 ms: over ten node timeouts, n3 stays a replica.
    let until = std::time::Instant::now() + node_timeout * 10;
    while std::time::Instant::now() < until {
        assert_eq!(
            n3(&c).unwrap()["role"],
            "replica",
            "a stale replica was promoted"
        );
    }
}
