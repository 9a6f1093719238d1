//! Harness for end-to-end tests: starts a real control plane and real data nodes as
//! processes on loopback ports with temp dirs, drives them with emberctl and real Redis
//! clients, and prints the processes' logs when a test fails.
//!
//! The binaries are built once per test process (`cargo build --bins`, same profile and
//! target dir as the tests), so `cargo test` alone is enough.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::Commands;

pub mod etcd;
pub mod persist;
pub mod proxy;

/// Where the workspace's binaries are, building them on first use (in the profile of the
/// running executable: tests use debug, release-built benchmarks use release).
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // Test executables live in <target>/<profile>/deps, binaries in <target>/<profile>.
        let exe = std::env::current_exe().unwrap();
        let mut dir = exe.parent().unwrap().to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.current_dir(&root).args([
            "build",
            "--bins",
            "-p",
            "ember-control-plane",
            "-p",
            "ember-data-node",
            "-p",
            "emberctl",
        ]);
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("run cargo build").success(),
            "building the binaries failed"
        );
        dir
    });
    dir.join(name)
}

/// A free TCP port on 127.0.0.1 (the listener is closed before use), never one this
/// process handed out before: the kernel may give a just-closed ephemeral port again, and
/// two processes told the same port fail at start ("Address already in use").
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Polls `f` every 20 ms until it returns `Ok(true)` or `timeout` passes; the error names
/// `what` and the last error `f` returned.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f() {
            Ok(true) => return Ok(()),
            Ok(false) => "condition not met".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process we started; killed on drop.
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub(crate) fn spawn(name: &str, program: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        let mut p = Self {
            name: name.into(),
            program,
            args,
            log,
            child: None,
        };
        p.start();
        p
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The resident set size (VmRSS) of the process, in bytes.
    pub fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// (Re)starts the process with its original arguments, appending to its log.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`Proc::start`], with these environment variables set for this run only (the
    /// binaries read most flags from the environment too).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("EMBER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Waits up to `timeout` for the process to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (e.g. `"STOP"`, `"CONT"`) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{signal} {} failed", self.name);
        }
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing is read or answered),
    /// as a hung or paused process would. [`Proc::resume`] undoes it; a stopped process
    /// is still killed on drop.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Proc::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A redis-server (Debian's: `.ci/run` installs it) on a free port without persistence
/// settings, saving in `dir` when asked, logging to `log`; killed on drop. Returns once
/// it answers, with a connection.
pub fn redis_server(dir: &std::path::Path, log: &std::path::Path) -> (Proc, redis::Connection) {
    let port = free_port();
    let args = [
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .collect();
    let server = Proc::spawn("redis-server", "redis-server".into(), args, log.into());
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = None;
    wait_until("redis-server answers", Duration::from_secs(30), || {
        con = Some(client.get_connection()?);
        Ok(true)
    })
    .expect("redis-server must be installed (.ci/run installs it)");
    (server, con.unwrap())
}

/// One data node's fixed coordinates.
pub struct NodeSpec {
    pub name: String,
    pub port: u16,
    pub internal_port: u16,
    pub data_dir: PathBuf,
    /// Announced node-to-node address, when not the internal port itself (a proxy).
    pub internal_announce: Option<String>,
    /// The control plane's URL as this node is given it, when not the real one (a proxy).
    pub control_plane: Option<String>,
}

impl NodeSpec {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A control plane and data nodes on loopback.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub cp_port: u16,
    pub node_timeout: Duration,
    pub cp: Proc,
    /// With an etcd store: the other control-plane processes (`cp` is the first), their
    /// URLs (`cp_urls[i]` is the `i`-th process's), and etcd.
    pub more_cps: Vec<Proc>,
    pub cp_urls: Vec<String>,
    pub etcd: Option<etcd::Etcd>,
    pub specs: Vec<NodeSpec>,
    pub nodes: Vec<Proc>,
    /// How every data node of this cluster is started.
    pub node_options: NodeOptions,
}

/// Extra settings for the data nodes a [`TestCluster`] starts (and its control plane).
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Appended to each node's command line (e.g. `--io-threads 1`).
    pub args: Vec<String>,
    /// Appended to the control plane's command line.
    pub control_plane_args: Vec<String>,
    /// Start each node with this soft and hard `RLIMIT_NOFILE` (`ulimit -n`).
    pub nofile: Option<u64>,
}

impl TestCluster {
    /// One data node, started with `args` appended to its command line, bootstrapped:
    /// it owns every slot and serves.
    pub fn single_node(args: &[&str]) -> Self {
        let options = NodeOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let c = Self::start_with(1, Duration::from_secs(5), options);
        c.ctl_ok(&["bootstrap", "n1"]);
        c.wait_all_info("cluster_state", "ok", Duration::from_secs(30));
        c
    }

    /// Starts a control plane and `n` data nodes (not yet bootstrapped) and waits until
    /// every node has registered.
    pub fn start(n: usize, node_timeout: Duration) -> Self {
        Self::start_with(n, node_timeout, NodeOptions::default())
    }

    /// Like [`TestCluster::start`], with every data node started as `options` say.
    pub fn start_with(n: usize, node_timeout: Duration, options: NodeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cp_port = free_port();
        let cp = Proc::spawn(
            "control-plane",
            bin("ember-control-plane"),
            vec![
                "--listen".into(),
                format!("127.0.0.1:{cp_port}"),
                "--data-dir".into(),
                dir.path().join("cp").display().to_string(),
                "--node-timeout".into(),
                format!("{}ms", node_timeout.as_millis()),
            ]
            .into_iter()
            .chain(options.control_plane_args.iter().cloned())
            .collect(),
            dir.path().join("cp.log"),
        );
        let cluster = Self {
            dir,
            cp_port,
            node_timeout,
            cp,
            more_cps: vec![],
            cp_urls: vec![format!("http://127.0.0.1:{cp_port}")],
            etcd: None,
            specs: vec![],
            nodes: vec![],
            node_options: options,
        };
        cluster.with_nodes(n)
    }

    /// `cps` control planes sharing a 3-member etcd (`--store etcd`, lease TTL 2 s), and
    /// `n` data nodes given all of their URLs; waits until every node registered.
    pub fn start_ha(n: usize, cps: usize, node_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etcd = etcd::Etcd::start(3, dir.path());
        let ports: Vec<u16> = (0..cps).map(|_| free_port()).collect();
        let mut procs: Vec<Proc> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                etcd::spawn_control_plane(
                    &format!("cp{}", i + 1),
                    etcd::control_plane_args(*port, &etcd, node_timeout),
                    dir.path(),
                )
            })
            .collect();
        let cp = procs.remove(0);
        let cluster = Self {
            dir,
            cp_port: ports[0],
            node_timeout,
            cp,
            more_cps: procs,
            cp_urls: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            etcd: Some(etcd),
            specs: vec![],
            nodes: vec![],
            node_options: NodeOptions::default(),
        };
        cluster.with_nodes(n)
    }

    /// The `i`-th control-plane process.
    pub fn control_plane(&mut self, i: usize) -> &mut Proc {
        match i {
            0 => &mut self.cp,
            i => &mut self.more_cps[i - 1],
        }
    }

    fn with_nodes(self, n: usize) -> Self {
        let mut cluster = self;
        for _ in 0..n {
            cluster.add_node();
        }
        let count = cluster.specs.len();
        cluster.wait("all nodes registered", Duration::from_secs(30), |c| {
            let state = c.ctl_json(&["nodes"])?;
            let known = state["nodes"].as_array().map_or(0, Vec::len)
                + state["pending"].as_array().map_or(0, Vec::len);
            Ok(known == count)
        });
        cluster
    }

    /// The control plane's `--data-dir`.
    pub fn cp_dir(&self) -> PathBuf {
        self.dir.path().join("cp")
    }

    /// The control plane's URL (with several processes: all of their URLs, as nodes and
    /// emberctl take them).
    pub fn cp_url(&self) -> String {
        self.cp_urls.join(",")
    }

    /// Starts one more data node (it registers itself as pending).
    pub fn add_node(&mut self) -> usize {
        self.add_node_with(|_| None)
    }

    /// Starts one more data node whose announced internal address is chosen by
    /// `announce(internal_port)` (e.g. a [`proxy::Proxy`] in front of it).
    pub fn add_node_with(&mut self, announce: impl FnOnce(u16) -> Option<String>) -> usize {
        self.add_node_linked(announce, |_| None)
    }

    /// Like [`TestCluster::add_node_with`], and the node reaches the control plane at
    /// the address `control_plane` gives for the real one (`host:port`), e.g. a proxy's.
    pub fn add_node_linked(
        &mut self,
        announce: impl FnOnce(u16) -> Option<String>,
        control_plane: impl FnOnce(String) -> Option<String>,
    ) -> usize {
        let i = self.specs.len();
        let internal_port = free_port();
        let spec = NodeSpec {
            name: format!("n{}", i + 1),
            port: free_port(),
            internal_port,
            data_dir: self.dir.path().join(format!("n{}", i + 1)),
            internal_announce: announce(internal_port),
            control_plane: control_plane(format!("127.0.0.1:{}", self.cp_port))
                .map(|a| format!("http://{a}")),
        };
        let proc = self.spawn_node(&spec);
        self.specs.push(spec);
        self.nodes.push(proc);
        i
    }

    fn spawn_node(&self, spec: &NodeSpec) -> Proc {
        let mut extra = Vec::new();
        if let Some(a) = &spec.internal_announce {
            extra = vec!["--internal-announce".to_string(), a.clone()];
        }
        let mut args: Vec<String> = extra
            .into_iter()
            .chain([
                "--port".into(),
                spec.port.to_string(),
                "--internal-port".into(),
                spec.internal_port.to_string(),
                "--control-plane".into(),
                spec.control_plane.clone().unwrap_or_else(|| self.cp_url()),
                "--data-dir".into(),
                spec.data_dir.display().to_string(),
                "--name".into(),
                spec.name.clone(),
            ])
            .chain(self.node_options.args.iter().cloned())
            .collect();
        let mut program = bin("ember-data-node");
        if let Some(n) = self.node_options.nofile {
            // `sh` sets the limit (soft and hard) and execs the node in its place.
            let mut wrapped = vec![
                "-c".to_string(),
                format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                program.display().to_string(),
            ];
            wrapped.append(&mut args);
            (program, args) = (PathBuf::from("sh"), wrapped);
        }
        Proc::spawn(
            &spec.name,
            program,
            args,
            self.dir.path().join(format!("{}.log", spec.name)),
        )
    }

    /// Runs emberctl against this cluster's control plane.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_command()(args)
    }

    /// [`TestCluster::ctl`] for another thread.
    pub fn ctl_command(&self) -> impl Fn(&[&str]) -> Output + Send + 'static {
        let url = self.cp_url();
        move |args| {
            Command::new(bin("emberctl"))
                .arg("--control-plane")
                .arg(&url)
                .args(args)
                .output()
                .expect("run emberctl")
        }
    }

    /// Runs emberctl and fails with its stderr unless it succeeded.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            self.dump_logs();
            panic!(
                "emberctl {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                stdout
            );
        }
        stdout
    }

    /// Runs a read command with `--json` and parses its output.
    pub fn ctl_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        if !out.status.success() {
            bail!(
                "emberctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("emberctl printed invalid JSON")
    }

    /// A plain (non-cluster) connection to node `i`.
    pub fn conn(&self, i: usize) -> anyhow::Result<redis::Connection> {
        let client = redis::Client::open(self.specs[i].url())?;
        Ok(client.get_connection_with_timeout(Duration::from_secs(2))?)
    }

    /// `CLUSTER INFO` of node `i` as key/value pairs.
    pub fn cluster_info(
        &self,
        i: usize,
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let text: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut self.conn(i)?)?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    /// The name of the node that owns `slot` by `emberctl slots` ("-" if none).
    pub fn slot_owner(&self, slot: u16) -> String {
        let slots = self.ctl_json(&["slots"]).unwrap();
        slots["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["start"].as_u64().unwrap() <= slot.into()
                    && u64::from(slot) <= r["end"].as_u64().unwrap()
            })
            .and_then(|r| r["node_name"].as_str())
            .unwrap_or("-")
            .to_string()
    }

    /// The index of the node that owns `key`'s slot.
    pub fn key_owner(&self, key: &str) -> usize {
        let name = self.slot_owner(ember_core::key_slot(key.as_bytes()));
        self.specs
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no node owns {key} ({name})"))
    }

    /// A cluster client seeded with every node.
    pub fn cluster_client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(
            self.specs.iter().map(|s| s.url()).collect::<Vec<_>>(),
        )
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
    }

    /// Waits for `f`, dumping every process's log and panicking on timeout.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> anyhow::Result<bool>,
    ) {
        if let Err(e) = wait_until(what, timeout, || f(self)) {
            self.dump_logs();
            panic!("{e:#}");
        }
    }

    /// Waits until every running node reports `field:value` in CLUSTER INFO.
    pub fn wait_all_info(&self, field: &str, value: &str, timeout: Duration) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect();
        self.wait(&format!("{field}:{value} on every node"), timeout, |c| {
            for i in &running {
                let info = c.cluster_info(*i)?;
                if info.get(field).map(String::as_str) != Some(value) {
                    bail!(
                        "node {} has {field}:{:?}",
                        c.specs[*i].name,
                        info.get(field)
                    );
                }
            }
            Ok(true)
        });
    }

    /// Restarts node `i` with its data dir (after a kill).
    pub fn restart_node(&mut self, i: usize) {
        self.nodes[i].start();
    }

    /// Replaces node `i`'s process with one using an empty data dir at the same address.
    pub fn wipe_and_restart_node(&mut self, i: usize) {
        self.nodes[i].kill();
        let _ = std::fs::remove_dir_all(&self.specs[i].data_dir);
        self.nodes[i].start();
    }

    pub fn dump_logs(&self) {
        eprintln!(
            "----- control plane log (tail) -----\n{}",
            self.cp.log_tail(60)
        );
        for n in &self.nodes {
            eprintln!("----- {} log (tail) -----\n{}", n.name, n.log_tail(40));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}

/// Every key of the node behind `conn` with its type, TTL presence and content, in a
/// canonical form (members of sets and hashes sorted), read with `READONLY`.
pub fn dataset(conn: &mut redis::Connection) -> BTreeMap<Vec<u8>, String> {
    redis::cmd("READONLY").query::<()>(conn).unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(conn).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(conn).unwrap();
        let content = match kind.as_str() {
            "string" => format!("{:?}", conn.get::<_, Vec<u8>>(&k).unwrap()),
            "list" => format!("{:?}", conn.lrange::<_, Vec<Vec<u8>>>(&k, 0, -1).unwrap()),
            "set" => {
                let mut m: Vec<Vec<u8>> = conn.smembers(&k).unwrap();
                m.sort();
                format!("{m:?}")
            }
            "hash" => {
                let m: BTreeMap<Vec<u8>, Vec<u8>> = conn.hgetall(&k).unwrap();
                format!("{m:?}")
            }
            "zset" => {
                let m: Vec<(Vec<u8>, f64)> = conn.zrange_withscores(&k, 0, -1).unwrap();
                format!("{m:?}")
            }
            "none" => continue, // expired between KEYS and TYPE
            other => panic!("unexpected type {other}"),
        };
        let ttl: i64 = conn.pttl(&k).unwrap();
        out.insert(k, format!("{kind} ttl:{} {content}", ttl > 0));
    }
    out
}

/// Every acknowledged write of a cluster client's writers is on the cluster: each
/// `(key, value)` SET, and each counter at the last value an INCR returned.
pub fn assert_acknowledged(c: &TestCluster, sets: &[(String, u64)], incrs: &BTreeMap<String, u64>) {
    let mut conn = c.cluster_client().get_connection().unwrap();
    for (key, value) in sets {
        let got: Option<u64> = conn.get(key).unwrap();
        assert_eq!(got, Some(*value), "{key}: an acknowledged write was lost");
    }
    for (key, value) in incrs {
        let got: Option<u64> = conn.get(key).unwrap();
        assert_eq!(got, Some(*value), "{key}: an acknowledged INCR was lost");
    }
}

/// The Python interpreter the redis-py tests run.
pub const PYTHON: &str = "python3";

/// Runs the Python `script` with the port of node 0 and `args` as its arguments: its
/// output (the test fails, with every log, if it does).
pub fn redis_py(c: &TestCluster, script: &str, args: &[&str]) -> String {
    let port = c.specs[0].port.to_string();
    let out = std::process::Command::new(PYTHON)
        .args(["-c", script, &port])
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        c.dump_logs();
    }
    assert!(
        out.status.success(),
        "redis-py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
