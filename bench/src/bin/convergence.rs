//! Topology convergence and failure detection, ember (control plane) vs Redis 7 (gossip).
//!
//! Convergence: 3 nodes, one empty slot moved back and forth between two nodes CHANGES
//! times (default 100). ember: `emberctl assign nX SLOT` (a live migration with its
//! handoff, committed by the control plane); every node's `CLUSTER SLOTS` is polled in a
//! tight loop over persistent connections from the moment the command is issued, and we
//! record when the last node shows the new owner, both from the issue and from
//! emberctl's return. Redis: the redis-cli way of finishing a migration of an empty slot
//! (`SETSLOT IMPORTING` on B, `SETSLOT MIGRATING` on A, `SETSLOT NODE B` on B, which bumps
//! B's epoch and broadcasts a pong, then on A; the third node learns it by gossip), and
//! a pure gossip variant (`SETSLOT NODE B` on B, `CLUSTER BUMPEPOCH` on B, `SETSLOT NODE
//! B` on A: no broadcast, the third node learns it from the periodic pings).
//!
//! Failure detection: kill -9 of one node, time until every other node's `CLUSTER NODES`
//! flags it `fail`; RUNS runs (default 5), the node restarted in between. Both systems
//! use a 1000 ms node timeout.
//!
//! Usage: cargo run --release -p ember-bench --bin convergence [-- CHANGES [RUNS]]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ember_bench::{
    cluster_info_field, command_line, connect, ms, node_flags, percentile, row, slot_owner_port,
    RedisCluster,
};
use ember_tests::{bin, wait_until, TestCluster};

const NODE_TIMEOUT_MS: u64 = 1000;
const SLOT: u16 = 0;
/// Upper bound on one change's convergence or one failure detection.
const LIMIT: Duration = Duration::from_secs(15);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let changes: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let runs: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;

    let ember = ember_all(changes, runs).context("ember")?;
    let redis = redis_all(changes, runs).context("redis")?;

    println!("\n## Topology convergence ({changes} slot moves, 3 nodes, node timeout {NODE_TIMEOUT_MS} ms)\n");
    println!("`{}`\n", command_line("convergence"));
    println!("| system / path | issue -> all nodes p50 | p99 | max | committed -> all nodes p50 | p99 | first node -> all nodes p50 | p99 | not converged in 15 s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut lines = vec![("ember: emberctl assign (live migration)", ember.conv)];
    lines.push(("redis: IMPORTING/MIGRATING + SETSLOT NODE", redis.conv_cli));
    lines.push((
        "redis: SETSLOT NODE + BUMPEPOCH (gossip)",
        redis.conv_gossip,
    ));
    let mut p99s = Vec::new();
    let mut spread99 = Vec::new();
    for (name, mut s) in lines {
        p99s.push(percentile(&mut s.from_issue, 99.0));
        spread99.push(percentile(&mut s.spread, 99.0));
        println!(
            "{}",
            row(&[
                name.to_string(),
                ms(percentile(&mut s.from_issue, 50.0)),
                ms(percentile(&mut s.from_issue, 99.0)),
                ms(percentile(&mut s.from_issue, 100.0)),
                ms(percentile(&mut s.from_commit, 50.0)),
                ms(percentile(&mut s.from_commit, 99.0)),
                ms(percentile(&mut s.spread, 50.0)),
                ms(percentile(&mut s.spread, 99.0)),
                s.stuck.to_string(),
            ])
        );
    }
    let ratio = |r: Duration| r.as_secs_f64() / p99s[0].as_secs_f64().max(1e-9);
    println!(
        "\nRedis p99 / ember p99 (issue -> all nodes): {:.1}x (redis-cli path), {:.1}x (gossip path)",
        ratio(p99s[1]),
        ratio(p99s[2])
    );
    let ratio = |r: Duration| r.as_secs_f64() / spread99[0].as_secs_f64().max(1e-9);
    println!(
        "Redis p99 / ember p99 (first node -> all nodes, i.e. propagation of a committed change): {:.1}x (redis-cli path), {:.1}x (gossip path)",
        ratio(spread99[1]),
        ratio(spread99[2])
    );
    println!(
        "emberctl process overhead (median wall time of `emberctl status`): {}",
        ms(ember.ctl_overhead)
    );

    println!("\n## Failure detection (kill -9 -> `fail` on every other node, {runs} runs, node timeout {NODE_TIMEOUT_MS} ms)\n");
    println!("`{}`\n", command_line("convergence"));
    println!("| system | runs (ms) | p50 | max |");
    println!("|---|---|---|---|");
    for (name, mut d) in [("ember", ember.detect), ("redis 7", redis.detect)] {
        let list: Vec<String> = d
            .iter()
            .map(|x| format!("{:.0}", x.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "{}",
            row(&[
                name.to_string(),
                list.join(", "),
                ms(percentile(&mut d, 50.0)),
                ms(percentile(&mut d, 100.0)),
            ])
        );
    }
    Ok(())
}

#[derive(Default)]
struct Conv {
    from_issue: Vec<Duration>,
    from_commit: Vec<Duration>,
    /// From the first node showing the new owner to the last.
    spread: Vec<Duration>,
    /// Changes that had not reached every node after `LIMIT` (excluded from the times).
    stuck: usize,
}

struct EmberResult {
    conv: Conv,
    detect: Vec<Duration>,
    ctl_overhead: Duration,
}

struct RedisResult {
    conv_cli: Conv,
    conv_gossip: Conv,
    detect: Vec<Duration>,
}

/// Polls every connection's `CLUSTER SLOTS` until all show `port` as `SLOT`'s owner;
/// returns the instant the last one did. `done` is polled alongside (the command that
/// makes the change, if it runs concurrently).
fn poll_owner(
    conns: &mut [redis::Connection],
    port: u16,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<(Instant, Instant)> {
    let start = Instant::now();
    let mut seen: Vec<Option<Instant>> = vec![None; conns.len()];
    let mut finished = false;
    loop {
        for (i, c) in conns.iter_mut().enumerate() {
            if seen[i].is_none() && slot_owner_port(c, SLOT)? == Some(port) {
                seen[i] = Some(Instant::now());
            }
        }
        if !finished {
            finished = done()?;
        }
        if finished && seen.iter().all(Option::is_some) {
            let first = seen.iter().flatten().min().copied().unwrap();
            return Ok((first, seen.into_iter().flatten().max().unwrap()));
        }
        if start.elapsed() > LIMIT {
            bail!("slot {SLOT} not shown as owned by :{port} everywhere after {LIMIT:?}: {seen:?}");
        }
    }
}

fn ember_all(changes: usize, runs: usize) -> anyhow::Result<EmberResult> {
    let mut c = TestCluster::start(3, Duration::from_millis(NODE_TIMEOUT_MS));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", Duration::from_secs(30));
    let ports: Vec<u16> = c.specs.iter().map(|s| s.port).collect();
    let mut conns = ports
        .iter()
        .map(|p| connect(*p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(slot_owner_port(&mut conns[0], SLOT)? == Some(ports[0]));

    let mut overhead = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        c.ctl_ok(&["status"]);
        overhead.push(t.elapsed());
    }

    let mut conv = Conv::default();
    for k in 0..changes {
        let target = if k % 2 == 0 { 1 } else { 0 };
        let t0 = Instant::now();
        let mut child = Command::new(bin("emberctl"))
            .args(["--control-plane", &c.cp_url(), "assign"])
            .arg(&c.specs[target].name)
            .arg(SLOT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut returned = None;
        let last = poll_owner(&mut conns, ports[target], || {
            if let Some(status) = child.try_wait()? {
                returned = Some(Instant::now());
                if !status.success() {
                    bail!("emberctl assign failed: {status}");
                }
                return Ok(true);
            }
            Ok(false)
        });
        if last.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (first, last) = last?;
        conv.spread.push(last - first);
        conv.from_issue.push(last - t0);
        conv.from_commit
            .push(last.saturating_duration_since(returned.unwrap()));
    }

    let mut detect = Vec::new();
    for run in 0..runs {
        c.nodes[2].kill();
        let t0 = Instant::now();
        if let Err(e) = wait_fail(&ports[..2], ports[2]) {
            c.dump_logs();
            return Err(e.context(format!("failure detection run {run}")));
        }
        detect.push(t0.elapsed());
        c.restart_node(2);
        wait_recovered(&ports, ports[2])?;
    }
    Ok(EmberResult {
        conv,
        detect,
        ctl_overhead: percentile(&mut overhead, 50.0),
    })
}

/// Polls the `CLUSTER NODES` of `observers` until each flags the node at `dead` `fail`.
fn wait_fail(observers: &[u16], dead: u16) -> anyhow::Result<()> {
    let mut conns = observers
        .iter()
        .map(|p| connect(*p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut seen = vec![false; conns.len()];
    while !seen.iter().all(|s| *s) {
        for (i, c) in conns.iter_mut().enumerate() {
            if !seen[i] && node_flags(c, dead)?.split(',').any(|f| f == "fail") {
                seen[i] = true;
            }
        }
        if start.elapsed() > LIMIT {
            let mut views = Vec::new();
            for c in conns.iter_mut() {
                views.push(redis::cmd("CLUSTER").arg("NODES").query::<String>(c)?);
            }
            bail!("node :{dead} not flagged fail everywhere after {LIMIT:?}; CLUSTER NODES: {views:#?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Waits until every node is `cluster_state:ok` and none flags `back` as failing.
fn wait_recovered(ports: &[u16], back: u16) -> anyhow::Result<()> {
    wait_until("cluster recovered", Duration::from_secs(60), || {
        for &p in ports {
            if cluster_info_field(p, "cluster_state")? != "ok" {
                return Ok(false);
            }
            if node_flags(&mut connect(p)?, back)?.contains("fail") {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

fn setslot(port: u16, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SETSLOT").arg(SLOT);
    for a in args {
        cmd.arg(*a);
    }
    let _: String = cmd
        .query(&mut connect(port)?)
        .with_context(|| format!("CLUSTER SETSLOT {SLOT} {} on :{port}", args.join(" ")))?;
    Ok(())
}

fn redis_all(changes: usize, runs: usize) -> anyhow::Result<RedisResult> {
    let mut rc = RedisCluster::start(3, NODE_TIMEOUT_MS)?;
    rc.create(3)?;
    let ports = rc.ports.clone();
    let ids = (0..3)
        .map(|i| rc.id(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut conns = ports
        .iter()
        .map(|p| connect(*p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Wait until every node agrees on the initial owner.
    wait_until("initial slot owner", Duration::from_secs(30), || {
        let mut all = true;
        for c in conns.iter_mut() {
            all &= slot_owner_port(c, SLOT)? == Some(ports[0]);
        }
        Ok(all)
    })?;

    let mut results = [Conv::default(), Conv::default()];
    // One node other than A and B stays the gossip-only observer: moves alternate
    // between 0 and 1, node 2 learns every change from them.
    for (variant, conv) in results.iter_mut().enumerate() {
        for k in 0..changes {
            let (a, b) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
            let t0 = Instant::now();
            if variant == 0 {
                setslot(ports[b], &["IMPORTING", &ids[a]])?;
                setslot(ports[a], &["MIGRATING", &ids[b]])?;
                setslot(ports[b], &["NODE", &ids[b]])?;
                setslot(ports[a], &["NODE", &ids[b]])?;
            } else {
                setslot(ports[b], &["NODE", &ids[b]])?;
                let _: String = redis::cmd("CLUSTER")
                    .arg("BUMPEPOCH")
                    .query(&mut connect(ports[b])?)?;
                setslot(ports[a], &["NODE", &ids[b]])?;
            }
            let t1 = Instant::now();
            let (first, last) = match poll_owner(&mut conns, ports[b], || Ok(true)) {
                Ok(v) => v,
                Err(e) => {
                    // Did not converge: say why, count it, and finish it the way
                    // redis-cli does (SETSLOT NODE on every node) so the run can go on.
                    eprintln!("redis variant {variant} change {k}: {e:#}");
                    for (i, c) in conns.iter_mut().enumerate() {
                        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(c)?;
                        eprintln!("CLUSTER NODES of node {i}:\n{nodes}");
                    }
                    conv.stuck += 1;
                    for &p in &ports {
                        setslot(p, &["NODE", &ids[b]])?;
                    }
                    poll_owner(&mut conns, ports[b], || Ok(true))?;
                    continue;
                }
            };
            conv.spread.push(last - first);
            conv.from_issue.push(last - t0);
            conv.from_commit.push(last - t1);
        }
        // Both variants start with node 0 owning the slot.
        if changes % 2 == 1 {
            let (a, b) = (1, 0);
            setslot(ports[b], &["IMPORTING", &ids[a]])?;
            setslot(ports[a], &["MIGRATING", &ids[b]])?;
            setslot(ports[b], &["NODE", &ids[b]])?;
            setslot(ports[a], &["NODE", &ids[b]])?;
            poll_owner(&mut conns, ports[0], || Ok(true))?;
        }
    }
    let [conv_cli, conv_gossip] = results;

    let mut detect = Vec::new();
    for _ in 0..runs {
        rc.kill(2);
        let t0 = Instant::now();
        wait_fail(&ports[..2], ports[2])?;
        detect.push(t0.elapsed());
        rc.spawn(2)?;
        wait_recovered(&ports, ports[2])?;
    }
    Ok(RedisResult {
        conv_cli,
        conv_gossip,
        detect,
    })
}
