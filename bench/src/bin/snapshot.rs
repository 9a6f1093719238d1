//! Snapshot save and restart times, ember vs redis-server (issue 14): N keys of mixed
//! types (strings of 100 bytes, small hashes, lists, sets, sorted sets; a third with a
//! TTL) loaded into both, then `SAVE` timed on each, then each restarted from its file
//! and timed until it answers `DBSIZE` with every key (Redis answers `LOADING` while it
//! loads; ember listens once it has loaded).
//!
//! Usage: `cargo build --release -p ember-data-node -p ember-control-plane -p emberctl
//! -p ember-bench && target/release/snapshot [--keys N]`

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ember_bench::complexity::servers::bin;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {:?}", cmd.get_program()))
}

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
    let keys = arg("--keys", 1_000_000);
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    // redis-server, with its dump.rdb in `d/redis`.
    std::fs::create_dir_all(d.join("redis"))?;
    let rport = ember_tests::free_port();
    let redis_cmd = || {
        let mut c = Command::new("redis-server");
        c.args(["--port", &rport.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(d.join("redis"));
        c
    };
    let mut redis = spawn(&mut redis_cmd(), &d.join("redis.log"))?;
    until_loaded(rport, 0, Instant::now())?;
    fill(rport, keys)?;
    let redis_save = save(rport)?;
    let redis_file = std::fs::metadata(d.join("redis/dump.rdb"))?.len();
    redis.kill()?;
    redis.wait()?;
    let began = Instant::now();
    let mut redis = spawn(&mut redis_cmd(), &d.join("redis2.log"))?;
    let redis_load = until_loaded(rport, keys, began)?;
    redis.kill()?;

    // ember: a control plane and one node owning every slot.
    let cp_url = format!("http://127.0.0.1:{}", ember_tests::free_port());
    let mut cp = spawn(
        Command::new(bin("ember-control-plane")?)
            .args(["--listen", cp_url.trim_start_matches("http://")])
            .arg("--data-dir")
            .arg(d.join("cp")),
        &d.join("cp.log"),
    )?;
    let eport = ember_tests::free_port();
    let iport = ember_tests::free_port();
    let node_cmd = || -> anyhow::Result<Command> {
        let mut c = Command::new(bin("ember-data-node")?);
        c.args([
            "--port",
            &eport.to_string(),
            "--internal-port",
            &iport.to_string(),
        ])
        .args(["--control-plane", &cp_url, "--name", "n1"])
        .arg("--data-dir")
        .arg(d.join("n1"));
        Ok(c)
    };
    let mut node = spawn(&mut node_cmd()?, &d.join("n1.log"))?;
    let out = Command::new(bin("emberctl")?)
        .args([
            "--control-plane",
            &cp_url,
            "bootstrap",
            "--wait",
            "30s",
            "n1",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "emberctl bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let began = Instant::now();
    loop {
        let ok = connect(eport).ok().and_then(|mut c| {
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut c)
                .ok()
        });
        if ok.is_some_and(|i| i.contains("cluster_state:ok")) {
            break;
        }
        if began.elapsed() > Duration::from_secs(30) {
            bail!("ember not ok after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fill(eport, keys)?;
    let ember_save = save(eport)?;
    let ember_file = std::fs::metadata(d.join("n1/dump.ember"))?.len();
    node.kill()?;
    node.wait()?;
    let began = Instant::now();
    let mut node = spawn(&mut node_cmd()?, &d.join("n1b.log"))?;
    let ember_load = until_loaded(eport, keys, began)?;
    node.kill()?;
    cp.kill()?;

    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1048576.0);
    println!("\n## Snapshots: {keys} keys (date: see the commit)\n");
    println!("`target/release/snapshot --keys {keys}`: 40 % strings of 100 B, 20 % hashes, lists and sorted sets each; a third with a TTL. `SAVE` timed on each; then each restarted from its file, timed until `DBSIZE` answers every key.\n");
    println!("| server | SAVE | file | restart until every key is served |");
    println!("|---|---|---|---|");
    println!(
        "| redis (RDB) | {} | {} | {} |",
        secs(redis_save),
        mb(redis_file),
        secs(redis_load)
    );
    println!(
        "| ember | {} | {} | {} |",
        secs(ember_save),
        mb(ember_file),
        secs(ember_load)
    );
    println!(
        "\nember / redis: SAVE {:.2}, restart {:.2}",
        ember_save.as_secs_f64() / redis_save.as_secs_f64(),
        ember_load.as_secs_f64() / redis_load.as_secs_f64()
    );
    Ok(())
}
