//! Seeded random faults (kill -9 of a primary, a replica or the control plane; SIGSTOP
//! of a primary for longer than the node timeout; a cut link between a primary and its
//! replica) interleaved with a rebalance onto a new shard, with writers running. After
//! every fault the cluster must converge; at the end every node agrees, every key is on
//! exactly one shard (the one owning its slot), every key loaded before the faults is
//! there, and every replica holds exactly its primary's dataset.
//!
//! `EMBER_FAULT_SEED=N` replays one schedule (the seed is printed on every run).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_tests::proxy::Proxy;
use ember_tests::{dataset, TestCluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Commands;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const LOADED: usize = 2000;

/// A member as `emberctl nodes --json` shows it, with its process index.
struct Member {
    index: usize,
    primary: bool,
    slots: u64,
    primary_index: Option<usize>,
}

fn members(c: &TestCluster) -> anyhow::Result<Vec<Member>> {
    let nodes = c.ctl_json(&["nodes"])?;
    let by_id: BTreeMap<String, usize> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_string(), index_of(c, n)))
        .collect();
    Ok(nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| Member {
            index: index_of(c, n),
            primary: n["role"] == "primary",
            slots: n["slot_count"].as_u64().unwrap_or(0),
            primary_index: n["primary_id"].as_str().map(|p| by_id[p]),
        })
        .collect())
}

fn index_of(c: &TestCluster, n: &Value) -> usize {
    let addr = n["client_addr"].as_str().unwrap();
    c.specs.iter().position(|s| s.addr() == addr).unwrap()
}

/// Every member healthy and on the latest version, every node's `cluster_state:ok`,
/// and every replica's link up.
fn converged(c: &TestCluster) -> anyhow::Result<bool> {
    let nodes = c.ctl_json(&["nodes"])?;
    let version = nodes["version"].as_u64();
    let all = nodes["nodes"].as_array().unwrap();
    let settled = all.iter().all(|n| {
        n["health"] == "ok"
            && n["applied_version"].as_u64() == version
            && (n["role"] == "primary" || n["repl_link"] == "up")
    });
    if !settled
        || nodes["migrations"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    {
        return Ok(false);
    }
    for i in 0..c.specs.len() {
        if c.cluster_info(i)?.get("cluster_state").map(String::as_str) != Some("ok") {
            return Ok(false);
        }
    }
    Ok(true)
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillPrimary,
    KillReplica,
    KillControlPlane,
    StopPrimary,
    CutLink,
}

#[test]
fn seeded_faults_during_a_rebalance_leave_every_shard_whole_and_every_replica_equal() {
    let seed: u64 = std::env::var("EMBER_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fault schedule seed {seed} (replay with EMBER_FAULT_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let node_timeout = Duration::from_millis(1000);
    let mut c = TestCluster::start(0, node_timeout);
    // Every node's internal port behind a proxy: cutting it cuts its replication
    // stream (and the migrations pulling from it), not its session or its clients.
    let mut proxies = Vec::new();
    for _ in 0..6 {
        c.add_node_with(|port| {
            let p = Proxy::start(format!("127.0.0.1:{port}"));
            let a = p.addr();
            proxies.push(p);
            Some(a)
        });
    }
    c.wait("six nodes registered", T, |c| {
        Ok(c.ctl_json(&["pending"])?["pending"]
            .as_array()
            .map_or(0, Vec::len)
            == 6)
    });
    c.ctl_ok(&["bootstrap", "--replicas", "1", "n1", "n2", "n3", "n4"]);
    c.ctl_ok(&["join", "n5"]);
    c.ctl_ok(&["join", "n6", "--replica-of", "n5"]);
    c.wait("the cluster is up with every replica linked", T, converged);

    let client = c.cluster_client();
    let mut conn = client.get_connection().unwrap();
    for i in 0..LOADED {
        let _: () = conn.set(format!("load:{i}"), i).unwrap();
    }
    for m in members(&c)
        .unwrap()
        .iter()
        .filter(|m| m.primary && m.slots > 0)
    {
        let mut p = c.conn(m.index).unwrap();
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
        assert_eq!(acked, 1, "the load reached every replica");
    }

    // Writers and the rebalance run through all the faults.
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, write_errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (stop, writes, write_errors) = (stop.clone(), writes.clone(), write_errors.clone());
        let client = c.cluster_client();
        std::thread::spawn(move || {
            let mut conn = client.get_connection().unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match conn.set::<_, _, ()>(format!("w:{}", n % 500), n) {
                    Ok(()) => writes.fetch_add(1, Ordering::Relaxed),
                    Err(_) => write_errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let rebalanced = Arc::new(AtomicBool::new(false));
    let rebalancer = {
        let (stop, rebalanced) = (stop.clone(), rebalanced.clone());
        let ctl = c.ctl_command();
        std::thread::spawn(move || {
            let mut attempts = 0;
            while !stop.load(Ordering::Relaxed) && !rebalanced.load(Ordering::Relaxed) {
                attempts += 1;
                let out = ctl(&["rebalance"]);
                if out.status.success() {
                    rebalanced.store(true, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            attempts
        })
    };

    let faults = [
        Fault::KillPrimary,
        Fault::KillReplica,
        Fault::KillControlPlane,
        Fault::StopPrimary,
        Fault::CutLink,
    ];
    for step in 0..5 {
        let fault = faults[rng.random_range(0..faults.len())];
        let ms = members(&c).unwrap();
        let primaries: Vec<&Member> = ms.iter().filter(|m| m.primary && m.slots > 0).collect();
        let replicas: Vec<&Member> = ms.iter().filter(|m| !m.primary).collect();
        let primary = primaries[rng.random_range(0..primaries.len())].index;
        let replica = replicas[rng.random_range(0..replicas.len())].index;
        let hold = Duration::from_millis(rng.random_range(100..1500));
        eprintln!(
            "step {step}: {fault:?} (primary n{}, replica n{}, {hold:?})",
            primary + 1,
            replica + 1
        );
        let began = Instant::now();
        match fault {
            Fault::KillPrimary => {
                c.nodes[primary].kill();
                std::thread::sleep(hold);
                c.restart_node(primary);
            }
            Fault::KillReplica => {
                c.nodes[replica].kill();
                std::thread::sleep(hold);
                c.restart_node(replica);
            }
            Fault::KillControlPlane => {
                c.cp.kill();
                std::thread::sleep(hold + node_timeout);
                c.cp.start();
            }
            Fault::StopPrimary => {
                c.nodes[primary].pause();
                std::thread::sleep(node_timeout + hold);
                c.nodes[primary].resume();
            }
            Fault::CutLink => {
                proxies[primary].cut();
                std::thread::sleep(hold);
                proxies[primary].heal();
            }
        }
        c.wait(
            &format!("the cluster converges after step {step}"),
            T,
            converged,
        );
        eprintln!(
            "step {step}: converged {:?} after the fault began",
            began.elapsed()
        );
    }

    c.wait("the rebalance completes", T * 2, |_| {
        Ok(rebalanced.load(Ordering::Relaxed))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let attempts = rebalancer.join().unwrap();
    eprintln!(
        "writes: {} ok, {} errors during faults; rebalance attempts: {attempts}",
        writes.load(Ordering::Relaxed),
        write_errors.load(Ordering::Relaxed)
    );
    c.wait("the cluster converges at the end", T, converged);

    // The new shard took its share.
    let ms = members(&c).unwrap();
    let shards: Vec<&Member> = ms.iter().filter(|m| m.primary).collect();
    assert_eq!(shards.len(), 3);
    assert!(shards.iter().all(|m| m.slots >= 5400), "rebalanced evenly");

    // Every key on exactly one shard, the one that owns its slot.
    let mut seen = BTreeSet::new();
    for m in &shards {
        let mut conn = c.conn(m.index).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        for k in keys {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&k)
                .query(&mut conn)
                .unwrap();
            let served = conn.get::<_, Option<String>>(&k);
            assert!(
                served.is_ok(),
                "n{} holds {k} (slot {slot}) but does not own it: {served:?}",
                m.index + 1
            );
            assert!(seen.insert(k.clone()), "{k} is on two shards");
        }
    }
    for i in 0..LOADED {
        assert!(seen.contains(&format!("load:{i}")), "load:{i} was lost");
    }

    // Every replica holds exactly its primary's dataset.
    for r in ms.iter().filter(|m| !m.primary) {
        let p = r.primary_index.unwrap();
        c.wait(
            &format!("n{} equals its primary n{}", r.index + 1, p + 1),
            T,
            |c| Ok(dataset(&mut c.conn(r.index)?) == dataset(&mut c.conn(p)?)),
        );
    }
}
