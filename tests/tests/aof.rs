//! The append-only file on real data nodes: kill -9 under write load loses no
//! acknowledged write with `appendfsync always` and about a second at most with
//! `everysec` (measured and printed); a rewrite under writes keeps every key, shrinks
//! the file and also starts on its own; a torn tail is cut or refused as
//! `aof-load-truncated` says, corruption stops the node with the offset; `CONFIG SET
//! appendonly yes` on a node with data writes it all; a replica restarted from its file
//! resumes replication partially.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ember_tests::persist::{dataset, fill, info_field};
use ember_tests::{wait_until, TestCluster};

const T: Duration = Duration::from_secs(30);

fn restart(c: &mut TestCluster, env: &[(&str, &str)]) -> redis::Connection {
    c.nodes[0].start_with_env(env);
    c.wait_all_info("cluster_state", "ok", T);
    c.conn(0).unwrap()
}

/// What one writer had acknowledged, and when.
#[derive(Default, Clone)]
struct Acked {
    /// Its counter's value after each acknowledged INCR, with the time.
    incr: Vec<(i64, Instant)>,
    /// Keys set (`u{w}:{i}` = i), with the time.
    set: Vec<(u64, Instant)>,
    /// The list's length after each acknowledged RPUSH.
    pushed: Vec<(i64, Instant)>,
}

/// Writers (INCR a counter, SET a unique key, RPUSH to a list, round robin) until
/// the node dies; what each had acknowledged.
fn write_until_killed(
    c: &mut TestCluster,
    writers: usize,
    run_for: Duration,
) -> (Vec<Acked>, Instant) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<Mutex<Acked>>> = (0..writers).map(|_| Arc::default()).collect();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let mut con = c.conn(0).unwrap();
            let acked = acked[w].clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = match i % 3 {
                        0 => redis::cmd("INCR")
                            .arg(format!("c{w}"))
                            .query::<i64>(&mut con)
                            .map(|v| acked.lock().unwrap().incr.push((v, Instant::now()))),
                        1 => redis::cmd("SET")
                            .arg(format!("u{w}:{i}"))
                            .arg(i)
                            .query::<()>(&mut con)
                            .map(|_| acked.lock().unwrap().set.push((i, Instant::now()))),
                        _ => redis::cmd("RPUSH")
                            .arg(format!("l{w}"))
                            .arg(i)
                            .query::<i64>(&mut con)
                            .map(|n| acked.lock().unwrap().pushed.push((n, Instant::now()))),
                    };
                    if r.is_err() {
                        return; // the node is gone
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(run_for);
    c.nodes[0].kill();
    let killed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let acked = acked.iter().map(|a| a.lock().unwrap().clone()).collect();
    (acked, killed)
}

/// Acknowledged writes missing from the node behind `con`, each with how long before
/// the kill it was acknowledged.
fn missing(con: &mut redis::Connection, acked: &[Acked], killed: Instant) -> Vec<Duration> {
    let mut lost = Vec::new();
    for (w, a) in acked.iter().enumerate() {
        let counter: Option<i64> = redis::cmd("GET").arg(format!("c{w}")).query(con).unwrap();
        let counter = counter.unwrap_or(0);
        lost.extend(
            a.incr
                .iter()
                .filter(|(v, _)| *v > counter)
                .map(|(_, t)| killed - *t),
        );
        let len: i64 = redis::cmd("LLEN").arg(format!("l{w}")).query(con).unwrap();
        lost.extend(
            a.pushed
                .iter()
                .filter(|(n, _)| *n > len)
                .map(|(_, t)| killed - *t),
        );
        for (i, t) in &a.set {
            let v: Option<u64> = redis::cmd("GET")
                .arg(format!("u{w}:{i}"))
                .query(con)
                .unwrap();
            if v != Some(*i) {
                lost.push(killed - *t);
            }
        }
        // What is there is what was written, in order: no gap, nothing twice.
        let list: Vec<u64> = redis::cmd("LRANGE")
            .arg(format!("l{w}"))
            .arg(0)
            .arg(-1)
            .query(con)
            .unwrap();
        assert!(
            list.iter().all(|v| v % 3 == 2) && list.windows(2).all(|p| p[1] == p[0] + 3),
            "writer {w}'s list is not its pushes in order: {list:?}"
        );
    }
    lost
}

fn total(acked: &[Acked]) -> usize {
    acked
        .iter()
        .map(|a| a.incr.len() + a.set.len() + a.pushed.len())
        .sum()
}

#[test]
fn with_appendfsync_always_every_acknowledged_write_survives_kill_9() {
    let mut c = TestCluster::single_node(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (acked, killed) = write_until_killed(&mut c, 4, Duration::from_secs(3));
    let writes = total(&acked);
    assert!(writes > 500, "only {writes} writes in 3 s");
    let mut con = restart(&mut c, &[]);
    let lost = missing(&mut con, &acked, killed);
    println!(
        "appendfsync always: {writes} acknowledged writes, {} lost",
        lost.len()
    );
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
}

#[test]
fn with_appendfsync_everysec_at_most_about_a_second_is_lost() {
    let mut c = TestCluster::single_node(&["--appendonly", "yes"]);
    let (acked, killed) = write_until_killed(&mut c, 4, Duration::from_secs(3));
    let writes = total(&acked);
    let mut con = restart(&mut c, &[]);
    let lost = missing(&mut con, &acked, killed);
    let oldest = lost.iter().max().copied().unwrap_or_default();
    println!(
        "appendfsync everysec: {writes} acknowledged writes, {} lost, the oldest acknowledged {} ms before the kill",
        lost.len(),
        oldest.as_millis()
    );
    // One second between syncs, plus a sync's own time on a loaded machine.
    assert!(
        oldest < Duration::from_millis(2500),
        "a write acknowledged {} ms before the kill was lost",
        oldest.as_millis()
    );
    assert!(lost.len() < writes, "everything was lost");
}

#[test]
fn a_rewrite_under_writes_keeps_every_key_shrinks_the_file_and_starts_on_its_own() {
    let mut c = TestCluster::single_node(&["--appendonly", "yes"]);
    let mut con = c.conn(0).unwrap();
    assert_eq!(info_field(&mut con, "persistence", "aof_enabled"), "1");
    wait_until("the first rewrite made the file", T, || {
        Ok(info_field(&mut con, "persistence", "aof_rewrites") == "1")
    })
    .unwrap();
    fill(&mut con, 7, 3_000);
    // One key overwritten many times: the file grows, a rewrite keeps one copy.
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg("hot")
            .arg(format!("{i:0>100}"))
            .ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let size = |con: &mut redis::Connection| -> u64 {
        info_field(con, "persistence", "aof_current_size")
            .parse()
            .unwrap()
    };
    let grown = size(&mut con);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut w = c.conn(0).unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = redis::cmd("SET")
                    .arg(format!("w:{n}"))
                    .arg(n)
                    .query(&mut w)
                    .unwrap();
                let _: () = redis::cmd("SADD")
                    .arg("big7")
                    .arg(format!("x{n}"))
                    .query(&mut w)
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    assert_eq!(r, "Background append only file rewriting started");
    wait_until("the rewrite ended", T, || {
        Ok(info_field(&mut con, "persistence", "aof_rewrites") == "2"
            && info_field(&mut con, "persistence", "aof_rewrite_in_progress") == "0")
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    assert_eq!(
        info_field(&mut con, "persistence", "aof_last_bgrewrite_status"),
        "ok"
    );
    let shrunk = size(&mut con);
    assert!(
        shrunk < grown,
        "the rewrite did not shrink the file ({grown} -> {shrunk} bytes)"
    );
    let before = dataset(&mut con);
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut con);
    assert!(
        c.nodes[0].wait_exit(T).is_some(),
        "SHUTDOWN did not stop the node"
    );
    let mut con = restart(&mut c, &[]);
    let after = dataset(&mut con);
    assert_eq!(after.len(), before.len());
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} differs after the restart");
    }
    // auto-aof-rewrite: past min-size and twice the size after the last rewrite.
    let rewrites: u64 = info_field(&mut con, "persistence", "aof_rewrites")
        .parse()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&[
            "SET",
            "auto-aof-rewrite-min-size",
            "1mb",
            "auto-aof-rewrite-percentage",
            "100",
        ])
        .query(&mut con)
        .unwrap();
    let mut i = 0;
    wait_until("an automatic rewrite", T, || {
        let mut pipe = redis::pipe();
        for _ in 0..2_000 {
            pipe.cmd("SET")
                .arg("hot")
                .arg(format!("{i:0>200}"))
                .ignore();
            i += 1;
        }
        let _: () = pipe.query(&mut con)?;
        let now: u64 = info_field(&mut con, "persistence", "aof_rewrites")
            .parse()
            .unwrap();
        Ok(now > rewrites)
    })
    .unwrap();
}

#[test]
fn a_torn_tail_is_cut_or_refused_and_corruption_stops_the_node_with_its_offset() {
    let mut c = TestCluster::single_node(&["--appendonly", "yes"]);
    let mut con = c.conn(0).unwrap();
    fill(&mut con, 8, 500);
    let before = dataset(&mut con);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    assert!(
        c.nodes[0].wait_exit(T).is_some(),
        "SHUTDOWN did not stop the node"
    );
    let file = c.specs[0].data_dir.join("appendonly.ember");
    let good = std::fs::read(&file).unwrap();
    // A record that a crash cut short: its header says 1000 bytes, 10 follow.
    let mut torn = good.clone();
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&[7; 14]);

    std::fs::write(&file, &torn).unwrap();
    c.nodes[0].start_with_env(&[("EMBER_AOF_LOAD_TRUNCATED", "no")]);
    let status = c.nodes[0]
        .wait_exit(T)
        .expect("the node started on a torn file");
    assert!(!status.success());
    let log = c.nodes[0].log_tail(20);
    for word in [
        "appendonly.ember",
        "truncated",
        &format!("byte {}", good.len()),
    ] {
        assert!(log.contains(word), "no {word:?} in: {log}");
    }

    // aof-load-truncated yes (the default): loaded up to the torn record, cut there.
    let mut con = restart(&mut c, &[]);
    assert_eq!(dataset(&mut con), before);
    assert_eq!(std::fs::read(&file).unwrap().len(), good.len());
    let log = c.nodes[0].log_tail(400);
    assert!(log.contains("incomplete record"), "{log}");
    c.nodes[0].kill();

    // A byte flipped inside an early record: refused whatever the setting.
    let mut bad = good.clone();
    bad[40] ^= 0x20;
    std::fs::write(&file, &bad).unwrap();
    c.nodes[0].start();
    let status = c.nodes[0]
        .wait_exit(T)
        .expect("the node started on a corrupt file");
    assert!(!status.success());
    let log = c.nodes[0].log_tail(20);
    for word in ["appendonly.ember", "corrupt at byte"] {
        assert!(log.contains(word), "no {word:?} in: {log}");
    }
    std::fs::write(&file, &good).unwrap();
    let mut con = restart(&mut c, &[]);
    assert_eq!(dataset(&mut con), before);
}

#[test]
fn config_set_appendonly_yes_writes_what_the_node_holds_and_always_is_durable() {
    let mut c = TestCluster::single_node(&[]);
    let mut con = c.conn(0).unwrap();
    assert_eq!(info_field(&mut con, "persistence", "aof_enabled"), "0");
    let r = redis::cmd("BGREWRITEAOF").query::<String>(&mut con);
    assert!(r.unwrap_err().to_string().contains("appendonly yes"));
    fill(&mut con, 9, 1_000);
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "appendonly", "yes", "appendfsync", "always"])
        .query(&mut con)
        .unwrap();
    let got: BTreeMap<String, String> = redis::cmd("CONFIG")
        .arg(&["GET", "append*"])
        .query(&mut con)
        .unwrap();
    assert_eq!(got["appendonly"], "yes");
    assert_eq!(got["appendfsync"], "always");
    assert_eq!(got["appendfilename"], "appendonly.ember");
    for (v, err) in [
        ("maybe", "'yes' or 'no'"),
        ("sometimes", "everysec, always, no"),
    ] {
        let name = if v == "maybe" {
            "appendonly"
        } else {
            "appendfsync"
        };
        let e = redis::cmd("CONFIG")
            .arg(&["SET", name, v])
            .query::<()>(&mut con)
            .unwrap_err();
        assert!(e.to_string().contains(err), "{e}");
    }
    wait_until("the file was made", T, || {
        Ok(info_field(&mut con, "persistence", "aof_rewrites") == "1")
    })
    .unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("RPUSH")
            .arg("after")
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let before = dataset(&mut con);
    c.nodes[0].kill();
    let mut con = restart(&mut c, &[("EMBER_APPENDONLY", "yes")]);
    assert_eq!(dataset(&mut con), before);
}

/// `ROLE`'s first word for node `i` (`master`, `slave`), as `INFO replication` says it.
fn role(c: &TestCluster, i: usize) -> anyhow::Result<String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut c.conn(i)?)?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("role:"))
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// A primary and its replica, both writing the file with `appendfsync always`, formed
/// and serving: the cluster, the primary's index and the replica's.
fn shard_with_files() -> (TestCluster, usize, usize) {
    let options = ember_tests::NodeOptions {
        args: ["--appendonly", "yes", "--appendfsync", "always"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let c = TestCluster::start_with(2, Duration::from_secs(5), options);
    c.ctl_ok(&["bootstrap", "--replicas", "1", "n1", "n2"]);
    c.wait_all_info("cluster_state", "ok", T);
    let primary = match role(&c, 0).unwrap().as_str() {
        "master" => 0,
        _ => 1,
    };
    (c, primary, 1 - primary)
}

/// A replica with the file, killed while its primary takes writes, comes back with its
/// data and position and resumes from the primary's backlog (no second full sync).
#[test]
fn a_replica_restarted_from_its_file_resumes_partially() {
    let (mut c, primary, replica) = shard_with_files();
    let mut p = c.conn(primary).unwrap();
    let write = |p: &mut redis::Connection, from: usize, n: usize| {
        for i in from..from + n {
            let _: () = redis::cmd("SET")
                .arg(format!("r{i}"))
                .arg(i)
                .query(p)
                .unwrap();
        }
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(p).unwrap();
        acked
    };
    assert_eq!(write(&mut p, 0, 500), 1);
    let stats = |p: &mut redis::Connection| {
        (
            info_field(p, "stats", "sync_full"),
            info_field(p, "stats", "sync_partial_ok"),
        )
    };
    let (full, partial) = stats(&mut p);
    c.nodes[replica].kill();
    write(&mut p, 500, 300);
    c.nodes[replica].start();
    wait_until("the replica caught up", T, || {
        // Until its topology arrives, the restarted node reports no link at all.
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut c.conn(replica)?)?;
        let up = info.contains("master_link_status:up");
        let at = format!(
            "slave_repl_offset:{}\r\n",
            info_field(&mut p, "replication", "master_repl_offset")
        );
        Ok(up && info.contains(&at))
    })
    .unwrap();
    let (full_after, partial_after) = stats(&mut p);
    assert_eq!(full_after, full, "the restarted replica synced in full");
    assert_eq!(
        partial_after.parse::<u64>().unwrap(),
        partial.parse::<u64>().unwrap() + 1
    );
    let mut r = c.conn(replica).unwrap();
    assert_eq!(
        ember_tests::dataset(&mut r),
        ember_tests::dataset(&mut c.conn(primary).unwrap())
    );
}

/// A primary killed and restarted at once with its append-only file (`always`) comes
/// back with data as fresh as its replica's: it keeps its shard (no failover), and the
/// replica resumes from it instead of syncing in full. (Restarted empty, the replica
/// would take over: `replication.rs`'s restart-empty test.)
#[test]
fn a_primary_restarted_with_fresh_data_keeps_its_shard() {
    let (mut c, primary, replica) = shard_with_files();
    let mut p = c.conn(primary).unwrap();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("f{i}"))
            .arg(i)
            .query(&mut p)
            .unwrap();
    }
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    c.nodes[primary].kill();
    c.nodes[primary].start();
    c.wait("the restarted primary serves again", T, |c| {
        let mut con = c.conn(primary)?;
        let cluster: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con)?;
        let repl: String = redis::cmd("INFO").arg("replication").query(&mut con)?;
        Ok(cluster.contains("cluster_state:ok")
            && repl.contains("connected_slaves:1")
            && repl.contains("state=online"))
    });
    assert_eq!(
        role(&c, primary).unwrap(),
        "master",
        "the shard was handed over"
    );
    assert_eq!(role(&c, replica).unwrap(), "slave");
    let mut p = c.conn(primary).unwrap();
    assert_eq!(
        info_field(&mut p, "stats", "sync_full"),
        "0",
        "the replica synced in full"
    );
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok"), "1");
    let v: i64 = redis::cmd("GET").arg("f299").query(&mut p).unwrap();
    assert_eq!(v, 299);
    let _: () = redis::cmd("SET").arg("after").arg(1).query(&mut p).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
    assert_eq!(acked, 1);
}
