//! A control plane without a single point of failure: three control-plane processes on
//! a three-member etcd, data nodes and emberctl given all three URLs. Killing the
//! leader (kill -9), again and again under client writes: a new leader takes over, a
//! change submitted right after the kill commits within 5 s, no node is marked failed,
//! versions never go back, and no client sees an error. A leader paused past its lease
//! (SIGSTOP) cannot commit when it wakes up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_tests::{wait_until, TestCluster};

const T: Duration = Duration::from_secs(30);

/// The leading process's index and term, as `emberctl status --json` reports them.
fn leader(c: &TestCluster) -> anyhow::Result<(usize, i64)> {
    let status = c.ctl_json(&["status"])?;
    let url = status["control_plane_leader"].as_str().unwrap_or_default();
    let i = c
        .cp_urls
        .iter()
        .position(|u| u == url)
        .ok_or_else(|| anyhow::anyhow!("no leader yet ({url:?})"))?;
    Ok((i, status["control_plane_term"].as_i64().unwrap_or(0)))
}

/// Waits until some process leads (and everyone knows it); its index and term.
fn wait_leader(c: &TestCluster, other_than: Option<usize>) -> (usize, i64) {
    let mut found = None;
    wait_until("a leader", T, || {
        found = leader(c).ok().filter(|(i, _)| Some(*i) != other_than);
        Ok(found.is_some())
    })
    .unwrap();
    found.unwrap()
}

fn version(c: &TestCluster) -> u64 {
    c.ctl_json(&["status"]).unwrap()["version"]
        .as_u64()
        .unwrap()
}

#[test]
fn killing_the_leader_again_and_again_is_not_noticed() {
    let mut c = TestCluster::start_ha(3, 3, Duration::from_secs(3));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);

    // Writers through the cluster client, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let nodes: Vec<String> = c.specs.iter().map(|s| s.url()).collect();
    let writer = {
        let (stop, acked, errors) = (stop.clone(), acked.clone(), errors.clone());
        std::thread::spawn(move || {
            let client = redis::cluster::ClusterClient::new(nodes).unwrap();
            let mut con = client.get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match redis::cmd("SET")
                    .arg(format!("k{i}"))
                    .arg(i)
                    .query::<()>(&mut con)
                {
                    Ok(()) => acked.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("write error: {e}");
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                i += 1;
            }
        })
    };

    let mut last_version = version(&c);
    let mut last_term = 0;
    let mut coverage = true;
    for round in 0..3 {
        let (old, term) = wait_leader(&c, None);
        assert!(
            term >= last_term,
            "round {round}: term {term} after {last_term}"
        );
        c.control_plane(old).kill();
        // A change right after the kill: emberctl finds a live process, which forwards
        // it to the new leader once elected.
        coverage = !coverage;
        let began = Instant::now();
        let value = if coverage { "yes" } else { "no" };
        let mut committed = false;
        while began.elapsed() < Duration::from_secs(5) && !committed {
            committed = c
                .ctl(&["config", "set", "require-full-coverage", value])
                .status
                .success();
        }
        let took = began.elapsed();
        assert!(
            committed,
            "round {round}: no commit within 5 s of the leader's kill"
        );
        eprintln!(
            "round {round}: killed cp{}; a change committed {took:?} after",
            old + 1
        );
        let (new, new_term) = leader(&c).unwrap();
        assert_ne!(new, old);
        last_term = new_term;
        let v = version(&c);
        assert!(
            v > last_version,
            "round {round}: version {v} after {last_version}"
        );
        last_version = v;
        let status = c.ctl_json(&["status"]).unwrap();
        assert_eq!(status["require_full_coverage"].as_bool(), Some(coverage));
        let failed: Vec<_> = c.ctl_json(&["nodes"]).unwrap()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["failed"].as_bool() == Some(true))
            .cloned()
            .collect();
        assert!(
            failed.is_empty(),
            "round {round}: nodes marked failed: {failed:?}"
        );
        // The killed process comes back as a follower.
        c.control_plane(old).start();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(acked.load(Ordering::Relaxed) > 100);
    assert_eq!(errors.load(Ordering::Relaxed), 0, "client errors");
}

/// A leader paused (SIGSTOP) past its lease is replaced; when it wakes up, it commits
/// nothing: its term is over (the store refuses it), and it follows the new leader.
#[test]
fn a_leader_paused_past_its_lease_commits_nothing_when_it_wakes() {
    let mut c = TestCluster::start_ha(1, 3, Duration::from_secs(3));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    let (old, term) = wait_leader(&c, None);
    c.control_plane(old).pause();
    let (new, new_term) = wait_leader(&c, Some(old));
    assert!(new_term > term);
    c.ctl_ok(&["config", "set", "require-full-coverage", "no"]);
    let v = version(&c);
    c.control_plane(old).resume();
    // Awake, it learns that another leads; whatever it tried meanwhile was refused.
    wait_until("the old leader follows", T, || {
        let out = std::process::Command::new(ember_tests::bin("emberctl"))
            .args(["--control-plane", &c.cp_urls[old], "status", "--json"])
            .output()?;
        let s: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(s["control_plane_leader"].as_str() == Some(c.cp_urls[new].as_str()))
    })
    .unwrap();
    assert_eq!(version(&c), v, "the woken leader committed something");
    let status = c.ctl_json(&["status"]).unwrap();
    assert_eq!(status["require_full_coverage"].as_bool(), Some(false));
}
