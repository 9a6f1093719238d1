//! Soak run of issue 10: the rebalance/drain fault loop, repeated and bounded, checking
//! every acknowledged write.
//!
//! A control plane and 3 data nodes run on loopback (node timeout `--node-timeout-ms`,
//! default 1000), bootstrapped and preloaded with ballast keys so that migrations last
//! long enough to be struck. `--writers` threads write through the `redis` crate's
//! cluster client, paced to `--keys-per-sec` in all: unique keys (`SET`, retried as a
//! client would) and `INCR` counters, recording every acknowledgement and its time.
//!
//! Rounds alternate: join a fresh node, `emberctl rebalance` onto it, `emberctl drain` it
//! and `forget` it; or drain one of the three and rebalance back. While rebalance or
//! drain runs (`--parallel 1`), a seeded plan of faults strikes shortly after a chosen
//! migration starts: kill -9 + restart or SIGSTOP/SIGCONT of the control plane,
//! SIGSTOP/SIGCONT of the migration's source or target (shorter and longer than the node
//! timeout), kill -9 + restart of its source or target. emberctl is rerun (bounded) until
//! the round's goal is reached, as an operator would.
//!
//! Data nodes keep keys in memory only: a killed node restarts empty. Just before and
//! just after each kill the slots the node owns or migrates are recorded; a write
//! acknowledged before the kill and missing in those slots is reported as lost inside
//! killed slots. Violations: any other loss, a wrong value, a counter outside
//! [acknowledged, acknowledged + unknown outcomes] (outside killed slots), a key on a node
//! that does not own its slot, and after each round a cluster that does not settle within
//! 60 s (no migration, every member healthy, every member on the control plane's version
//! and routing by its slot map, every slot owned once, keys only on their slot's owner,
//! `cluster_state:ok` everywhere) or ballast lost outside killed slots (it is then
//! rewritten with a new generation); also a round whose goal is not reached and a fresh
//! node that cannot be joined. `emberctl watch` runs throughout: every node the control
//! plane marks failed is attributed to the fault around it (reported, not a violation).

//! The seed fixes the plan (round kinds, drained nodes, fault kinds, roles, which
//! migration, delays and pause lengths); where a fault lands also depends on timing, so
//! two runs of one seed differ in detail.
//!
//! Usage: cargo run --release -p ember-bench --bin soak -- [--seed N] [--rounds N]
//! [--keys-per-sec N] [--writers N] [--ballast N] [--value-len N] [--node-timeout-ms N]
//! [--keep-logs]
//!
//! Prints a markdown summary on stdout (progress on stderr) and exits 1 on any
//! violation; the processes' logs and emberctl's outputs are then kept in
//! target/soak-logs/seed-N (always with `--keep-logs`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ember_bench::soak::cluster::{
    fetch, invariants, member, members, migrations, owner_map, slot_of, slots_at_stake, status,
    status_within, store, SlotSet, SLOTS,
};
use ember_bench::soak::faults::{FaultKind, FaultRecord, Kill, PlannedFault, Role, Tracker, KINDS};
use ember_bench::soak::watch::{classify_failures, FailureTally, Watcher};
use ember_bench::soak::writer::{
    counter_key, padded, spawn_writers, unique_key, unique_value, WriterLog, STALL,
};
use ember_bench::{command_line, row};
use ember_tests::{bin, wait_until, TestCluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// emberctl runs of one rebalance or drain before the round's goal counts as missed.
const MAX_ATTEMPTS: usize = 8;
/// An emberctl run longer than this is stopped (its migrations go on by themselves).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(90);
/// How long the cluster may take to settle after faults.
const SETTLE: Duration = Duration::from_secs(60);
/// Assumed migration length until the first ones have finished.
const DEFAULT_MIGRATION_MS: u64 = 300;

#[derive(Clone)]
struct Args {
    seed: u64,
    rounds: usize,
    keys_per_sec: u64,
    writers: usize,
    ballast: usize,
    value_len: usize,
    node_timeout: Duration,
    keep_logs: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut a = Self {
            seed: 1,
            rounds: 6,
            keys_per_sec: 1000,
            writers: 4,
            ballast: 100_000,
            value_len: 1024,
            node_timeout: Duration::from_millis(1000),
            keep_logs: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--keep-logs" {
                a.keep_logs = true;
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let n: u64 = value
                .parse()
                .with_context(|| format!("{flag} {value}: not a number"))?;
            match flag.as_str() {
                "--seed" => a.seed = n,
                "--rounds" => a.rounds = n as usize,
                "--keys-per-sec" => a.keys_per_sec = n.max(1),
                "--writers" => a.writers = (n as usize).max(1),
                "--ballast" => a.ballast = n as usize,
                "--value-len" => a.value_len = n as usize,
                "--node-timeout-ms" => a.node_timeout = Duration::from_millis(n.max(100)),
                _ => bail!("unknown flag {flag} (see the doc comment of bench/src/bin/soak.rs)"),
            }
        }
        Ok(a)
    }
}

enum Goal {
    /// Every primary holds floor or ceil of 16384 / primaries slots.
    Even,
    /// The named node owns no slot.
    Drained(String),
}

#[derive(Default)]
struct Ballast {
    generation: u64,
    written_at: Option<Instant>,
    checked: u64,
    lost_inside: u64,
    lost_outside: u64,
    wrong: u64,
}

#[derive(Default)]
struct OpStats {
    runs: u64,
    reruns: u64,
    stopped: u64,
    committed: u64,
    aborted: u64,
}

struct Soak {
    args: Args,
    /// The start of the run (times in the output count from it).
    t0: Instant,
    c: TestCluster,
    plan_rng: StdRng,
    pick_rng: StdRng,
    round: usize,
    kills: Vec<Kill>,
    faults: Vec<FaultRecord>,
    violations: Vec<String>,
    ballast: Ballast,
    ops: OpStats,
    migration_ms: Vec<u64>,
}

impl Soak {
    fn start(args: &Args, t0: Instant) -> anyhow::Result<Self> {
        let c = TestCluster::start(3, args.node_timeout);
        c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
        c.wait_all_info("cluster_state", "ok", SETTLE);
        let mut soak = Self {
            args: args.clone(),
            t0,
            c,
            plan_rng: StdRng::seed_from_u64(args.seed),
            pick_rng: StdRng::seed_from_u64(args.seed ^ 0x5eed),
            round: 0,
            kills: vec![],
            faults: vec![],
            violations: vec![],
            ballast: Ballast::default(),
            ops: OpStats::default(),
            migration_ms: vec![],
        };
        soak.load_ballast()?;
        Ok(soak)
    }

    /// Seconds since the start of the run, for progress lines.
    fn now(&self) -> String {
        format!("[{:6.1} s]", self.t0.elapsed().as_secs_f64())
    }

    fn violation(&mut self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    /// Whether a write to `slot` acknowledged at `at` may have died with a killed node.
    fn killed_after(&self, slot: u16, at: Instant) -> bool {
        self.kills
            .iter()
            .any(|k| k.at > at && k.slots.contains(slot))
    }

    fn killed_between(&self, slot: u16, from: Instant, to: Instant) -> bool {
        self.kills
            .iter()
            .any(|k| k.at > from && k.at < to && k.slots.contains(slot))
    }

    // --- rounds -------------------------------------------------------------------------

    fn round(&mut self) -> anyhow::Result<()> {
        self.round += 1;
        let t = Instant::now();
        if self.round % 2 == 1 {
            self.grow_round()?;
        } else {
            self.cycle_round()?;
        }
        self.check_invariants();
        self.check_ballast()?;
        self.load_ballast()?;
        eprintln!(
            "{} round {} done in {:.1} s ({} faults so far, {} violations)",
            self.now(),
            self.round,
            t.elapsed().as_secs_f64(),
            self.faults.len(),
            self.violations.len()
        );
        Ok(())
    }

    /// Joins a fresh node, rebalances onto it, drains it and forgets it.
    fn grow_round(&mut self) -> anyhow::Result<()> {
        let i = self.c.add_node();
        let name = self.c.specs[i].name.clone();
        eprintln!(
            "{} round {}: join {name}, rebalance, drain, forget",
            self.now(),
            self.round
        );
        self.join_fresh(i)?;
        self.phase(&["rebalance", "--parallel", "1"], Goal::Even)?;
        self.phase(
            &["drain", &name, "--parallel", "1"],
            Goal::Drained(name.clone()),
        )?;
        self.wait_ready("before forget");
        self.ctl_retry(&["forget", &name])?;
        self.c.nodes[i].kill();
        Ok(())
    }

    /// Waits for fresh node `i` to register, and joins it. A registration that is not
    /// pending within 10 s or vanishes before the join is a violation (with the control
    /// plane's word on it); the node is then restarted to register again, as an operator
    /// would.
    fn join_fresh(&mut self, i: usize) -> anyhow::Result<()> {
        let name = self.c.specs[i].name.clone();
        for attempt in 1..=3 {
            let c = &self.c;
            let pending = wait_until("pending", Duration::from_secs(10), || {
                Ok(c.ctl_json(&["pending"])?.to_string().contains(&name))
            });
            if pending.is_ok() && self.ctl_retry(&["join", &name]).is_ok() {
                return Ok(());
            }
            let why = self.cp_log_line(&["expired pending", &format!("{name} (")]);
            self.violation(format!(
                "round {}: fresh node {name} could not be joined (try {attempt}): {}",
                self.round,
                why.unwrap_or_else(|| "not pending within 10 s".into())
            ));
            self.c.nodes[i].kill();
            self.c.nodes[i].start();
        }
        bail!("{name} could not be joined")
    }

    /// The last line of the control plane's log containing every one of `words`, without
    /// colours.
    fn cp_log_line(&self, words: &[&str]) -> Option<String> {
        let tail = self.c.cp.log_tail(2000);
        let line = tail
            .lines()
            .rev()
            .find(|l| words.iter().all(|w| l.contains(w)))?;
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            if ch == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                out.push(ch);
            }
        }
        Some(out)
    }

    /// Drains one of the first three nodes and rebalances back.
    fn cycle_round(&mut self) -> anyhow::Result<()> {
        let name = self.c.specs[self.plan_rng.random_range(0..3)].name.clone();
        eprintln!(
            "{} round {}: drain {name}, rebalance back",
            self.now(),
            self.round
        );
        self.phase(
            &["drain", &name, "--parallel", "1"],
            Goal::Drained(name.clone()),
        )?;
        self.phase(&["rebalance", "--parallel", "1"], Goal::Even)
    }

    /// Runs an emberctl mutation until it succeeds (bounded: the control plane may be
    /// restarting after a fault).
    fn ctl_retry(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut last = String::new();
        for _ in 0..20 {
            let out = self.c.ctl(args);
            if out.status.success() {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_string();
            sleep(Duration::from_millis(500));
        }
        bail!("emberctl {} kept failing: {last}", args.join(" "))
    }

    fn goal_reached(&self, goal: &Goal) -> anyhow::Result<bool> {
        let s = status_within(&self.c, Duration::from_secs(10))?;
        let counts: Vec<u64> = members(&s)
            .iter()
            .filter(|m| m["role"] == "primary")
            .map(|m| m["slot_count"].as_u64().unwrap_or(0))
            .collect();
        Ok(match goal {
            Goal::Even => {
                let n = counts.len().max(1) as u64;
                let (lo, hi) = (SLOTS as u64 / n, (SLOTS as u64).div_ceil(n));
                counts.iter().all(|c| (lo..=hi).contains(c))
            }
            Goal::Drained(name) => {
                member(&s, "name", name).is_some_and(|m| m["slot_count"].as_u64() == Some(0))
            }
        })
    }

    /// Waits until no migration runs, every member is healthy and the cluster is `ok`;
    /// a violation if that takes longer than [`SETTLE`].
    fn wait_ready(&mut self, what: &str) {
        let c = &self.c;
        let res = wait_until("a settled cluster", SETTLE, || {
            let s = status(c)?;
            ensure!(migrations(&s).is_empty(), "migrations running");
            for m in members(&s) {
                ensure!(m["health"] == "ok", "{} is {}", m["name"], m["health"]);
            }
            ensure!(s["state"] == "ok", "cluster state {}", s["state"]);
            Ok(true)
        });
        if let Err(e) = res {
            self.violation(format!("round {}: {what}: {e:#}", self.round));
        }
    }

    // --- phases -------------------------------------------------------------------------

    /// Runs `emberctl CMD` until `goal` holds (at most [`MAX_ATTEMPTS`] runs) while the
    /// phase's planned faults strike; faults still due when the goal is reached strike
    /// then, on the idle cluster.
    fn phase(&mut self, cmd: &[&str], goal: Goal) -> anyhow::Result<()> {
        self.wait_ready(&format!("before {}", cmd[0]));
        let moves = self.planned_moves(cmd).unwrap_or(3).max(1);
        let mut plan = self.plan_faults(moves);
        let mut tracker = Tracker::default();
        let mut runs = 0;
        while runs < MAX_ATTEMPTS && !self.goal_reached(&goal)? {
            if runs > 0 {
                self.ops.reruns += 1;
                self.wait_ready(&format!("before rerunning {}", cmd[0]));
            }
            runs += 1;
            self.ops.runs += 1;
            self.run_ctl(cmd, runs, &mut tracker, &mut plan)?;
        }
        if !self.goal_reached(&goal)? {
            self.violation(format!(
                "round {}: {} did not reach its goal in {runs} runs",
                self.round,
                cmd.join(" ")
            ));
        }
        for f in std::mem::take(&mut plan) {
            self.strike(&f, &tracker);
        }
        self.ops.committed += tracker.committed;
        self.ops.aborted += tracker.aborted;
        self.migration_ms.extend(&tracker.millis);
        Ok(())
    }

    /// How many migrations `emberctl CMD --dry-run` plans.
    fn planned_moves(&self, cmd: &[&str]) -> anyhow::Result<usize> {
        let mut args = vec!["--json"];
        args.extend_from_slice(cmd);
        args.push("--dry-run");
        let out = self.c.ctl(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        let plan: Value = serde_json::from_str(text.lines().next().unwrap_or("{}"))?;
        plan["move_count"]
            .as_u64()
            .map(|n| n as usize)
            .context("no move_count in the plan")
    }

    fn plan_faults(&mut self, moves: usize) -> Vec<PlannedFault> {
        let rng = &mut self.plan_rng;
        let mut plan: Vec<PlannedFault> = (0..rng.random_range(2..=4))
            .map(|_| PlannedFault {
                kind: KINDS[rng.random_range(0..KINDS.len())],
                role: if rng.random_bool(0.5) {
                    Role::Source
                } else {
                    Role::Target
                },
                nth: rng.random_range(1..=moves),
                delay_frac: rng.random_range(0.0..1.2),
                pause_frac: rng.random_range(0.0..1.0),
            })
            .collect();
        plan.sort_by(|a, b| {
            (a.nth, a.delay_frac)
                .partial_cmp(&(b.nth, b.delay_frac))
                .unwrap()
        });
        plan
    }

    /// The median length of the migrations committed so far.
    fn typical_migration(&self) -> Duration {
        let mut ms = self.migration_ms.clone();
        ms.sort_unstable();
        let median = ms.get(ms.len() / 2).copied();
        Duration::from_millis(median.unwrap_or(DEFAULT_MIGRATION_MS).clamp(20, 5000))
    }

    /// One emberctl run (events to a file the tracker reads), striking the plan's faults
    /// as they fall due.
    fn run_ctl(
        &mut self,
        cmd: &[&str],
        run: usize,
        tracker: &mut Tracker,
        plan: &mut Vec<PlannedFault>,
    ) -> anyhow::Result<()> {
        let base = format!("ctl-r{}-{}-{run}", self.round, cmd[0]);
        let (out, err) = (self.log_path(&base, "jsonl"), self.log_path(&base, "err"));
        let mut child = Command::new(bin("emberctl"))
            .arg("--control-plane")
            .arg(self.c.cp_url())
            .arg("--json")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?)
            .spawn()?;
        tracker.read = 0;
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if t0.elapsed() > ATTEMPT_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                self.ops.stopped += 1;
                break None;
            }
            tracker.poll(&out);
            if self.due(plan.first(), tracker) {
                let f = plan.remove(0);
                self.strike(&f, tracker);
            }
            sleep(Duration::from_millis(10));
        };
        tracker.poll(&out);
        if !status.is_some_and(|s| s.success()) {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            eprintln!(
                "  emberctl {} exited {:?}: {}",
                cmd.join(" "),
                status.and_then(|s| s.code()),
                text.lines().last().unwrap_or("(stopped: too long)")
            );
        }
        Ok(())
    }

    fn log_path(&self, base: &str, ext: &str) -> PathBuf {
        self.c.dir.path().join(format!("{base}.{ext}"))
    }

    fn due(&self, f: Option<&PlannedFault>, tracker: &Tracker) -> bool {
        let Some(f) = f else { return false };
        let delay = self.typical_migration().mul_f64(f.delay_frac);
        tracker
            .started
            .get(f.nth - 1)
            .is_some_and(|m| m.3.elapsed() >= delay)
    }

    // --- faults -------------------------------------------------------------------------

    fn strike(&mut self, f: &PlannedFault, tracker: &Tracker) {
        let pause = f.kind.pause(f.pause_frac, self.args.node_timeout);
        let victim = tracker.victim(f);
        let during = victim.is_some_and(|v| v.2);
        let id = victim.map(|(source, target, _)| match f.role {
            Role::Source => source.to_string(),
            Role::Target => target.to_string(),
        });
        let start = Instant::now();
        let (node, what) = match f.kind {
            FaultKind::CpKill => {
                self.c.cp.kill();
                sleep(pause);
                self.c.cp.start();
                (None, "control plane".to_string())
            }
            FaultKind::CpStop => {
                self.c.cp.signal("STOP");
                sleep(pause);
                self.c.cp.signal("CONT");
                (None, "control plane".to_string())
            }
            FaultKind::NodeStopShort | FaultKind::NodeStopLong => {
                let (i, _) = self.node_to_strike(id.as_deref());
                self.c.nodes[i].signal("STOP");
                sleep(pause);
                self.c.nodes[i].signal("CONT");
                let name = self.c.specs[i].name.clone();
                (Some(name.clone()), name)
            }
            FaultKind::NodeKill => {
                let (i, id) = self.node_to_strike(id.as_deref());
                let what = self.kill_node(i, &id, pause);
                (Some(self.c.specs[i].name.clone()), what)
            }
        };
        eprintln!(
            "{}   fault: {} on {what} for {:.0} ms ({}, {:?} of migration {})",
            self.now(),
            f.kind.label(),
            pause.as_secs_f64() * 1000.0,
            if during { "during a migration" } else { "idle" },
            f.role,
            f.nth
        );
        self.faults.push(FaultRecord {
            kind: f.kind,
            node,
            during_migration: during,
            start,
            end: Instant::now(),
        });
    }

    /// The running node with member id `id`, or a random running member; (index, id).
    fn node_to_strike(&mut self, id: Option<&str>) -> (usize, String) {
        let s = status_within(&self.c, Duration::from_secs(10)).unwrap_or(Value::Null);
        let running = |name: &str| {
            self.c
                .specs
                .iter()
                .position(|sp| sp.name == name)
                .filter(|&i| self.c.nodes[i].is_running())
        };
        let by_id = id
            .and_then(|id| member(&s, "id", id))
            .and_then(|m| Some((running(m["name"].as_str()?)?, m["id"].as_str()?)));
        if let Some((i, id)) = by_id {
            return (i, id.to_string());
        }
        let all: Vec<(usize, String)> = members(&s)
            .iter()
            .filter_map(|m| Some((running(m["name"].as_str()?)?, m["id"].as_str()?.into())))
            .collect();
        if all.is_empty() {
            return (0, String::new());
        }
        all[self.pick_rng.random_range(0..all.len())].clone()
    }

    /// kill -9 of node `i` (member `id`), recording the slots at stake just before and
    /// just after; restarted (empty) after `down`.
    fn kill_node(&mut self, i: usize, id: &str, down: Duration) -> String {
        let before = status(&self.c).map(|s| slots_at_stake(&s, id));
        self.c.nodes[i].kill();
        let at = Instant::now();
        let after = status_within(&self.c, Duration::from_secs(5)).map(|s| slots_at_stake(&s, id));
        let slots = match (before, after) {
            // Not knowing what the node held, count everything as at stake.
            _ if id.is_empty() => SlotSet::all(),
            (Ok(mut a), Ok(b)) => {
                a.union(&b);
                a
            }
            _ => SlotSet::all(),
        };
        let name = format!("{} ({} slots at stake)", self.c.specs[i].name, slots.len());
        self.kills.push(Kill { at, slots });
        sleep(down);
        self.c.restart_node(i);
        name
    }

    // --- checks -------------------------------------------------------------------------

    fn check_invariants(&mut self) {
        self.wait_ready("after the round");
        let c = &self.c;
        let res = wait_until("the round's invariants", Duration::from_secs(30), || {
            invariants(c)
        });
        if let Err(e) = res {
            self.violation(format!("round {}: {e:#}", self.round));
        }
    }

    fn ballast_keys(&self) -> Vec<String> {
        (0..self.args.ballast)
            .map(|i| format!("ballast:{i}"))
            .collect()
    }

    fn ballast_value(&self, i: usize) -> String {
        let g = self.ballast.generation;
        padded(format!("b{i}:g{g}:"), self.args.value_len)
    }

    /// Writes every ballast key with a new generation's value, straight to the owners.
    fn load_ballast(&mut self) -> anyhow::Result<()> {
        self.ballast.generation += 1;
        let keys = self.ballast_keys();
        let values: Vec<String> = (0..keys.len()).map(|i| self.ballast_value(i)).collect();
        let mut last = None;
        for _ in 0..3 {
            match owner_map(&self.c).and_then(|owner| store(&owner, &keys, &values)) {
                Ok(()) => {
                    self.ballast.written_at = Some(Instant::now());
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            sleep(Duration::from_secs(1));
        }
        Err(last.expect("an error")).context("loading the ballast")
    }

    /// Every ballast key has the current generation's value, unless a kill took it.
    fn check_ballast(&mut self) -> anyhow::Result<()> {
        let keys = self.ballast_keys();
        let got = fetch(&owner_map(&self.c)?, &keys)?;
        let written = self.ballast.written_at.expect("loaded");
        let (mut inside, mut outside, mut wrong) = (0, 0, 0);
        let mut examples = vec![];
        for (i, v) in got.iter().enumerate() {
            let slot = slot_of(&keys[i]);
            match v {
                Some(v) if *v == self.ballast_value(i) => {}
                Some(v) => {
                    wrong += 1;
                    examples.push(format!("{} (slot {slot}) = {v:.40}", keys[i]));
                }
                None if self.killed_after(slot, written) => inside += 1,
                None => {
                    outside += 1;
                    examples.push(format!("{} (slot {slot}) missing", keys[i]));
                }
            }
        }
        let b = &mut self.ballast;
        b.checked += keys.len() as u64;
        b.lost_inside += inside;
        b.lost_outside += outside;
        b.wrong += wrong;
        eprintln!("  ballast: {inside} lost inside killed slots, {outside} outside, {wrong} wrong");
        if outside + wrong > 0 {
            examples.truncate(5);
            self.violation(format!(
                "round {}: ballast generation {}: {outside} lost outside killed slots, {wrong} \
                 wrong, e.g. {examples:?}",
                self.round, self.ballast.generation
            ));
        }
        Ok(())
    }

    /// Checks the writers' acknowledged keys and counters at the end.
    fn check_writes(&mut self, logs: &[WriterLog]) -> anyhow::Result<WriteTally> {
        let owner = owner_map(&self.c)?;
        let mut t = WriteTally::default();
        for log in logs {
            self.check_keys(&owner, log, &mut t)?;
            self.check_counters(&owner, log, &mut t)?;
        }
        if t.lost_outside + t.wrong + t.counters_bad > 0 {
            t.examples.truncate(8);
            self.violation(format!(
                "writes: {} lost outside killed slots, {} wrong, {} counters off, e.g. {:?}",
                t.lost_outside, t.wrong, t.counters_bad, t.examples
            ));
        }
        Ok(t)
    }

    fn check_keys(
        &self,
        owner: &[Option<u16>],
        log: &WriterLog,
        t: &mut WriteTally,
    ) -> anyhow::Result<()> {
        let w = log.id;
        let keys: Vec<String> = log.acked.iter().map(|(i, _)| unique_key(w, *i)).collect();
        let got = fetch(owner, &keys)?;
        for ((i, at), v) in log.acked.iter().zip(got) {
            let key = unique_key(w, *i);
            let slot = slot_of(&key);
            t.acked += 1;
            match v {
                Some(v) if v == unique_value(w, *i) => {}
                Some(v) => {
                    t.wrong += 1;
                    t.examples.push(format!("{key} (slot {slot}) = {v}"));
                }
                None if self.killed_after(slot, *at) => t.lost_inside += 1,
                None => {
                    t.lost_outside += 1;
                    t.examples.push(format!(
                        "{key} (slot {slot}) missing, acknowledged {:.1} s into the run",
                        (*at - self.t0).as_secs_f64()
                    ));
                }
            }
        }
        let keys: Vec<String> = log.uncertain.iter().map(|i| unique_key(w, *i)).collect();
        for (i, v) in log.uncertain.iter().zip(fetch(owner, &keys)?) {
            match v {
                Some(v) if v == unique_value(w, *i) => t.unacked_present += 1,
                Some(v) => {
                    t.wrong += 1;
                    t.examples
                        .push(format!("{} = {v} (unacknowledged)", unique_key(w, *i)));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn check_counters(
        &self,
        owner: &[Option<u16>],
        log: &WriterLog,
        t: &mut WriteTally,
    ) -> anyhow::Result<()> {
        let keys: Vec<String> = (0..log.counters.len())
            .map(|c| counter_key(log.id, c))
            .collect();
        let end = Instant::now();
        for ((key, ctr), v) in keys.iter().zip(&log.counters).zip(fetch(owner, &keys)?) {
            let Some(first) = ctr.first_ack else { continue };
            let slot = slot_of(key);
            let value: u64 = v.as_deref().map_or(Ok(0), str::parse)?;
            t.incr_acked += ctr.acked;
            t.incr_unknown += ctr.unknown;
            let killed = self.killed_between(slot, first, end);
            let anomaly_explained = ctr
                .first_anomaly
                .is_none_or(|a| self.killed_between(slot, first, a));
            let over = value > ctr.acked + ctr.unknown;
            let under = !killed && value < ctr.acked;
            if killed {
                t.counters_reset += 1;
            }
            if over || under || !anomaly_explained {
                t.counters_bad += 1;
                t.examples.push(format!(
                    "{key} (slot {slot}) = {value}: {} acknowledged, {} unknown, {} replies out \
                     of range{}",
                    ctr.acked,
                    ctr.unknown,
                    ctr.anomalies,
                    if killed { ", slot killed" } else { "" }
                ));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct WriteTally {
    acked: u64,
    lost_inside: u64,
    lost_outside: u64,
    wrong: u64,
    unacked_present: u64,
    incr_acked: u64,
    incr_unknown: u64,
    counters_reset: u64,
    counters_bad: u64,
    examples: Vec<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse()?;
    // Builds the binaries first (not part of the run's time).
    bin("emberctl");
    let t0 = Instant::now();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "soak seed {}: started at unix time {:.3} (times below count from here)",
        args.seed,
        unix.as_secs_f64()
    );
    let mut soak = Soak::start(&args, t0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let per_sec = args.keys_per_sec as f64 / args.writers as f64;
    let writers = spawn_writers(&soak.c, args.writers, per_sec, args.seed, &stop);
    let watcher = Watcher::start(&soak.c)?;
    let writing = Instant::now();
    let run = (0..args.rounds).try_for_each(|_| soak.round());
    stop.store(true, Ordering::Relaxed);
    let writing = writing.elapsed();
    let failures = classify_failures(&soak.faults, &watcher.stop(), args.node_timeout, t0);
    let logs: Vec<WriterLog> = writers
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect();
    if let Err(e) = run {
        soak.violation(format!("round {}: the run stopped: {e:#}", soak.round));
    }
    let tally = soak.check_writes(&logs).unwrap_or_else(|e| {
        soak.violation(format!("checking the writes failed: {e:#}"));
        WriteTally::default()
    });
    report(&soak, &logs, &tally, &failures, writing);
    let failed = !soak.violations.is_empty();
    if failed || args.keep_logs {
        keep_logs(&soak);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The longest stall overall, per fault kind the longest that began during a fault of
/// that kind, and (`None`) the longest far from every fault (its window from the strike
/// to recovery plus 2 node timeouts + 1 s).
/// Stalls keyed by fault kind (`None`: far from every fault) and whether the fault hit a
/// running migration.
type StallsByKind = BTreeMap<(Option<FaultKind>, bool), Duration>;

fn stalls(soak: &Soak, logs: &[WriterLog]) -> (Duration, StallsByKind) {
    let grace = soak.args.node_timeout * 2 + Duration::from_secs(1);
    let mut max = Duration::ZERO;
    let mut by_kind = StallsByKind::new();
    let mut note = |k: (Option<FaultKind>, bool), d: Duration| {
        let e = by_kind.entry(k).or_default();
        *e = (*e).max(d);
    };
    for &(a, b) in logs.iter().flat_map(|l| &l.stalls) {
        max = max.max(b - a);
        // The last acknowledgement came just before the fault struck, or while it lasted.
        let began_in = |f: &&FaultRecord| f.start <= a + STALL && a <= f.end;
        for f in soak.faults.iter().filter(began_in) {
            note((Some(f.kind), f.during_migration), b - a);
        }
        if !soak.faults.iter().any(|f| a < f.end + grace && b > f.start) {
            note((None, false), b - a);
        }
    }
    (max, by_kind)
}

/// Client errors by message, with when each was first seen.
fn client_errors(soak: &Soak, logs: &[WriterLog]) {
    let mut kinds: BTreeMap<&str, (u64, Instant)> = BTreeMap::new();
    for (k, (n, first)) in logs.iter().flat_map(|l| &l.error_kinds) {
        let e = kinds.entry(k).or_insert((0, *first));
        e.0 += n;
        e.1 = e.1.min(*first);
    }
    let mut kinds: Vec<(&str, (u64, Instant))> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1 .0));
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, (n, first))| {
            let at = (*first - soak.t0).as_secs_f64();
            format!("{n} x `{k}` (first at {at:.1} s)")
        })
        .collect();
    if !kinds.is_empty() {
        println!("\nClient errors: {}.", kinds.join(", "));
    }
}

/// The three longest stalls, with the faults around them.
fn longest_stalls(soak: &Soak, logs: &[WriterLog]) {
    let grace = soak.args.node_timeout * 2 + Duration::from_secs(1);
    let mut all: Vec<(Instant, Instant)> = logs.iter().flat_map(|l| l.stalls.clone()).collect();
    all.sort_by_key(|(a, b)| std::cmp::Reverse(*b - *a));
    for (a, b) in all.into_iter().take(3) {
        let around: Vec<String> = soak
            .faults
            .iter()
            .filter(|f| a < f.end + grace && b > f.start)
            .map(|f| {
                let on = f.node.as_deref().unwrap_or("control plane");
                let at = (f.start - soak.t0).as_secs_f64();
                format!("{} on {on} at {at:.1} s", f.kind.label())
            })
            .collect();
        println!(
            "\nStall of {} from {:.1} s: {}.",
            secs(b - a),
            (a - soak.t0).as_secs_f64(),
            if around.is_empty() {
                "no fault around it".to_string()
            } else {
                around.join("; ")
            }
        );
    }
}

/// The share of the writers' time spent in stalls.
fn stalled_share(logs: &[WriterLog], writing: Duration) -> f64 {
    let stalled: Duration = logs
        .iter()
        .flat_map(|l| &l.stalls)
        .map(|(a, b)| *b - *a)
        .sum();
    stalled.as_secs_f64() / (writing.as_secs_f64() * logs.len().max(1) as f64)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn report(
    soak: &Soak,
    logs: &[WriterLog],
    t: &WriteTally,
    failures: &FailureTally,
    writing: Duration,
) {
    let a = &soak.args;
    let (ops, errors) = logs
        .iter()
        .fold((0, 0), |(o, e), l| (o + l.ops, e + l.errors));
    let (max_stall, by_kind) = stalls(soak, logs);
    let b = &soak.ballast;
    let during = soak.faults.iter().filter(|f| f.during_migration).count();
    let at_stake: usize = soak.kills.iter().map(|k| k.slots.len()).sum();
    println!(
        "\n## Soak: rebalance/drain under faults (seed {})\n",
        a.seed
    );
    println!("`{}`\n", command_line("soak"));
    println!(
        "{} writers paced to {} unique keys/s in all (each followed by an INCR), ballast {} \
         keys x {} B rewritten every round, node timeout {} ms. Wall time {:.0} s (setup \
         included), writers ran {:.0} s: {:.0} acknowledged SETs/s, each writer stalled \
         (> {} ms without an acknowledgement) {:.0} % of the time.\n",
        a.writers,
        a.keys_per_sec,
        a.ballast,
        a.value_len,
        a.node_timeout.as_millis(),
        soak.t0.elapsed().as_secs_f64(),
        writing.as_secs_f64(),
        t.acked as f64 / writing.as_secs_f64(),
        STALL.as_millis(),
        stalled_share(logs, writing) * 100.0
    );
    println!("| rounds | faults (during a migration) | data-node kills (slots at stake) | acknowledged writes: SET / INCR / ballast SET | lost outside killed slots | lost inside killed slots: SET / ballast | wrong or duplicated | client errors / requests | max write stall | emberctl runs (reruns) | migrations committed / aborted | nodes marked failed (not by a fault of theirs) | invariant violations |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "{}",
        row(&[
            soak.round.to_string(),
            format!("{} ({during})", soak.faults.len()),
            format!("{} ({at_stake})", soak.kills.len()),
            format!("{} / {} / {}", t.acked, t.incr_acked, b.checked),
            (t.lost_outside + b.lost_outside).to_string(),
            format!("{} / {}", t.lost_inside, b.lost_inside),
            (t.wrong + b.wrong + t.counters_bad).to_string(),
            format!("{errors} / {ops}"),
            secs(max_stall),
            format!("{} ({})", soak.ops.runs, soak.ops.reruns),
            format!("{} / {}", soak.ops.committed, soak.ops.aborted),
            format!(
                "{} ({})",
                failures.total(),
                failures.total() - failures.expected
            ),
            soak.violations.len().to_string(),
        ])
    );
    fault_table(soak, &by_kind);
    println!(
        "\nCounters: {} INCRs acknowledged, {} with unknown outcome (client errors), {} \
         counters reset by a kill of their slot, {} out of range. Unique keys whose every \
         try failed but that were stored anyway: {}. emberctl runs stopped after {} s: {}.",
        t.incr_acked,
        t.incr_unknown,
        t.counters_reset,
        t.counters_bad,
        t.unacked_present,
        ATTEMPT_LIMIT.as_secs(),
        soak.ops.stopped
    );
    println!(
        "\nNodes marked failed by the control plane (as `emberctl watch` saw it): {} in all; {} \
         during a kill or long stop of that node, {} during a short stop (< node timeout) of \
         it, {} during or just after a SIGSTOP of the control plane, {} just after a restart \
         of the control plane, {} unexplained{}.",
        failures.total(),
        failures.expected,
        failures.short_stop,
        failures.after_cp_stop,
        failures.after_cp_kill,
        failures.unexplained,
        if failures.examples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", failures.examples.join(", "))
        }
    );
    client_errors(soak, logs);
    longest_stalls(soak, logs);
    for v in &soak.violations {
        println!("\nVIOLATION: {v}");
    }
}

fn fault_table(soak: &Soak, by_kind: &StallsByKind) {
    println!(
        "\n| fault | struck | during a migration | longest write stall that began during it: \
         idle / during a migration |"
    );
    println!("|---|---|---|---|");
    let stall = |k, during| by_kind.get(&(k, during)).map_or("-".into(), |d| secs(*d));
    for kind in KINDS {
        let of_kind: Vec<&FaultRecord> = soak.faults.iter().filter(|f| f.kind == kind).collect();
        let during = of_kind.iter().filter(|f| f.during_migration).count();
        println!(
            "{}",
            row(&[
                kind.label().into(),
                of_kind.len().to_string(),
                during.to_string(),
                format!("{} / {}", stall(Some(kind), false), stall(Some(kind), true)),
            ])
        );
    }
    println!(
        "{}",
        row(&[
            "(far from every fault)".into(),
            "".into(),
            "".into(),
            stall(None, false),
        ])
    );
}

/// Copies the processes' logs and emberctl's outputs to target/soak-logs/seed-N.
fn keep_logs(soak: &Soak) {
    let dest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/soak-logs")
        .join(format!("seed-{}", soak.args.seed));
    let _ = std::fs::remove_dir_all(&dest);
    if let Err(e) = std::fs::create_dir_all(&dest) {
        eprintln!("cannot keep the logs in {}: {e}", dest.display());
        return;
    }
    for entry in std::fs::read_dir(soak.c.dir.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.path().is_file() {
            let _ = std::fs::copy(entry.path(), dest.join(entry.file_name()));
        }
    }
    eprintln!("logs kept in {}", dest.display());
}
