//! End-to-end cluster lifecycle: real control plane and data nodes, driven by emberctl
//! and the `redis` crate's cluster client (issue scenarios 1-6).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use ember_tests::TestCluster;
use redis::Commands;

const T: Duration = Duration::from_secs(20);

/// `CLUSTER NODES` of node `i`, parsed into (id, addr, flags, config epoch, slots text).
fn cluster_nodes(c: &TestCluster, i: usize) -> anyhow::Result<Vec<NodeLine>> {
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c.conn(i)?)?;
    assert!(text.ends_with('\n'), "CLUSTER NODES lines end in \\n");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() < 8 {
                bail!("short CLUSTER NODES line: {l}");
            }
            Ok(NodeLine {
                id: f[0].into(),
                addr: f[1].split('@').next().unwrap().into(),
                flags: f[2].split(',').map(String::from).collect(),
                epoch: f[6].parse()?,
                slots: f[8..].join(" "),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
struct NodeLine {
    id: String,
    addr: String,
    flags: BTreeSet<String>,
    epoch: u64,
    slots: String,
}

fn myself(c: &TestCluster, i: usize) -> NodeLine {
    cluster_nodes(c, i)
        .unwrap()
        .into_iter()
        .find(|n| n.flags.contains("myself"))
        .expect("a myself line")
}

fn cluster_slots(c: &TestCluster, i: usize) -> redis::Value {
    redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut c.conn(i).unwrap())
        .unwrap()
}

fn write_and_read(c: &TestCluster, n: usize, prefix: &str) {
    let mut conn = c.cluster_client().get_connection().unwrap();
    for k in 0..n {
        let _: () = conn.set(format!("{prefix}:{k}"), k).unwrap();
    }
    for k in 0..n {
        let v: usize = conn.get(format!("{prefix}:{k}")).unwrap();
        assert_eq!(v, k);
    }
}

#[test]
fn bootstrap_three_nodes() {
    let c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let infos: Vec<HashMap<String, String>> = (0..3).map(|i| c.cluster_info(i).unwrap()).collect();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info["cluster_slots_assigned"], "16384");
        assert_eq!(info["cluster_slots_ok"], "16384");
        assert_eq!(info["cluster_known_nodes"], "3");
        assert_eq!(info["cluster_size"], "3");
        assert_eq!(
            info["cluster_current_epoch"],
            infos[0]["cluster_current_epoch"]
        );
        assert_eq!(info["cluster_my_epoch"], myself(&c, i).epoch.to_string());
    }
    let epochs: BTreeSet<u64> = (0..3).map(|i| myself(&c, i).epoch).collect();
    assert_eq!(epochs.len(), 3, "config epochs are unique");
    // The node reports the settings it was started with.
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(&mut c.conn(1).unwrap())
        .unwrap();
    assert_eq!(config, ["port".to_string(), c.specs[1].port.to_string()]);
    let slots = cluster_slots(&c, 0);
    assert_eq!(cluster_slots(&c, 1), slots);
    assert_eq!(cluster_slots(&c, 2), slots);
    // Re-running bootstrap is a no-op success.
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    write_and_read(&c, 10_000, "k");
}

#[test]
fn bootstrap_one_then_join_two() {
    let c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait("n1 ok", T, |c| {
        Ok(c.cluster_info(0)?["cluster_state"] == "ok")
    });
    let info = c.cluster_info(0).unwrap();
    assert_eq!(info["cluster_slots_assigned"], "16384");
    assert_eq!(info["cluster_my_epoch"], info["cluster_current_epoch"]);
    assert_eq!(myself(&c, 0).slots, "0-16383");
    c.ctl_ok(&["join", "n2"]);
    c.ctl_ok(&["join", "n3"]);
    c.wait_all_info("cluster_known_nodes", "3", T);
    c.wait_all_info("cluster_state", "ok", T);
    for i in 0..3 {
        let lines = cluster_nodes(&c, i).unwrap();
        assert_eq!(lines.len(), 3, "exactly one line per node");
        let n1 = lines.iter().find(|l| l.addr == c.specs[0].addr()).unwrap();
        assert_eq!(n1.slots, "0-16383", "the first node still owns every slot");
    }
    write_and_read(&c, 1000, "j");
}

/// A node joined with `--replica-of` tells Redis clients what it is (`ROLE`, `INFO
/// replication`), with its primary's address; the link is reported down until
/// replicas stream (issue 12). Its primary answers as a primary.
#[test]
fn a_replica_reports_its_role_and_primary() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.ctl_ok(&["join", "n2", "--replica-of", "n1"]);
    let port = i64::from(c.specs[0].port);
    c.wait("n2 reports itself a connected replica of n1", T, |c| {
        let role: redis::Value = redis::cmd("ROLE").query(&mut c.conn(1)?)?;
        Ok(role
            == redis::Value::Array(vec![
                redis::Value::BulkString(b"slave".to_vec()),
                redis::Value::BulkString(b"127.0.0.1".to_vec()),
                redis::Value::Int(port),
                redis::Value::BulkString(b"connected".to_vec()),
                redis::Value::Int(0),
            ]))
    });
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut c.conn(1).unwrap())
        .unwrap();
    for line in [
        "role:slave".to_string(),
        "master_host:127.0.0.1".into(),
        format!("master_port:{port}"),
        "master_link_status:up".into(),
    ] {
        assert!(
            info.lines().any(|l| l == line),
            "{line} missing in:\n{info}"
        );
    }
    let (role, offset): (String, i64) = {
        let v: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c.conn(0).unwrap()).unwrap();
        (
            redis::from_redis_value(v[0].clone()).unwrap(),
            redis::from_redis_value(v[1].clone()).unwrap(),
        )
    };
    assert_eq!((role.as_str(), offset), ("master", 0));
}

#[test]
fn control_plane_down_clients_unaffected() {
    let mut c = TestCluster::start(3, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let version = c.ctl_json(&["status"]).unwrap()["version"]
        .as_u64()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (ops, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = c.cluster_client();
    let worker = {
        let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
        std::thread::spawn(move || {
            let mut conn = client.get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r: redis::RedisResult<()> = conn.set(format!("cp-down:{}", i % 5000), i);
                match r {
                    Ok(()) => ops.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("client error: {e}");
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    c.cp.kill();
    // Serve through longer than the node timeout: nothing may notice the control plane is gone.
    let before = ops.load(Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(3);
    c.wait(
        "clients progress while the control plane is down",
        Duration::from_secs(10),
        |_| Ok(Instant::now() > until && ops.load(Ordering::Relaxed) > before + 100),
    );
    c.wait_all_info("cluster_state", "ok", T);
    c.cp.start();
    c.wait("nodes resync", T, |c| {
        let status = c.ctl_json(&["nodes"])?;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        Ok(nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["connected"] == true && n["applied_version"] == version))
    });
    let after = c.ctl_json(&["status"]).unwrap()["version"]
        .as_u64()
        .unwrap();
    assert_eq!(
        after, version,
        "no spurious change after the control plane restarted"
    );
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert_eq!(errors.load(Ordering::Relaxed), 0, "clients saw errors");
}

/// A control plane stopped (SIGSTOP: a VM pause, a long GC-like stall) for longer than the
/// node timeout must not mark the nodes failed when it wakes: it did not hear them because
/// it was not listening, not because they were gone.
#[test]
fn control_plane_paused_longer_than_node_timeout_fails_nobody() {
    let timeout = Duration::from_secs(1);
    let c = TestCluster::start(3, timeout);
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let version = c.ctl_json(&["status"]).unwrap()["version"]
        .as_u64()
        .unwrap();
    c.cp.pause();
    let until = Instant::now() + 3 * timeout;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    c.cp.resume();
    // Watch for two node timeouts after the wake-up: every node stays healthy and the
    // control plane commits nothing.
    let watch_until = Instant::now() + 2 * timeout;
    while Instant::now() < watch_until {
        let Ok(nodes) = c.ctl_json(&["nodes"]) else {
            continue;
        };
        for n in nodes["nodes"].as_array().unwrap() {
            assert_eq!(n["health"], "ok", "marked failed after the pause: {n}");
        }
        let now = c.ctl_json(&["status"]).unwrap()["version"]
            .as_u64()
            .unwrap();
        assert_eq!(
            now, version,
            "the control plane changed the topology on waking"
        );
    }
    c.wait_all_info("cluster_state", "ok", T);
}

#[test]
fn node_killed_then_restarted() {
    let timeout = Duration::from_secs(2);
    let mut c = TestCluster::start(3, timeout);
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let before = myself(&c, 2);
    c.nodes[2].kill();
    let killed = Instant::now();
    c.wait_all_info("cluster_state", "fail", T);
    c.wait("n3 marked fail everywhere", T, |c| {
        for i in 0..2 {
            let lines = cluster_nodes(c, i)?;
            let n3 = lines
                .iter()
                .find(|l| l.id == before.id)
                .expect("n3 still listed");
            if !n3.flags.contains("fail") {
                return Ok(false);
            }
        }
        Ok(true)
    });
    let took = killed.elapsed();
    assert!(
        took < timeout + Duration::from_secs(1),
        "failure detection took {took:?}"
    );
    c.restart_node(2);
    c.wait_all_info("cluster_state", "ok", T);
    let after = myself(&c, 2);
    assert_eq!(after.id, before.id, "same identity after restart");
    assert_eq!(after.slots, before.slots, "same slots after restart");
}

#[test]
fn dead_node_forgotten_and_slots_reassigned() {
    let mut c = TestCluster::start(3, Duration::from_secs(1));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let dead = myself(&c, 2);
    c.nodes[2].kill();
    c.wait_all_info("cluster_state", "fail", T);
    let out = c.ctl_ok(&["forget", "--force", "n3"]);
    assert!(
        out.contains("5461"),
        "forget --force says how many slots were dropped: {out}"
    );
    c.wait_all_info("cluster_known_nodes", "2", T);
    c.ctl_ok(&["assign", "n1", &dead.slots]);
    c.wait_all_info("cluster_state", "ok", T);
    c.wait_all_info("cluster_slots_assigned", "16384", T);
    write_and_read(&c, 2000, "re");
}

#[test]
fn node_wiped_and_replaced_at_the_same_address() {
    let mut c = TestCluster::start(3, Duration::from_secs(1));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let old = myself(&c, 2);
    c.wipe_and_restart_node(2);
    // The new identity cannot take over a member's address: no duplicate entry appears.
    c.wait_all_info("cluster_state", "fail", T);
    for i in 0..2 {
        assert_eq!(cluster_nodes(&c, i).unwrap().len(), 3);
    }
    let status = c.ctl_json(&["nodes"]).unwrap();
    assert_eq!(status["pending"].as_array().map_or(0, Vec::len), 0);
    // The documented path: forget the old identity, join the new one, give it the slots.
    c.ctl_ok(&["forget", "--force", &old.id]);
    c.wait("new identity registers", T, |c| {
        Ok(c.ctl_json(&["nodes"])?["pending"]
            .as_array()
            .map_or(0, Vec::len)
            == 1)
    });
    c.ctl_ok(&["join", "n3"]);
    c.ctl_ok(&["assign", "n3", &old.slots]);
    c.wait_all_info("cluster_state", "ok", T);
    c.wait_all_info("cluster_known_nodes", "3", T);
    let new = myself(&c, 2);
    assert_ne!(new.id, old.id);
    assert_eq!(new.slots, old.slots);
    write_and_read(&c, 1000, "w");
}

/// gRPC health checks and reflection work (grpcurl, Kubernetes probes), and bad requests
/// through emberctl fail with a reason and change nothing.
#[test]
fn health_reflection_and_refusals() {
    let c = TestCluster::start(2, Duration::from_secs(5));
    let url = c.cp_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel.clone());
        let req = tonic_health::pb::HealthCheckRequest {
            service: "ember.v1.Admin".into(),
        };
        let status = health.check(req).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving);

        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let mut reflection = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = reflection
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in [
            "ember.v1.Admin",
            "ember.v1.Session",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} not listed: {names:?}"
            );
        }
    });

    let refused = |args: &[&str], needle: &str| {
        let out = c.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "emberctl {args:?}: {err}");
        assert!(err.contains(needle), "emberctl {args:?} said: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    };
    let version = || {
        c.ctl_json(&["status"]).unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    refused(&["join", "n2"], "not bootstrapped");
    c.ctl_ok(&["bootstrap", "n1"]);
    let before = version();
    refused(&["bootstrap", "n2"], "already bootstrapped");
    refused(&["join", "ghost"], "no node matches");
    refused(&["assign", "n2", "0-10"], "emberctl join");
    refused(&["forget", "n1"], "--force");
    assert_eq!(version(), before, "refused requests changed the state");
}
