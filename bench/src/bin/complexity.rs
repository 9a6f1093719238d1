//! Time complexity, ember vs redis-server side by side: for every command family, the
//! throughput of each command at collection sizes 10, 1,000, 100,000 and 1,000,000
//! (one key of each type with `n` elements, plus `n` string keys), and the memory each
//! type takes at the largest size. See `bench/src/complexity/` for what is measured.
//!
//! ```text
//! cargo build --release -p ember-data-node -p ember-control-plane -p emberctl -p ember-bench
//! target/release/complexity [FLAGS]
//! ```
//!
//! (It runs the data node, control plane and emberctl found next to itself and never
//! runs cargo: the ember-tests harness would rebuild them with another feature set.)
//!
//! - `--sizes 10,1000,100000,1000000` the collection sizes
//! - `--secs 0.6` time per round and server
//! - `--rounds 3` rounds per cell, each A B B A; the round with the median ratio is
//!   reported
//! - `--conns 10` concurrent connections per cell, each a request/response loop
//! - `--seed 1` seeds the element picks (the same on both servers)
//! - `--only TEXT` only the commands whose name contains TEXT
//! - `--memory-n N` elements per type for the memory table (default: the largest size;
//!   0 skips it)

use std::time::Duration;

use anyhow::{bail, Context};
use ember_bench::complexity::{report, run, Config};

fn parse() -> anyhow::Result<Config> {
    let mut cfg = Config {
        sizes: vec![10, 1000, 100_000, 1_000_000],
        duration: Duration::from_millis(600),
        conns: 10,
        rounds: 3,
        seed: 1,
        only: None,
        memory_n: None,
    };
    let mut memory_n = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag} {value}: not a number");
        match flag.as_str() {
            "--sizes" => {
                cfg.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(bad)?;
                if cfg.sizes.contains(&0) {
                    bail!("--sizes: every size must be at least 1");
                }
            }
            "--secs" => cfg.duration = Duration::from_secs_f64(value.parse().with_context(bad)?),
            "--conns" => cfg.conns = value.parse::<usize>().with_context(bad)?.max(1),
            "--rounds" => cfg.rounds = value.parse::<usize>().with_context(bad)?.max(1),
            "--seed" => cfg.seed = value.parse().with_context(bad)?,
            "--only" => cfg.only = Some(value),
            "--memory-n" => memory_n = Some(value.parse::<usize>().with_context(bad)?),
            _ => bail!("unknown flag {flag} (see the doc comment of bench/src/bin/complexity.rs)"),
        }
    }
    cfg.memory_n = match memory_n {
        Some(0) => None,
        Some(n) => Some(n),
        None => cfg.sizes.iter().max().copied(),
    };
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let cfg = parse()?;
    let began = std::time::Instant::now();
    let results = run(&cfg)?;
    let date = |args: &[&str]| {
        std::process::Command::new("date")
            .arg("-u")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    // A stale data node binary would measure old code: say when it was built.
    let node = ember_bench::complexity::servers::bin("ember-data-node")?;
    let built = date(&["-r", &node.display().to_string(), "+%F %T UTC"]);
    let header = format!(
        "`{}` (date: {}; ember {} (ember-data-node built {built}), redis-server {}; {} connections per cell, each a request/response loop, {} rounds per cell of {:.1} s per server, the servers alternating, the median round reported; run time {:.0} s)",
        std::iter::once("target/release/complexity".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        date(&["+%F"]),
        results.versions.0,
        results.versions.1,
        cfg.conns,
        cfg.rounds,
        cfg.duration.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
    report::print(&results, &header);
    Ok(())
}
