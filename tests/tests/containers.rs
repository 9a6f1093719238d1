//! Container tests: the cluster of `docker-compose.yml`, run as separate hosts.
//!
//! Run by `tests/docker/run.sh` (which builds the `ember:test` image from host-built
//! binaries); ignored by a plain `cargo test` because it needs that image and a Docker
//! engine. The five scenarios share one compose project and run in order.

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
    file: PathBuf,
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
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
        Self { program, file }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program[0])
            .args(&self.program[1..])
            .arg("-f")
            .arg(&self.file)
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
    }
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
fn topology_fingerprint() -> serde_json::Value {
    let c = ctl_json(&["nodes"]).unwrap();
    let nodes: Vec<serde_json::Value> = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| serde_json::json!([n["id"], n["name"], n["config_epoch"], n["slots"]]))
        .collect();
    serde_json::json!({"cluster_id": c["cluster_id"], "current_epoch": c["current_epoch"], "nodes": nodes})
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

    // 5. down, up: the topology is unchanged.
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
