//! Rebalance 3 -> 4 nodes with KEYS keys (default 1,000,000) of 100-byte values, ember
//! (`emberctl join n4` + `emberctl rebalance`, live migrations) vs Redis 7
//! (`redis-cli --cluster add-node` + `redis-cli --cluster rebalance
//! --cluster-use-empty-masters`, MIGRATE-based). Meanwhile one client thread does GET/SET
//! on random keys through the `redis` crate's cluster client; we report its latency during
//! the move (and in the 2 s before it, as a baseline) and its errors. After the move the
//! key count is checked (no key lost or duplicated).
//!
//! Usage: cargo run --release -p ember-bench --bin rebalance [-- KEYS]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ember_bench::{
    client_load, cluster_info_field, command_line, connect, load_keys, ms, percentile, row,
    total_keys,
};
use ember_tests::{wait_until, TestCluster};

const VALUE_LEN: usize = 100;
const BASELINE: Duration = Duration::from_secs(2);
/// Upper bound on one system's rebalance (and the client thread's run).
const LIMIT: Duration = Duration::from_secs(1800);

struct Outcome {
    load: Duration,
    rebalance: Window,
    moved_slots: usize,
    keys_after: usize,
    hold_p99: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let keys: usize = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;

    let ember = ember(keys).context("ember")?;
    eprintln!("ember done: {:?}", ember.rebalance.took);
    let redis = redis(keys).context("redis")?;
    eprintln!("redis done: {:?}", redis.rebalance.took);

    println!("\n## Rebalance 3 -> 4 nodes, {keys} keys x {VALUE_LEN} B\n");
    println!("`{}`\n", command_line("rebalance"));
    println!("| system | load | rebalance wall time | slots moved | keys after | client p50 before | client p99 before | client p50 during | client p99 during | client max during | client errors | handoff hold p99 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, mut o) in [("ember", ember), ("redis 7", redis)] {
        let hold = o.hold_p99.take().unwrap_or_else(|| "n/a".into());
        let w = &mut o.rebalance;
        println!(
            "{}",
            row(&[
                name.into(),
                format!("{:.1} s", o.load.as_secs_f64()),
                format!("{:.2} s", w.took.as_secs_f64()),
                o.moved_slots.to_string(),
                o.keys_after.to_string(),
                ms(percentile(&mut w.baseline, 50.0)),
                ms(percentile(&mut w.baseline, 99.0)),
                ms(percentile(&mut w.during, 50.0)),
                ms(percentile(&mut w.during, 99.0)),
                ms(percentile(&mut w.during, 100.0)),
                format!("{} / {}", w.errors, w.during.len()),
                hold,
            ])
        );
    }
    Ok(())
}

/// What the client saw around an operation run by [`under_load`].
struct Window {
    /// The operation's wall time.
    took: Duration,
    /// Latencies during the [`BASELINE`] before it, and during it.
    baseline: Vec<Duration>,
    during: Vec<Duration>,
    /// Failed requests during it.
    errors: usize,
}

/// Runs `op` while a client reads and writes the cluster at `urls`, after [`BASELINE`]
/// of the same load without it.
fn under_load<R>(
    urls: Vec<String>,
    keys: usize,
    op: impl FnOnce() -> R,
) -> anyhow::Result<(R, Window)> {
    let stop = Arc::new(AtomicBool::new(false));
    let client = client_load(urls, keys, VALUE_LEN, stop.clone(), LIMIT);
    std::thread::sleep(BASELINE);
    let t0 = Instant::now();
    let out = op();
    let t1 = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (began, samples) = client.join().expect("client thread")?;
    let (from, to) = (t0 - began, t1 - began);
    let mut w = Window {
        took: t1 - t0,
        baseline: vec![],
        during: vec![],
        errors: 0,
    };
    for (at, lat, ok) in samples {
        if at < from {
            w.baseline.push(lat);
        } else if at <= to {
            w.during.push(lat);
            w.errors += usize::from(!ok);
        }
    }
    Ok((out, w))
}

fn ember(keys: usize) -> anyhow::Result<Outcome> {
    let mut c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", Duration::from_secs(30));
    let t = Instant::now();
    load_keys(c.specs[0].port, keys, VALUE_LEN)?;
    let load = t.elapsed();
    let ports: Vec<u16> = c.specs.iter().map(|s| s.port).collect();
    anyhow::ensure!(total_keys(&ports)? == keys, "load incomplete");

    c.add_node();
    c.wait("n4 registered", Duration::from_secs(30), |c| {
        let p = c.ctl_json(&["pending"])?;
        Ok(p.to_string().contains("n4"))
    });
    c.ctl_ok(&["join", "n4"]);
    c.wait_all_info("cluster_state", "ok", Duration::from_secs(30));
    let ports: Vec<u16> = c.specs.iter().map(|s| s.port).collect();

    let urls = c.specs.iter().map(|s| s.url()).collect();
    let (out, rebalance) = under_load(urls, keys, || c.ctl(&["rebalance"]))?;
    if !out.status.success() {
        c.dump_logs();
        bail!(
            "emberctl rebalance failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let keys_after = total_keys(&ports)?;
    let n4_slots = cluster_slots_of(ports[3])?;
    // Handoff hold statistics (INFO cluster `migration_hold_*`), one value per source
    // node that held writes.
    let mut holds = Vec::new();
    for &p in &ports {
        let info: String = redis::cmd("INFO")
            .arg("everything")
            .query(&mut connect(p)?)?;
        for l in info.lines().filter(|l| l.contains("hold")) {
            eprintln!("INFO :{p}: {l}");
        }
        let p99 = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("migration_hold_p99_ms:"));
        if let Some(v) = p99.and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0) {
            holds.push(v);
        }
    }
    let hold_p99 = (!holds.is_empty()).then(|| {
        let list: Vec<String> = holds.iter().map(|v| format!("{v:.1}")).collect();
        format!(
            "{:.1} ms (per source node: {})",
            holds.iter().copied().fold(0.0, f64::max),
            list.join(", ")
        )
    });
    Ok(Outcome {
        load,
        rebalance,
        moved_slots: n4_slots,
        keys_after,
        hold_p99,
    })
}

/// How many slots the node at `port` owns, by its own `CLUSTER SLOTS`.
fn cluster_slots_of(port: u16) -> anyhow::Result<usize> {
    Ok(ember_bench::slot_ranges(&mut connect(port)?)?
        .iter()
        .filter(|(_, _, p)| *p == port)
        .map(|(lo, hi, _)| usize::from(hi - lo) + 1)
        .sum())
}

fn redis_cli(args: &[String]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli").args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() || text.contains("[ERR]") {
        bail!(
            "redis-cli {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(text)
}

fn redis(keys: usize) -> anyhow::Result<Outcome> {
    let rc = ember_bench::RedisCluster::start(4, 5000)?;
    rc.create(3)?;
    let t = Instant::now();
    load_keys(rc.ports[0], keys, VALUE_LEN)?;
    let load = t.elapsed();
    anyhow::ensure!(total_keys(&rc.ports)? == keys, "load incomplete");

    redis_cli(&[
        "--cluster".into(),
        "add-node".into(),
        rc.addr(3),
        rc.addr(0),
    ])?;
    // rebalance refuses to run until every node agrees on the configuration.
    wait_until("4 redis nodes agree", Duration::from_secs(60), || {
        for &p in &rc.ports {
            if cluster_info_field(p, "cluster_known_nodes")? != "4"
                || cluster_info_field(p, "cluster_state")? != "ok"
            {
                return Ok(false);
            }
        }
        Ok(redis_cli(&["--cluster".into(), "check".into(), rc.addr(0)]).is_ok())
    })?;

    let urls = rc
        .ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let (res, rebalance) = under_load(urls, keys, || {
        redis_cli(&[
            "--cluster".into(),
            "rebalance".into(),
            rc.addr(0),
            "--cluster-use-empty-masters".into(),
        ])
    })?;
    res?;
    let keys_after = total_keys(&rc.ports)?;
    Ok(Outcome {
        load,
        rebalance,
        moved_slots: cluster_slots_of(rc.ports[3])?,
        keys_after,
        hold_p99: None,
    })
}
