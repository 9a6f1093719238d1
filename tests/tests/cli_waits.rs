//! `emberctl rebalance` waits through control-plane crashes: kill -9 and restart the
//! control plane at seeded random moments while it runs; it must finish with exit 0 (or
//! 3 only if the control plane stayed away), never give up on a transient error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ember_tests::{bin, TestCluster};
use rand::{Rng, SeedableRng};
use redis::Commands;

const T: Duration = Duration::from_secs(60);

#[test]
fn rebalance_keeps_waiting_through_control_plane_kills() {
    let mut c = TestCluster::start(3, Duration::from_secs(3));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait("n1 serves", T, |c| {
        Ok(c.cluster_info(0)?.get("cluster_state").map(String::as_str) == Some("ok"))
    });
    let mut conn = c.conn(0).unwrap();
    for start in (0..60_000).step_by(1000) {
        let mut pipe = redis::pipe();
        for k in start..start + 1000 {
            pipe.set(format!("k:{k}"), "x".repeat(64)).ignore();
        }
        let _: () = pipe.query(&mut conn).unwrap();
    }
    c.ctl_ok(&["join", "n2"]);
    c.ctl_ok(&["join", "n3"]);

    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let started = Instant::now();
    let mut kills = 0;
    // A kill during a handoff may abort that migration (the source keeps its slots):
    // then rebalance exits 1 naming it and is run again, as an operator would. It must
    // never give up on the control plane being away.
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 5, "rebalance did not finish in 5 runs");
        let mut rebalance = Command::new(bin("emberctl"))
            .args([
                "--control-plane",
                &c.cp_url(),
                "rebalance",
                "--parallel",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = rebalance.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < T * 2, "rebalance did not finish");
            std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
            if kills < 6 {
                c.cp.kill();
                kills += 1;
                std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
                c.cp.start();
            }
        };
        let mut err = String::new();
        std::io::Read::read_to_string(rebalance.stderr.as_mut().unwrap(), &mut err).unwrap();
        if status.success() {
            break;
        }
        assert_eq!(
            status.code(),
            Some(1),
            "rebalance gave up after {kills} kills: {err}"
        );
        assert!(
            err.contains("aborted"),
            "rebalance failed after {kills} kills: {err}"
        );
    }
    assert!(
        kills >= 2,
        "the kills did not strike while rebalance ran ({kills})"
    );

    // The last kill may have struck just before rebalance finished: the control plane
    // was restarted and may still be opening its port.
    let mut nodes = serde_json::Value::Null;
    c.wait("the control plane answers", T, |c| {
        nodes = c.ctl_json(&["nodes"])?;
        Ok(true)
    });
    let counts: Vec<u64> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["slot_count"].as_u64().unwrap())
        .collect();
    assert!(
        counts.iter().all(|n| (5461..=5462).contains(n)),
        "{counts:?}"
    );
    let mut cluster = c.cluster_client().get_connection().unwrap();
    for k in (0..60_000).step_by(97) {
        let v: Option<String> = cluster.get(format!("k:{k}")).unwrap();
        assert!(v.is_some(), "k:{k} lost");
    }
}
