//! Snapshot save and restart times, ember vs redis-server (issue 14): N keys of mixed
//! types (strings of 100 bytes, small hashes, lists, sets, sorted sets; a third with a
//! TTL) loaded into both, then `SAVE` timed on each, then each restarted from its file
//! and timed until it answers `DBSIZE` with every key (Redis answers `LOADING` while it
//! loads; ember listens once it has loaded).
//!
//! Usage: `cargo build --release -p ember-data-node -p ember-control-plane -p emberctl
//! -p ember-bench && target/release/snapshot [--keys N]`

use std::time::{Duration, Instant};

use anyhow::bail;
use ember_bench::complexity::servers::{Servers, Sys};

fn connect(port: u16) -> anyhow::Result<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection()?;
    Ok(c)
}

/// Waits until the server on `port` answers `DBSIZE` with `keys`: the time it took.
fn until_loaded(port: u16, keys: u64, began: Instant) -> anyhow::Result<Duration> {
    loop {
        if let Ok(mut c) = connect(port) {
            if let Ok(n) = redis::cmd("DBSIZE").query::<u64>(&mut c) {
                if n >= keys {
                    return Ok(began.elapsed());
                }
            }
        }
        if began.elapsed() > Duration::from_secs(300) {
            bail!("not loaded after 300 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fill(port: u16, n: u64) -> anyhow::Result<()> {
    let mut c = connect(port)?;
    let value = [b'v'; 100];
    let mut pipe = redis::pipe();
    for i in 0..n {
        let k = format!("key:{{{}}}:{i}", i % 16384);
        match i % 5 {
            0 | 1 => pipe.cmd("SET").arg(&k).arg(&value[..]),
            2 => pipe
                .cmd("HSET")
                .arg(&k)
                .arg("a")
                .arg(i)
                .arg("b")
                .arg(&value[..20]),
            3 => pipe.cmd("RPUSH").arg(&k).arg(i).arg("x").arg("y"),
            _ => pipe.cmd("ZADD").arg(&k).arg(1).arg("m").arg(2).arg(i),
        };
        pipe.ignore();
        if i % 3 == 0 {
            pipe.cmd("EXPIRE").arg(&k).arg(86_400).ignore();
        }
        if i % 1000 == 999 || i + 1 == n {
            let _: () = pipe.query(&mut c)?;
            pipe = redis::pipe();
        }
    }
    Ok(())
}

fn save(port: u16) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let _: () = redis::cmd("SAVE").query(&mut connect(port)?)?;
    Ok(began.elapsed())
}

fn main() -> anyhow::Result<()> {
    let keys = ember_bench::flag("--keys", 1_000_000);
    let mut servers = Servers::start()?;
    let mut rows = Vec::new();
    for (sys, file) in [(Sys::Redis, "dump.rdb"), (Sys::Ember, "n1/dump.ember")] {
        let port = servers.get(sys).port;
        fill(port, keys)?;
        let took = save(port)?;
        let size = std::fs::metadata(servers.dir().join(file))?.len();
        let began = Instant::now();
        servers.restart(sys)?;
        let loaded = until_loaded(port, keys, began)?;
        rows.push((sys, took, size, loaded));
    }
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1048576.0);
    println!("\n## Snapshots: {keys} keys\n");
    println!("`target/release/snapshot --keys {keys}`: 40 % strings of 100 B, 20 % hashes, lists and sorted sets each; a third with a TTL. `SAVE` timed on each; then each restarted from its file (kill -9, start), timed until `DBSIZE` answers every key.\n");
    println!("| server | SAVE | file | restart until every key is served |");
    println!("|---|---|---|---|");
    for (sys, took, size, loaded) in &rows {
        println!(
            "| {} | {} | {} | {} |",
            sys.name(),
            secs(*took),
            mb(*size),
            secs(*loaded)
        );
    }
    let (r, e) = (&rows[0], &rows[1]);
    println!(
        "\nember / redis: SAVE {:.2}, restart {:.2}",
        e.1.as_secs_f64() / r.1.as_secs_f64(),
        e.3.as_secs_f64() / r.3.as_secs_f64()
    );
    Ok(())
}
