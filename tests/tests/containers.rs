//! Container tests: the cluster of `docker-compose.yml`, run as separate hosts.
//!
//! Run by `tests/docker/run.sh` (which builds the `ember:test` image from host-built
//! binaries); ignored by a plain `cargo test` because it needs that image and a Docker
//! engine. The scenarios share one compose project (with `docker-compose.node4.yml`,
//! whose node4 becomes a replica in scenario 5) and run in order.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ember_tests::{bin, wait_until};
use redis::Commands;

const PROJECT: &str = "embertest";
const NODE_TIMEOUT: Duration = Duration::from_secs(2);
const CP: &str = "http://127.0.0.1:7379";
const PORTS: [u16; 3] = [7001, 7002, 7003];
const T: Duration = Duration::from_secs(60);

struct Compose {
    program: Vec<String>,
    files: Vec<PathBuf>,
}

impl Compose {
    fn new() -> Self {
        let v2 = Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        let program = if v2 {
            vec!["docker".into(), "compose".into()]
        } else {
            vec!["docker-compose".into()]
        };
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let files = vec![
            root.join("docker-compose.yml"),
            root.join("docker-compose.node4.yml"),
        ];
        Self { program, files }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program[0])
            .args(&self.program[1..])
            .args(
                self.files
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("-f"), f.as_os_str()]),
            )
            .args(["-p", PROJECT])
            .args(args)
            .env("EMBER_IMAGE_TAG", "test")
            .env(
                "EMBER_NODE_TIMEOUT",
                format!("{}ms", NODE_TIMEOUT.as_millis()),
            )
            .output()
            .expect("run docker compose")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn container(&self, service: &str) -> String {
        self.ok(&["ps", "-q", service])
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.run(&["logs", "--tail", "30"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = self.run(&["down", "-v"]);
        let _ = Command::new("docker")
            .args(["network", "rm", CLIENTS])
            .output();
    }
}

/// A second network, for clients only: a node on it stays reachable from the host
/// while it is disconnected from the cluster's network.
const CLIENTS: &str = "embertest_clients";

/// `container`'s address on `network`.
fn ip_on(container: &str, network: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            container,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn replication(
    conn: &mut redis::Connection,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let info: String = redis::cmd("INFO").arg("replication").query(conn)?;
    Ok(info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ctl_json(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(bin("emberctl"))
        .args(["--control-plane", CP, "--json"])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "emberctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("emberctl JSON")
}

fn conn(port: u16) -> anyhow::Result<redis::Connection> {
    Ok(redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
        .get_connection_with_timeout(Duration::from_secs(1))?)
}

fn state_ok(port: u16) -> anyhow::Result<bool> {
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn(port)?)?;
    Ok(info.contains("cluster_state:ok"))
}

fn all_ok() -> anyhow::Result<bool> {
    for p in PORTS {
        if !state_ok(p)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn health(name: &str) -> anyhow::Result<String> {
    let nodes = ctl_json(&["nodes"])?;
    let node = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .context("node listed")?;
    Ok(node["health"].as_str().unwrap_or_default().to_string())
}

fn myid(port: u16) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut conn(port).unwrap())
        .unwrap()
}

fn cluster_client() -> redis::cluster::ClusterClient {
    redis::cluster::ClusterClient::builder(
        PORTS
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>(),
    )
    .connection_timeout(Duration::from_secs(2))
    .response_timeout(Duration::from_secs(5))
    .build()
    .unwrap()
}

/// The parts of the topology that must survive `down` / `up`.
/// The cluster's shards: each one's members and slots. Which member of a shard is its
/// primary may change across a stop (a primary stopped gracefully hands its shard to a
/// streaming replica), and epochs then move forward; the shards may not change.
fn topology_fingerprint() -> serde_json::Value {
    let c = ctl_json(&["nodes"]).unwrap();
    let nodes = c["nodes"].as_array().unwrap();
    let mut shards: Vec<(Vec<String>, String)> = nodes
        .iter()
        .filter(|n| n["role"] == "primary")
        .map(|p| {
            let mut members: Vec<String> = nodes
                .iter()
                .filter(|n| n["id"] == p["id"] || n["primary_id"] == p["id"])
                .map(|n| n["name"].as_str().unwrap_or_default().to_string())
                .collect();
            members.sort();
            (members, p["slots"].to_string())
        })
        .collect();
    shards.sort();
    serde_json::json!({"cluster_id": c["cluster_id"], "shards": shards})
}

#[test]
#[ignore = "needs Docker and the ember:test image: run tests/docker/run.sh"]
fn compose_cluster_as_separate_hosts() {
    let compose = Compose::new();
    let _ = compose.run(&["down", "-v"]);
    // Build (or find) emberctl now: the timed steps below must not include a cargo build.
    bin("emberctl");

    // 1. up: healthy within seconds; a cluster client on the host works.
    let started = Instant::now();
    compose.ok(&["up", "-d", "--no-build"]);
    wait_until("cluster_state:ok on every node", T, all_ok).unwrap();
    eprintln!("cluster ok {:?} after `up`", started.elapsed());
    let mut c = cluster_client().get_connection().unwrap();
    for k in 0..10_000 {
        let _: () = c.set(format!("key:{k}"), k).unwrap();
    }
    for k in 0..10_000 {
        assert_eq!(c.get::<_, usize>(format!("key:{k}")).unwrap(), k);
    }

    // 2. kill a node container: failed within the node timeout; back with the same id.
    let id = myid(7002);
    let node2 = compose.container("node2");
    let killed = Instant::now();
    docker(&["kill", &node2]);
    wait_until("node2 failed", T, || Ok(health("node2")? == "fail")).unwrap();
    let detected = killed.elapsed();
    assert!(
        detected < NODE_TIMEOUT + Duration::from_secs(2),
        "detection took {detected:?}"
    );
    compose.ok(&["start", "node2"]);
    wait_until("node2 healthy", T, || {
        Ok(health("node2")? == "ok" && all_ok()?)
    })
    .unwrap();
    assert_eq!(myid(7002), id, "same identity after restart");

    // 3. restart the control plane under client load: zero client errors.
    let stop = Arc::new(AtomicBool::new(false));
    let (ops, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
        std::thread::spawn(move || {
            let mut c = cluster_client().get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match c.set::<_, _, ()>(format!("load:{}", i % 1000), i) {
                    Ok(()) => ops.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("client error: {e}");
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    compose.ok(&["restart", "control-plane"]);
    wait_until("control plane back", T, || {
        Ok(ctl_json(&["status"])?["state"] == "ok")
    })
    .unwrap();
    let before = ops.load(Ordering::Relaxed);
    wait_until("more client progress", T, || {
        Ok(ops.load(Ordering::Relaxed) > before + 100)
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "clients saw errors while the control plane restarted"
    );

    // 4. partition a node from the control plane: failed; reconnect: healthy.
    let network = format!("{PROJECT}_default");
    let node3 = compose.container("node3");
    docker(&["network", "disconnect", &network, &node3]);
    wait_until("node3 failed", T, || Ok(health("node3")? == "fail")).unwrap();
    docker(&["network", "connect", "--alias", "node3", &network, &node3]);
    wait_until("node3 healthy", T, || {
        Ok(health("node3")? == "ok" && all_ok()?)
    })
    .unwrap();

    // 5. node4 becomes node3's replica; then node3 is cut off from the cluster's network
    //    (the control plane and node4), while a client still reaches it on a second
    //    network: it stops acknowledging writes within its write lease, node4 is
    //    promoted, and node3, reconnected, follows node4 with the same data.
    let out = Command::new(bin("emberctl"))
        .args([
            "--control-plane",
            CP,
            "join",
            "node4",
            "--replica-of",
            "node3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("node4 streams from node3", T, || {
        Ok(replication(&mut conn(7004)?)?
            .get("master_link_status")
            .map(String::as_str)
            == Some("up"))
    })
    .unwrap();
    let _ = Command::new("docker")
        .args(["network", "create", CLIENTS])
        .output();
    docker(&["network", "connect", CLIENTS, &node3]);
    let node3_addr = format!("redis://{}:7003/", ip_on(&node3, CLIENTS));
    let mut n3 = redis::Client::open(node3_addr.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    n3.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let keys: Vec<String> = (0..)
        .map(|i| format!("part:{i}"))
        .filter(|k| n3.get::<_, Option<String>>(k).is_ok())
        .take(50)
        .collect();
    let mut confirmed = std::collections::BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let _: () = n3.set(k, i).unwrap();
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut n3).unwrap();
        assert_eq!(acked, 1);
        confirmed.insert(k.clone(), i);
    }
    let cut = Instant::now();
    docker(&["network", "disconnect", &network, &node3]);
    let mut last_ack = cut;
    let mut n = 0u64;
    loop {
        n += 1;
        match n3.set::<_, _, ()>(&keys[n as usize % keys.len()], format!("late{n}")) {
            Ok(()) => last_ack = Instant::now(),
            Err(e) => {
                assert!(e.to_string().contains("write lease expired"), "{e}");
                break;
            }
        }
        assert!(cut.elapsed() < T, "node3 kept acknowledging writes");
    }
    // Half the node timeout, and at least three heartbeats (a fifth of it each).
    let lease = (NODE_TIMEOUT / 2).max(NODE_TIMEOUT * 3 / 5);
    eprintln!(
        "partitioned node3 acknowledged writes for {:?} (lease {lease:?})",
        last_ack - cut
    );
    assert!(last_ack - cut <= lease + Duration::from_millis(500));
    wait_until("node4 is promoted", T, || {
        Ok(replication(&mut conn(7004)?)?
            .get("role")
            .map(String::as_str)
            == Some("master"))
    })
    .unwrap();
    assert!(
        n3.set::<_, _, ()>(&keys[0], "after").is_err(),
        "the old primary acknowledged a write after the promotion"
    );
    let mut n4 = conn(7004).unwrap();
    for (k, v) in &confirmed {
        let got: Option<String> = n4.get(k).unwrap();
        assert!(got.is_some(), "{k}: confirmed {v}, lost");
    }
    docker(&["network", "connect", "--alias", "node3", &network, &node3]);
    wait_until("node3 follows node4", T, || {
        let r = replication(&mut n3)?;
        Ok(r.get("role").map(String::as_str) == Some("slave")
            && r.get("master_link_status").map(String::as_str) == Some("up")
            && all_ok()?)
    })
    .unwrap();
    let _: () = n4.set(&keys[0], "healed").unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut n4).unwrap();
    assert_eq!(acked, 1, "node3 replicates node4");
    redis::cmd("READONLY").query::<()>(&mut n3).unwrap();
    assert_eq!(n3.get::<_, String>(&keys[0]).unwrap(), "healed");

    // 6. down, up: the topology is unchanged.
    let before = topology_fingerprint();
    compose.ok(&["down"]);
    compose.ok(&["up", "-d", "--no-build"]);
    wait_until("cluster_state:ok after down/up", T, all_ok).unwrap();
    assert_eq!(
        topology_fingerprint(),
        before,
        "topology changed across down/up"
    );
}
