//! Faults: kinds, the seeded plan, what struck, and the migrations emberctl reports.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::SlotSet;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum FaultKind {
    CpKill,
    CpStop,
    NodeStopShort,
    NodeStopLong,
    NodeKill,
}

pub const KINDS: [FaultKind; 5] = [
    FaultKind::CpKill,
    FaultKind::CpStop,
    FaultKind::NodeStopShort,
    FaultKind::NodeStopLong,
    FaultKind::NodeKill,
];

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::CpKill => "kill -9 + restart control plane",
            Self::CpStop => "SIGSTOP control plane (1-4 s)",
            Self::NodeStopShort => "SIGSTOP source/target (< node timeout)",
            Self::NodeStopLong => "SIGSTOP source/target (> node timeout)",
            Self::NodeKill => "kill -9 + restart source/target",
        }
    }

    /// How long the process stays killed or stopped, for `frac` in [0, 1).
    pub fn pause(self, frac: f64, node_timeout: Duration) -> Duration {
        let t = node_timeout.as_secs_f64();
        Duration::from_secs_f64(match self {
            Self::CpKill => frac * 2.0,
            Self::CpStop => 1.0 + frac * 3.0,
            Self::NodeStopShort => (0.2 + 0.6 * frac) * t,
            Self::NodeStopLong => (1.5 + 1.5 * frac) * t,
            Self::NodeKill => frac * 2.0 * t,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Role {
    Source,
    Target,
}

/// A fault of the plan: strikes `delay_frac` x the typical migration length after the
/// `nth` migration of the phase started.
#[derive(Clone, Debug)]
pub struct PlannedFault {
    pub kind: FaultKind,
    pub role: Role,
    pub nth: usize,
    pub delay_frac: f64,
    pub pause_frac: f64,
}

pub struct FaultRecord {
    pub kind: FaultKind,
    /// The data node struck (`None`: the control plane).
    pub node: Option<String>,
    pub during_migration: bool,
    pub start: Instant,
    pub end: Instant,
}

/// A data node killed at `at`, with the slots whose keys died with it.
pub struct Kill {
    pub at: Instant,
    pub slots: SlotSet,
}

/// Migrations seen in emberctl's `--json` events, across the runs of one phase.
#[derive(Default)]
pub struct Tracker {
    /// (id, source id, target id, when seen).
    pub started: Vec<(String, String, String, Instant)>,
    pub finished: HashSet<String>,
    pub committed: u64,
    pub aborted: u64,
    pub millis: Vec<u64>,
    pub read: usize,
}

impl Tracker {
    /// Reads the complete lines added to `path` since the last call.
    pub fn poll(&mut self, path: &Path) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let new = &text[self.read.min(text.len())..];
        let Some(end) = new.rfind('\n') else {
            return;
        };
        for line in new[..end].lines() {
            self.event(line);
        }
        self.read += end + 1;
    }

    fn event(&mut self, line: &str) {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let s = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
        match ev["event"].as_str() {
            Some("started") => {
                self.started
                    .push((s("id"), s("source_id"), s("target_id"), Instant::now()))
            }
            Some("finished") => {
                self.finished.insert(s("id"));
                if ev["committed"] == true {
                    self.committed += 1;
                    self.millis.extend(ev["millis"].as_u64());
                } else {
                    self.aborted += 1;
                }
            }
            _ => {}
        }
    }

    fn is_running(&self, id: &str) -> bool {
        !self.finished.contains(id)
    }

    /// The migration to strike for `f`: its `nth` if still running, else the latest
    /// running one, else the latest; and whether it is running.
    pub fn victim(&self, f: &PlannedFault) -> Option<(&str, &str, bool)> {
        let nth = self
            .started
            .get(f.nth - 1)
            .filter(|m| self.is_running(&m.0));
        let running = self.started.iter().rev().find(|m| self.is_running(&m.0));
        let m = nth.or(running).or(self.started.last())?;
        Some((&m.1, &m.2, self.is_running(&m.0)))
    }
}
