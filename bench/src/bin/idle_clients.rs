//! Memory of idle client connections: RSS of a data node and of redis-server before and
//! after N clients connect and PING, and after each of them also ECHOes an 8 KiB
//! argument (so that every connection has used its read and write buffers) and goes
//! idle again.
//!
//! `cargo run --release -p ember-bench --bin idle_clients [-- N]` (default 10,000).
//! `EMBER_DATA_NODE=path` measures another ember-data-node binary (e.g. an older build).
//! The data node runs without a control plane: PING and ECHO need no topology.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use ember_bench::{command_line, row, rss_bytes};

/// Sends `cmd` on every connection, then reads each reply (`expect` bytes).
fn round(conns: &mut [TcpStream], cmd: &[u8], expect: usize) -> anyhow::Result<()> {
    for chunk in conns.chunks_mut(256) {
        for c in chunk.iter_mut() {
            c.write_all(cmd)?;
        }
        let mut buf = vec![0u8; expect];
        for c in chunk.iter_mut() {
            c.read_exact(&mut buf)?;
        }
    }
    Ok(())
}

fn echo_cmd(len: usize) -> (Vec<u8>, usize) {
    let arg = vec![b'e'; len];
    let mut cmd = format!("*2\r\n$4\r\nECHO\r\n${len}\r\n").into_bytes();
    cmd.extend_from_slice(&arg);
    cmd.extend_from_slice(b"\r\n");
    let reply = format!("${len}\r\n").len() + len + 2;
    (cmd, reply)
}

/// Waits until something answers PING on `port`.
fn wait_up(port: u16) -> anyhow::Result<()> {
    ember_tests::wait_until("server up", Duration::from_secs(20), || {
        let mut s = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(_) => return Ok(false),
        };
        s.write_all(b"PING\r\n")?;
        let mut b = [0u8; 7];
        s.read_exact(&mut b)?;
        Ok(&b == b"+PONG\r\n")
    })
}

struct Measured {
    base: u64,
    idle: u64,
    after_echo: u64,
}

fn measure(child: &mut Child, port: u16, n: usize) -> anyhow::Result<Measured> {
    wait_up(port)?;
    let pid = child.id();
    let base = rss_bytes(pid);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("client {i}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        conns.push(s);
    }
    round(&mut conns, b"*1\r\n$4\r\nPING\r\n", 7)?;
    let idle = rss_bytes(pid);
    let (echo, reply) = echo_cmd(8 * 1024);
    round(&mut conns, &echo, reply)?;
    round(&mut conns, b"*1\r\n$4\r\nPING\r\n", 7)?;
    let after_echo = rss_bytes(pid);
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
    Ok(Measured {
        base,
        idle,
        after_echo,
    })
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let (soft, hard) = rlimit_nofile()?;
    if soft < n as u64 + 64 {
        bail!(
            "ulimit -n is {soft} (hard {hard}): need at least {} for {n} clients",
            n + 64
        );
    }
    let dir = tempfile::tempdir()?;
    let maxclients = (n + 10).to_string();
    let ember_bin = std::env::var("EMBER_DATA_NODE")
        .map(Into::into)
        .unwrap_or_else(|_| ember_tests::bin("ember-data-node"));

    let port = ember_tests::free_port();
    let mut ember = Command::new(&ember_bin)
        .args(["--port", &port.to_string(), "--io-threads", "1"])
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args(["--control-plane", "http://127.0.0.1:1"])
        .env("EMBER_MAXCLIENTS", &maxclients)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", ember_bin.display()))?;
    let e = measure(&mut ember, port, n)?;

    let port = ember_tests::free_port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--maxclients", &maxclients])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start redis-server")?;
    let r = measure(&mut redis, port, n)?;

    println!("`{}`\n", command_line("idle_clients"));
    println!("| server | RSS, no clients | RSS, {n} idle clients | per client | per client after an 8 KiB ECHO each |");
    println!("|---|---|---|---|---|");
    for (name, m) in [("ember", &e), ("redis", &r)] {
        let per = |rss: u64| {
            format!(
                "{:.2} KiB",
                rss.saturating_sub(m.base) as f64 / n as f64 / 1024.0
            )
        };
        println!(
            "{}",
            row(&[
                name.to_string(),
                format!("{:.1} MiB", m.base as f64 / 1048576.0),
                format!("{:.1} MiB", m.idle as f64 / 1048576.0),
                per(m.idle),
                per(m.after_echo),
            ])
        );
    }
    Ok(())
}

/// This process's open files limit (soft, hard).
fn rlimit_nofile() -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no 'Max open files' in /proc/self/limits")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [soft, hard, ..] => Ok((soft, hard)),
        _ => bail!("cannot parse {line:?}"),
    }
}
