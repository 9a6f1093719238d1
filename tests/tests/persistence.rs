//! Snapshots on real data nodes: `SAVE` then kill -9 and a restart bring back every key
//! of every type with its deadline; `BGSAVE` runs while clients write; `save` points
//! save on their own; `SHUTDOWN SAVE` saves on the way out; a corrupt or truncated
//! snapshot stops the node with the file and the offset.

use std::time::Duration;

use ember_tests::persist::{dataset, fill, info_field, slot_digests};
use ember_tests::{wait_until, TestCluster};

const T: Duration = Duration::from_secs(30);

fn restart(c: &mut TestCluster) -> redis::Connection {
    c.restart_node(0);
    c.wait_all_info("cluster_state", "ok", T);
    c.conn(0).unwrap()
}

#[test]
fn a_saved_dataset_survives_kill_9_whole_with_its_deadlines() {
    let mut c = TestCluster::single_node(&[]);
    let mut con = c.conn(0).unwrap();
    fill(&mut con, 1, 5_000);
    let before = dataset(&mut con);
    assert_eq!(before.len(), 5_001);
    let last: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    let now: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert!(now >= last);
    assert_eq!(
        info_field(&mut con, "persistence", "rdb_changes_since_last_save"),
        "0"
    );
    c.nodes[0].kill();
    let mut con = restart(&mut c);
    let after = dataset(&mut con);
    assert_eq!(after.len(), before.len());
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} differs after the restart");
    }
}

#[test]
fn bgsave_goes_on_while_clients_write_and_save_points_save_on_their_own() {
    let mut c = TestCluster::single_node(&["--save", "1 1"]);
    let mut con = c.conn(0).unwrap();
    fill(&mut con, 2, 2_000);
    // A save point: one change, one second.
    wait_until("the save point saved", T, || {
        Ok(info_field(&mut con, "persistence", "rdb_changes_since_last_save") == "0")
    })
    .unwrap();
    let r: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert!(r.starts_with("Background saving"), "{r}");
    // Writes go on meanwhile, and are answered.
    let mut writer = c.conn(0).unwrap();
    for i in 0..2_000 {
        let _: () = redis::cmd("SET")
            .arg(format!("w:{i}"))
            .arg(i)
            .query(&mut writer)
            .unwrap();
    }
    wait_until("the background save ended", T, || {
        Ok(
            info_field(&mut con, "persistence", "rdb_bgsave_in_progress") == "0"
                && info_field(&mut con, "persistence", "rdb_changes_since_last_save") == "0",
        )
    })
    .unwrap();
    assert_eq!(
        info_field(&mut con, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    let before = dataset(&mut con);
    // SHUTDOWN (save points set) saves on the way out.
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    assert!(
        c.nodes[0].wait_exit(T).is_some(),
        "SHUTDOWN did not stop the node"
    );
    let mut con = restart(&mut c);
    assert_eq!(dataset(&mut con), before);
}

#[test]
fn a_corrupt_or_truncated_snapshot_stops_the_node_with_the_offset() {
    let mut c = TestCluster::single_node(&[]);
    let mut con = c.conn(0).unwrap();
    fill(&mut con, 3, 1_000);
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut con);
    assert!(
        c.nodes[0].wait_exit(T).is_some(),
        "SHUTDOWN SAVE did not stop the node"
    );
    let file = c.specs[0].data_dir.join("dump.ember");
    let good = std::fs::read(&file).unwrap();
    for (what, bytes) in [
        ("corrupt", {
            // A byte of the first record's payload (after the 20-byte header, the
            // record's length and slot).
            let mut b = good.clone();
            b[30] ^= 0x40;
            b
        }),
        ("truncated", good[..good.len() - 100].to_vec()),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        c.nodes[0].start();
        let status = c.nodes[0]
            .wait_exit(T)
            .expect("the node started on a bad snapshot");
        assert!(!status.success(), "{what}: exit {status:?}");
        let log = c.nodes[0].log_tail(20);
        assert!(log.contains("dump.ember"), "{what}: {log}");
        assert!(log.contains(what), "{what}: {log}");
        assert!(log.contains("byte"), "{what}: {log}");
    }
    // The good file loads again.
    std::fs::write(&file, &good).unwrap();
    let mut con = restart(&mut c);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 1_001);
}

/// A snapshot loaded by a node that does not own its slots (here a copy of another
/// node's): its keys stay in the keyspace, invisible (`MOVED`), and `emberctl nodes`
/// reports them as orphaned; the owner goes on serving its own; `CLUSTER DROP-ORPHANED`
/// deletes them.
#[test]
fn keys_of_slots_the_node_does_not_hold_are_kept_invisible_and_reported() {
    let mut c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.wait_all_info("cluster_state", "ok", T);
    let keys: Vec<String> = (0..)
        .map(|i| format!("o:{i}"))
        .filter(|k| c.key_owner(k) == 0)
        .take(100)
        .collect();
    let mut n1 = c.conn(0).unwrap();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg("v").query(&mut n1).unwrap();
    }
    let _: () = redis::cmd("SAVE").query(&mut n1).unwrap();
    c.nodes[1].kill();
    std::fs::copy(
        c.specs[0].data_dir.join("dump.ember"),
        c.specs[1].data_dir.join("dump.ember"),
    )
    .unwrap();
    c.restart_node(1);
    c.wait_all_info("cluster_state", "ok", T);
    wait_until("n2 reports its orphaned keys", T, || {
        let nodes = c.ctl_json(&["nodes"])?;
        let n2 = nodes["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == "n2"))
            .cloned()
            .unwrap_or_default();
        Ok(n2["orphaned_keys"] == 100)
    })
    .unwrap();
    let mut n2 = c.conn(1).unwrap();
    let r = redis::cmd("GET")
        .arg(&keys[0])
        .query::<Option<String>>(&mut n2);
    assert_eq!(r.unwrap_err().code(), Some("MOVED"));
    let v: String = redis::cmd("GET").arg(&keys[0]).query(&mut n1).unwrap();
    assert_eq!(v, "v");
    let table = c.ctl_ok(&["nodes"]);
    assert!(table.contains("(+100 orphaned)"), "{table}");
    // The operator drops them: gone from n2 only, and no longer reported.
    let dropped: i64 = redis::cmd("CLUSTER")
        .arg("DROP-ORPHANED")
        .query(&mut n2)
        .unwrap();
    assert_eq!(dropped, 100);
    let again: i64 = redis::cmd("CLUSTER")
        .arg("DROP-ORPHANED")
        .query(&mut n2)
        .unwrap();
    assert_eq!(again, 0);
    wait_until("n2 no longer reports orphaned keys", T, || {
        Ok(!c.ctl_ok(&["nodes"]).contains("orphaned"))
    })
    .unwrap();
    let v: String = redis::cmd("GET").arg(&keys[0]).query(&mut n1).unwrap();
    assert_eq!(v, "v");
    let n: i64 = redis::cmd("DBSIZE").query(&mut n1).unwrap();
    assert_eq!(n, 100);
}

/// A million keys of every type, a third with a deadline: after kill -9 and a restart
/// from the snapshot, and again from the append-only file, every slot's digest (keys,
/// content, absolute deadlines) is what it was.
#[test]
fn a_million_keys_come_back_identical_slot_by_slot_from_either_file() {
    let mut c = TestCluster::single_node(&["--appendonly", "yes"]);
    let mut con = c.conn(0).unwrap();
    let began = std::time::Instant::now();
    fill(&mut con, 12, 1_000_000);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(keys, 1_000_001);
    let before = slot_digests(&mut con);
    let whole: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut con).unwrap();
    assert_ne!(whole, "0".repeat(40));
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    eprintln!("1M keys written and saved in {:?}", began.elapsed());
    c.nodes[0].kill();
    let dir = c.specs[0].data_dir.clone();
    let aof = dir.join("appendonly.ember");
    let kept = dir.join("appendonly.ember.kept");
    std::fs::rename(&aof, &kept).unwrap();

    // From the snapshot (no append-only file to load: the node writes a new one).
    let mut con = restart(&mut c);
    let changed = |after: &[String]| -> Vec<usize> {
        (0..16384).filter(|&s| before[s] != after[s]).collect()
    };
    assert_eq!(
        changed(&slot_digests(&mut con)),
        Vec::<usize>::new(),
        "from the snapshot"
    );
    c.nodes[0].kill();

    // From the append-only file written while the keys were.
    std::fs::rename(&kept, &aof).unwrap();
    let mut con = restart(&mut c);
    assert_eq!(
        changed(&slot_digests(&mut con)),
        Vec::<usize>::new(),
        "from the append-only file"
    );
    let again: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut con).unwrap();
    assert_eq!(again, whole);
    eprintln!("done in {:?}", began.elapsed());
}
