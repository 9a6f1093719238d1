//! kill -9 the control plane in the middle of a stream of accepted operations, restart it,
//! and check that every acknowledged change is present and the version never went back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember_tests::{wait_until, TestCluster};

#[test]
fn every_acknowledged_change_survives_kill_9() {
    let mut cluster = TestCluster::start(0, Duration::from_secs(5));
    for round in 0..3 {
        // (version, require_full_coverage) of the last acknowledged change.
        let acked: Arc<Mutex<Option<(u64, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let url = cluster.cp_url();
        let writer = {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut value = false;
                while !stop.load(Ordering::Relaxed) {
                    value = !value;
                    let out = std::process::Command::new(ember_tests::bin("emberctl"))
                        .args([
                            "--control-plane",
                            &url,
                            "--json",
                            "config",
                            "set",
                            "require-full-coverage",
                        ])
                        .arg(if value { "yes" } else { "no" })
                        .output()
                        .unwrap();
                    if out.status.success() {
                        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        let version = reply["cluster"]["version"]
                            .as_u64()
                            .expect("reply carries the version");
                        *acked.lock().unwrap() = Some((version, value));
                    }
                }
            })
        };
        wait_until("some acknowledged changes", Duration::from_secs(20), || {
            Ok(acked
                .lock()
                .unwrap()
                .is_some_and(|(v, _)| v > 5 * (round + 1)))
        })
        .unwrap();
        cluster.cp.kill();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let (version, value) = acked.lock().unwrap().expect("acknowledged");
        cluster.cp.start();
        cluster.wait("control plane back", Duration::from_secs(20), |c| {
            let status = c.ctl_json(&["status"])?;
            let got = status["version"].as_u64().unwrap();
            let rfc = status["require_full_coverage"].as_bool().unwrap();
            // The last acknowledged change is present; at most the one in flight is extra.
            assert!(
                got == version || got == version + 1,
                "version {got}, acknowledged {version}"
            );
            if got == version {
                assert_eq!(rfc, value, "acknowledged setting lost");
            }
            Ok(true)
        });
    }
}
