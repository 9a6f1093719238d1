//! Recovery of the control plane's state, end to end: a control plane restarted from an
//! older copy of its state must not make nodes drop keys (it freezes until
//! `emberctl import-state`), a data dir that lost its state is an error, a new control
//! plane tells nodes of an unknown cluster the truth and can be restored from a backup,
//! and a full disk is reported as such and heals by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use ember_tests::TestCluster;
use redis::Commands;

const T: Duration = Duration::from_secs(30);
const KEYS: usize = 3000;

fn key(i: usize) -> String {
    format!("key:{i}")
}

/// Writes every key through the cluster client.
fn load(c: &TestCluster) {
    let mut conn = c.cluster_client().get_connection().unwrap();
    for i in 0..KEYS {
        let _: () = conn.set(key(i), format!("v{i}")).unwrap();
    }
}

/// How many keys are missing or wrong, read through the cluster client.
fn missing(c: &TestCluster) -> anyhow::Result<usize> {
    let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for i in 0..KEYS {
        by_slot
            .entry(ember_core::key_slot(key(i).as_bytes()))
            .or_default()
            .push(i);
    }
    let mut conn = c.cluster_client().get_connection()?;
    let mut bad = 0;
    for ids in by_slot.values() {
        let keys: Vec<String> = ids.iter().map(|i| key(*i)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut conn)?;
        bad += ids
            .iter()
            .zip(values)
            .filter(|(i, v)| v.as_deref() != Some(format!("v{i}").as_str()))
            .count();
    }
    Ok(bad)
}

/// Keys stored on node `i` (DBSIZE counts only the slots it serves).
fn dbsize(c: &TestCluster, i: usize) -> i64 {
    redis::cmd("DBSIZE").query(&mut c.conn(i).unwrap()).unwrap()
}

/// Every member has applied the control plane's latest version.
fn converged(c: &TestCluster) -> anyhow::Result<bool> {
    let nodes = c.ctl_json(&["nodes"])?;
    let version = nodes["version"].as_u64().unwrap();
    Ok(nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["applied_version"].as_u64() == Some(version)))
}

#[test]
fn a_control_plane_restored_from_an_old_copy_freezes_and_import_state_loses_no_key() {
    let mut c = TestCluster::start(2, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.wait_all_info("cluster_state", "ok", T);
    load(&c);
    let backup = std::fs::read(c.cp_dir().join("state.json")).unwrap();

    // Move slots 0-999 from n1 to n2 by live migration: the backup predates it.
    c.ctl_ok(&["assign", "n2", "0-999"]);
    c.wait("every node applied the move", T, converged);
    assert_eq!(c.slot_owner(0), "n2");
    let before = c.ctl_json(&["status"]).unwrap();
    let (version, epoch) = (
        before["version"].as_u64().unwrap(),
        before["current_epoch"].as_u64().unwrap(),
    );
    let n2_keys = dbsize(&c, 1);
    assert_eq!(missing(&c).unwrap(), 0);

    // Restore the old copy behind the control plane's back.
    c.cp.kill();
    std::fs::write(c.cp_dir().join("state.json"), &backup).unwrap();
    c.cp.start();
    c.wait("the control plane raises its alarm", T, |c| {
        let status = c.ctl_json(&["status"])?;
        Ok(status["alarm"]
            .as_str()
            .is_some_and(|a| a.contains("import-state")))
    });
    let text = c.ctl_ok(&["status"]);
    assert!(text.contains("ALARM"), "{text}");
    // It publishes nothing: changes are refused with a reason a person can act on.
    for value in ["no", "yes", "no"] {
        let out = c.ctl(&["config", "set", "require-full-coverage", value]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("emberctl import-state"), "{err}");
    }
    // The nodes keep serving their applied topology, every key in place.
    assert_eq!(missing(&c).unwrap(), 0);
    assert_eq!(dbsize(&c, 1), n2_keys);

    // The explicit recovery: slots follow the highest config epoch the nodes report.
    let out = c.ctl_ok(&["import-state"]);
    assert!(out.contains("restored"), "{out}");
    c.wait("every node applied the restored state", T, converged);
    c.wait_all_info("cluster_state", "ok", T);
    let after = c.ctl_json(&["status"]).unwrap();
    assert!(after["alarm"].is_null(), "{after}");
    assert!(after["version"].as_u64().unwrap() > version);
    assert!(after["current_epoch"].as_u64().unwrap() > epoch);
    assert_eq!(c.slot_owner(0), "n2");
    assert_eq!(c.slot_owner(999), "n2");
    assert_eq!(c.slot_owner(1000), "n1");
    assert_eq!(dbsize(&c, 1), n2_keys);
    assert_eq!(missing(&c).unwrap(), 0);

    // And it works normally again.
    c.ctl_ok(&["config", "set", "require-full-coverage", "no"]);
    c.wait("nodes applied the change", T, converged);
    assert_eq!(missing(&c).unwrap(), 0);
}

#[test]
fn a_lost_state_is_an_error_and_a_backup_restores_the_cluster() {
    let mut c = TestCluster::start(2, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1", "n2"]);
    c.wait_all_info("cluster_state", "ok", T);
    load(&c);
    let backup = c.dir.path().join("backup.json");
    c.ctl_ok(&["export-state", "--output", backup.to_str().unwrap()]);
    let cluster_id = c.ctl_json(&["status"]).unwrap()["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();

    // state.json deleted: the control plane refuses to start as a new cluster.
    c.cp.kill();
    std::fs::remove_file(c.cp_dir().join("state.json")).unwrap();
    c.cp.start();
    let status = c.cp.wait_exit(T).expect("the control plane exits");
    assert!(!status.success());
    let log = c.cp.log_tail(5);
    assert!(
        log.contains(&cluster_id) && log.contains("import-state"),
        "{log}"
    );

    // An empty data dir (say, a mistyped --data-dir) starts a new control plane, which
    // tells the nodes the truth; they keep serving and keep their data dirs.
    std::fs::remove_dir_all(c.cp_dir()).unwrap();
    c.cp.start();
    c.wait("the nodes show up as foreign", T, |c| {
        let status = c.ctl_json(&["status"])?;
        Ok(status["foreign"].as_array().is_some_and(|f| f.len() == 2))
    });
    let text = c.ctl_ok(&["status"]);
    assert!(
        text.contains("FOREIGN NODES") && text.contains(&cluster_id),
        "{text}"
    );
    let n1_log = c.nodes[0].log_tail(20);
    assert!(n1_log.contains("does not know"), "{n1_log}");
    assert_eq!(missing(&c).unwrap(), 0);

    // Restore the backup: the same cluster, every key in place.
    c.ctl_ok(&["import-state", backup.to_str().unwrap()]);
    c.wait("every node applied the restored state", T, |c| {
        let nodes = c.ctl_json(&["nodes"])?;
        if nodes["nodes"].as_array().map_or(0, Vec::len) != 2 {
            bail!("members: {}", nodes["nodes"]);
        }
        converged(c)
    });
    c.wait_all_info("cluster_state", "ok", T);
    assert_eq!(
        c.ctl_json(&["status"]).unwrap()["cluster_id"].as_str(),
        Some(cluster_id.as_str())
    );
    assert_eq!(missing(&c).unwrap(), 0);
}

/// Health as the standard gRPC health service reports it for the whole server.
fn health(c: &TestCluster) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(c.cp_url())?
            .connect()
            .await?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let reply = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok(reply.into_inner().status)
    })
}

#[test]
fn a_full_disk_is_reported_as_such_and_heals_when_space_returns() {
    const SERVING: i32 = 1;
    const NOT_SERVING: i32 = 2;
    let mut c = TestCluster::start(1, Duration::from_millis(500));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    assert_eq!(health(&c).unwrap(), SERVING);

    // Every write of the next state fails with ENOSPC, as on a full disk.
    let tmp = c.cp_dir().join("state.json.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let out = c.ctl(&["config", "set", "require-full-coverage", "no"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(health(&c).unwrap(), NOT_SERVING);
    let text = c.ctl_ok(&["status"]);
    assert!(
        text.contains("PERSISTENCE") && text.contains("No space left"),
        "{text}"
    );
    let version = c.ctl_json(&["status"]).unwrap()["version"]
        .as_u64()
        .unwrap();

    // A node dies meanwhile: its failure cannot be persisted, so it is not published.
    c.nodes[0].kill();
    std::thread::sleep(Duration::from_millis(1500)); // three node timeouts: a failure is due
    let status = c.ctl_json(&["status"]).unwrap();
    assert_eq!(
        status["version"].as_u64().unwrap(),
        version,
        "published unpersisted state"
    );

    // Space returns: the control plane notices by itself and catches up.
    std::fs::remove_file(&tmp).unwrap();
    c.wait("health is SERVING again", T, |c| Ok(health(c)? == SERVING));
    c.wait("the dead node is marked failed", T, |c| {
        let nodes = c.ctl_json(&["nodes"])?;
        Ok(nodes["nodes"][0]["health"].as_str() == Some("fail"))
    });
    assert!(c.ctl_json(&["status"]).unwrap()["persistence_error"].is_null());
    c.ctl_ok(&["config", "set", "require-full-coverage", "no"]);
}
