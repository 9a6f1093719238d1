//! The two servers under test, started fresh for each collection size: one redis-server
//! without persistence and one ember data node owning all 16384 slots (a control plane
//! plus `emberctl bootstrap`), as `bench/resp.sh` starts them. Release binaries from
//! the benchmark's own target directory; every process is killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::resp::{Conn, Reply};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    Ember,
    Redis,
}

impl Sys {
    pub fn name(self) -> &'static str {
        match self {
            Sys::Ember => "ember",
            Sys::Redis => "redis",
        }
    }
}

/// One running server.
pub struct Server {
    pub sys: Sys,
    pub port: u16,
    /// The serving process (whose RSS is measured).
    pub pid: u32,
}

/// A redis-server and an ember data node (with its control plane) on loopback.
pub struct Servers {
    pub redis: Server,
    pub ember: Server,
    procs: Vec<Child>,
    /// How the redis-server and the data node were started (to restart them).
    started: [(Sys, Command, usize); 2],
    dir: tempfile::TempDir,
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {:?}", cmd.get_program()))
}

/// A binary of the workspace next to this one (target/release), built beforehand: this
/// benchmark does not run cargo itself (another feature set would rebuild them).
pub fn bin(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("executable without a directory")?
        .join(name);
    if !path.exists() {
        bail!(
            "{} is missing: cargo build --release -p ember-data-node -p ember-control-plane -p emberctl -p ember-bench",
            path.display()
        );
    }
    Ok(path)
}

impl Servers {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = &dir.path().to_path_buf();
        let mut redis_cmd = Command::new("redis-server");
        let mut s = Self {
            redis: Server {
                sys: Sys::Redis,
                port: ember_tests::free_port(),
                pid: 0,
            },
            ember: Server {
                sys: Sys::Ember,
                port: ember_tests::free_port(),
                pid: 0,
            },
            procs: vec![],
            started: [
                (Sys::Redis, Command::new("redis-server"), 0),
                (Sys::Ember, Command::new("ember-data-node"), 2),
            ],
            dir,
        };
        redis_cmd
            .args(["--port", &s.redis.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(d);
        let redis = spawn(&mut redis_cmd, &d.join("redis.log"))?;
        s.started[0].1 = redis_cmd;
        s.redis.pid = redis.id();
        s.procs.push(redis);

        let cp_url = format!("http://127.0.0.1:{}", ember_tests::free_port());
        let cp = spawn(
            Command::new(bin("ember-control-plane")?)
                .args(["--listen", cp_url.trim_start_matches("http://")])
                .arg("--data-dir")
                .arg(d.join("cp")),
            &d.join("cp.log"),
        )?;
        s.procs.push(cp);
        let mut node_cmd = Command::new(bin("ember-data-node")?);
        node_cmd
            .args(["--port", &s.ember.port.to_string()])
            .args(["--internal-port", &ember_tests::free_port().to_string()])
            .args(["--control-plane", &cp_url, "--name", "n1"])
            .arg("--data-dir")
            .arg(d.join("n1"));
        let node = spawn(&mut node_cmd, &d.join("n1.log"))?;
        s.ember.pid = node.id();
        s.procs.push(node);
        s.started[1].1 = node_cmd;

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
                "emberctl bootstrap: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(d.join("n1.log")).unwrap_or_default()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ember_ok = Conn::connect(s.ember.port)
                .and_then(|mut c| c.call(&["CLUSTER", "INFO"])?.bulk())
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains("cluster_state:ok"));
            let redis_ok = Conn::connect(s.redis.port)
                .and_then(|mut c| c.call(&["PING"]))
                .is_ok_and(|r| r == Reply::Simple("PONG".into()));
            if ember_ok && redis_ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("servers not up after 30 s (ember ok: {ember_ok}, redis ok: {redis_ok})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    /// The directory of the servers' files (`redis.log`, `dump.rdb`, `n1/` ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills `sys`'s server (kill -9) and starts it again as it was started (the data
    /// node keeps its data directory, redis-server its `--dir`). Does not wait for it.
    pub fn restart(&mut self, sys: Sys) -> anyhow::Result<()> {
        let (_, cmd, i) = self
            .started
            .iter_mut()
            .find(|(s, _, _)| *s == sys)
            .context("no such server")?;
        let old = &mut self.procs[*i];
        old.kill()?;
        old.wait()?;
        let log = self.dir.path().join(format!("{}.log", sys.name()));
        let child = spawn(cmd, &log)?;
        match sys {
            Sys::Redis => self.redis.pid = child.id(),
            Sys::Ember => self.ember.pid = child.id(),
        }
        self.procs[*i] = child;
        Ok(())
    }

    pub fn get(&self, sys: Sys) -> &Server {
        match sys {
            Sys::Ember => &self.ember,
            Sys::Redis => &self.redis,
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Memory of a server at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `used_memory` of `INFO memory`: bytes allocated (both servers count them).
    pub used: u64,
    /// VmRSS of the process.
    pub rss: u64,
}

impl Server {
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let info = Conn::connect(self.port)?
            .call(&["INFO", "memory"])?
            .bulk()?;
        let info = String::from_utf8_lossy(&info);
        let used = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .context("no used_memory in INFO memory")?
            .trim()
            .parse()?;
        Ok(Memory {
            used,
            rss: crate::rss_bytes(self.pid),
        })
    }

    /// `INFO server`'s version field (`redis_version`, `ember_version`).
    pub fn version(&self) -> anyhow::Result<String> {
        let info = Conn::connect(self.port)?
            .call(&["INFO", "server"])?
            .bulk()?;
        let field = match self.sys {
            Sys::Ember => "ember_version:",
            Sys::Redis => "redis_version:",
        };
        Ok(String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or("?")
            .trim()
            .to_string())
    }
}
