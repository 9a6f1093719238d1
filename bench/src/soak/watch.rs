//! Node failures as the control plane publishes them (`emberctl watch`), and what
//! caused each.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ember_tests::{bin, TestCluster};
use serde_json::Value;

use super::faults::{FaultKind, FaultRecord};

/// `emberctl watch --json` in the background: every "node X failed" and when it arrived.
pub struct Watcher {
    child: Child,
    failures: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Watcher {
    pub fn start(c: &TestCluster) -> anyhow::Result<Self> {
        let mut child = Command::new(bin("emberctl"))
            .arg("--control-plane")
            .arg(c.cp_url())
            .args(["--json", "watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(c.dir.path().join("watch.err"))?)
            .spawn()?;
        let stdout = child.stdout.take().context("watch has no stdout")?;
        let failures = Arc::new(Mutex::new(vec![]));
        let sink = failures.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(ev) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let changes = ev["changes"].as_array().into_iter().flatten();
                for change in changes.filter_map(Value::as_str) {
                    let name = change.strip_prefix("node ");
                    if let Some(name) = name.and_then(|c| c.strip_suffix(" failed")) {
                        sink.lock()
                            .unwrap()
                            .push((Instant::now(), name.to_string()));
                    }
                }
            }
        });
        Ok(Self { child, failures })
    }

    pub fn stop(mut self) -> Vec<(Instant, String)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut *self.failures.lock().unwrap())
    }
}

/// Nodes the control plane marked failed, by cause.
#[derive(Default)]
pub struct FailureTally {
    /// During a kill or a stop longer than the node timeout of that node.
    pub expected: u64,
    /// During a stop of that node shorter than the node timeout.
    pub short_stop: u64,
    /// Otherwise, during (or just after) a stop of the control plane.
    pub after_cp_stop: u64,
    /// Otherwise, during (or just after) a kill and restart of the control plane.
    pub after_cp_kill: u64,
    pub unexplained: u64,
    pub examples: Vec<String>,
}

impl FailureTally {
    pub fn total(&self) -> u64 {
        self.expected + self.short_stop + self.after_cp_stop + self.after_cp_kill + self.unexplained
    }
}

/// Attributes each failure to a fault whose window (strike to recovery + node timeout
/// + 1 s) holds it.
pub fn classify_failures(
    faults: &[FaultRecord],
    failures: &[(Instant, String)],
    node_timeout: Duration,
    t0: Instant,
) -> FailureTally {
    let slack = node_timeout + Duration::from_secs(1);
    let mut t = FailureTally::default();
    for (at, name) in failures {
        let near = |f: &&FaultRecord| f.start <= *at && *at <= f.end + slack;
        let on_node = |kinds: &[FaultKind]| {
            faults
                .iter()
                .filter(near)
                .any(|f| kinds.contains(&f.kind) && f.node.as_deref() == Some(name))
        };
        let counter = if on_node(&[FaultKind::NodeKill, FaultKind::NodeStopLong]) {
            &mut t.expected
        } else if on_node(&[FaultKind::NodeStopShort]) {
            &mut t.short_stop
        } else if faults
            .iter()
            .filter(near)
            .any(|f| f.kind == FaultKind::CpStop)
        {
            &mut t.after_cp_stop
        } else if faults
            .iter()
            .filter(near)
            .any(|f| f.kind == FaultKind::CpKill)
        {
            &mut t.after_cp_kill
        } else {
            &mut t.unexplained
        };
        *counter += 1;
        if t.examples.len() < 6 && !on_node(&[FaultKind::NodeKill, FaultKind::NodeStopLong]) {
            let s = (*at - t0).as_secs_f64();
            t.examples.push(format!("{name} at {s:.1} s"));
        }
    }
    t
}
