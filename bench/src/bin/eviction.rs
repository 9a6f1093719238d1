//! Issue 14's eviction benchmarks, ember vs redis-server side by side (fresh servers
//! for each case, the same `CONFIG SET` on both):
//!
//! - **Hit ratio under eviction**: `maxmemory 100mb`, a key space five times larger
//!   (1,000-byte values), Zipf-distributed `GET`s (exponent 0.99, seeded) with a `SET`
//!   on every miss, as a cache is used; `allkeys-lru` and `allkeys-lfu`. A warm-up pass,
//!   then a measured one: hit ratio and throughput.
//! - **Resident set under eviction**: `maxmemory 64mb`, `allkeys-lru`, 640 MB of new
//!   keys of mixed sizes (64 B - 64 KB, log-uniform): how much the resident set grows
//!   over the limit.
//!
//! Usage: `cargo build --release -p ember-data-node -p ember-control-plane -p emberctl
//! -p ember-bench && target/release/eviction [--ops N] [--clients N]`

use std::time::Instant;

use anyhow::Context;
use ember_bench::complexity::servers::{Server, Servers, Sys};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MB: u64 = 1024 * 1024;

fn connect(s: &Server) -> anyhow::Result<redis::Connection> {
    Ok(redis::Client::open(format!("redis://127.0.0.1:{}/", s.port))?.get_connection()?)
}

fn config(s: &Server, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut c = connect(s)?;
    for (k, v) in pairs {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(*k)
            .arg(*v)
            .query(&mut c)?;
    }
    Ok(())
}

fn info_field(s: &Server, section: &str, field: &str) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(&mut connect(s)?)?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {field}"))
}

/// The cumulative distribution of a Zipf law over `n` ranks.
fn zipf_cdf(n: usize, exponent: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for k in 1..=n {
        sum += 1.0 / (k as f64).powf(exponent);
        cdf.push(sum);
    }
    cdf.iter_mut().for_each(|c| *c /= sum);
    cdf
}

/// `ops` GET-or-SET operations from `clients` threads: (hits, misses, seconds).
fn cache_run(
    s: &Server,
    cdf: &[f64],
    ops: u64,
    clients: u64,
    seed: u64,
) -> anyhow::Result<(u64, u64, f64)> {
    let began = Instant::now();
    let results: Vec<anyhow::Result<(u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<(u64, u64)> {
                    let mut c = connect(s)?;
                    let mut rng = StdRng::seed_from_u64(seed * 1000 + t);
                    let value = vec![b'v'; 1000];
                    let (mut hits, mut misses) = (0, 0);
                    for _ in 0..ops / clients {
                        let u: f64 = rng.random();
                        let rank = cdf.partition_point(|&c| c < u);
                        let key = format!("key:{rank}");
                        let got: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut c)?;
                        match got {
                            Some(_) => hits += 1,
                            None => {
                                misses += 1;
                                let _: () =
                                    redis::cmd("SET").arg(&key).arg(&value[..]).query(&mut c)?;
                            }
                        }
                    }
                    Ok((hits, misses))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let (mut hits, mut misses) = (0, 0);
    for r in results {
        let (h, m) = r?;
        hits += h;
        misses += m;
    }
    Ok((hits, misses, began.elapsed().as_secs_f64()))
}

/// Resident-set growth over the start while 640 MB of mixed sizes go through a 64 MB
/// limit: (growth, peak used_memory).
fn pressure(s: &Server) -> anyhow::Result<(u64, u64)> {
    config(
        s,
        &[("maxmemory", "64mb"), ("maxmemory-policy", "allkeys-lru")],
    )?;
    let mut c = connect(s)?;
    let before = ember_bench::rss_bytes(s.pid);
    let mut rng = StdRng::seed_from_u64(14);
    let payload = vec![b'x'; 64 * 1024];
    let (mut written, mut n, mut peak, mut peak_used, mut batches) = (0u64, 0u64, 0, 0, 0);
    while written < 640 * MB {
        let mut pipe = redis::pipe();
        for _ in 0..32 {
            let size = 2f64.powf(rng.random_range(6.0..16.0)) as usize;
            pipe.cmd("SET")
                .arg(format!("p:{n}"))
                .arg(&payload[..size])
                .ignore();
            written += size as u64;
            n += 1;
        }
        let _: () = pipe.query(&mut c)?;
        peak = peak.max(ember_bench::rss_bytes(s.pid));
        batches += 1;
        if batches % 20 == 0 {
            peak_used = peak_used.max(info_field(s, "memory", "used_memory")?);
        }
    }
    Ok((peak.saturating_sub(before), peak_used))
}

fn main() -> anyhow::Result<()> {
    let ops = ember_bench::flag("--ops", 400_000);
    let clients = ember_bench::flag("--clients", 8);
    let keys = 500_000;
    let cdf = zipf_cdf(keys, 0.99);
    println!("\n## Eviction (date: see the commit; one run each, redis then ember)\n");
    println!("`target/release/eviction --ops {ops} --clients {clients}`: maxmemory 100mb, {keys} keys of 1,000 bytes (5x the limit), Zipf 0.99 GETs with SET on miss, {clients} clients; warm-up pass of {ops} operations, then a measured pass of {ops}.\n");
    println!("| policy | redis hit ratio | ember hit ratio | redis ops/s | ember ops/s | ember / redis | redis evicted | ember evicted |");
    println!("|---|---|---|---|---|---|---|---|");
    for policy in ["allkeys-lru", "allkeys-lfu"] {
        let servers = Servers::start()?;
        let mut cells = Vec::new();
        for sys in [Sys::Redis, Sys::Ember] {
            let s = servers.get(sys);
            config(s, &[("maxmemory", "100mb"), ("maxmemory-policy", policy)])?;
            cache_run(s, &cdf, ops, clients, 1)?;
            let (hits, misses, secs) = cache_run(s, &cdf, ops, clients, 2)?;
            let evicted = info_field(s, "stats", "evicted_keys")?;
            cells.push((
                hits as f64 / (hits + misses) as f64,
                (hits + misses) as f64 / secs,
                evicted,
            ));
        }
        let (r, e) = (cells[0], cells[1]);
        println!(
            "| {policy} | {:.3} | {:.3} | {:.0} | {:.0} | {:.2} | {} | {} |",
            r.0,
            e.0,
            r.1,
            e.1,
            e.1 / r.1,
            r.2,
            e.2
        );
    }
    println!("\nResident set under eviction: maxmemory 64mb, allkeys-lru, 640 MB of new keys of 64 B - 64 KB (log-uniform, seeded), 32 to a pipeline.\n");
    println!("| server | RSS growth | growth / maxmemory | peak used_memory |");
    println!("|---|---|---|---|");
    let servers = Servers::start()?;
    for sys in [Sys::Redis, Sys::Ember] {
        let (growth, used) = pressure(servers.get(sys))?;
        println!(
            "| {} | {:.1} MB | {:.2} | {:.1} MB |",
            sys.name(),
            growth as f64 / MB as f64,
            growth as f64 / (64 * MB) as f64,
            used as f64 / MB as f64
        );
    }
    Ok(())
}
