//! Shared helpers of the benchmarks: percentiles and process memory; the building blocks
//! of the soak and complexity benchmarks.

pub mod complexity;
pub mod soak;

use std::time::{Duration, Instant};

/// The `p`-th percentile (0-100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[idx]
}

/// Resident set size of a process, in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The number after `--name` on the command line, or `default`.
pub fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The command line that produced a benchmark's output, for the report.
pub fn command_line(bin: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = format!("cargo run --release -p ember-bench --bin {bin}");
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

/// One markdown table row.
pub fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// The `CLUSTER SLOTS` owner (primary's port) of `slot` as seen by `conn`.
pub fn slot_owner_port(conn: &mut redis::Connection, slot: u16) -> anyhow::Result<Option<u16>> {
    let v: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
    Ok(owner_in_slots(&v, slot))
}

/// Finds `slot`'s primary port in a `CLUSTER SLOTS` reply.
pub fn owner_in_slots(v: &redis::Value, slot: u16) -> Option<u16> {
    let redis::Value::Array(ranges) = v else {
        return None;
    };
    for r in ranges {
        let redis::Value::Array(items) = r else {
            continue;
        };
        let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) =
            (items.first(), items.get(1))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&i64::from(slot)) {
            if let Some(redis::Value::Array(primary)) = items.get(2) {
                if let Some(redis::Value::Int(port)) = primary.get(1) {
                    return u16::try_from(*port).ok();
                }
            }
        }
    }
    None
}

/// All `CLUSTER SLOTS` ranges as (start, end, primary port).
pub fn slot_ranges(conn: &mut redis::Connection) -> anyhow::Result<Vec<(u16, u16, u16)>> {
    let v: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
    let mut out = Vec::new();
    if let redis::Value::Array(ranges) = v {
        for r in ranges {
            if let redis::Value::Array(items) = r {
                if let (
                    Some(redis::Value::Int(lo)),
                    Some(redis::Value::Int(hi)),
                    Some(redis::Value::Array(p)),
                ) = (items.first(), items.get(1), items.get(2))
                {
                    if let Some(redis::Value::Int(port)) = p.get(1) {
                        out.push((*lo as u16, *hi as u16, *port as u16));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The flags of the `CLUSTER NODES` line whose address has `port`, as seen by `conn`.
pub fn node_flags(conn: &mut redis::Connection, port: u16) -> anyhow::Result<String> {
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(conn)?;
    let needle = format!(":{port}@");
    Ok(text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.contains(&needle))
        })
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string())
}

/// A plain connection to a loopback port.
pub fn connect(port: u16) -> anyhow::Result<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    Ok(client.get_connection_with_timeout(Duration::from_secs(2))?)
}

/// `CLUSTER INFO` field of the node at `port`.
pub fn cluster_info_field(port: u16, field: &str) -> anyhow::Result<String> {
    let text: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut connect(port)?)?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Redis 7 cluster-mode servers on loopback in a temp dir; killed (and the dir removed)
/// on drop, also when a benchmark fails.
pub struct RedisCluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    pub node_timeout_ms: u64,
    procs: Vec<Option<std::process::Child>>,
}

impl RedisCluster {
    /// Starts `n` empty cluster-enabled redis-servers (no persistence) and waits until
    /// each answers PING.
    pub fn start(n: usize, node_timeout_ms: u64) -> anyhow::Result<Self> {
        let mut c = Self {
            dir: tempfile::tempdir()?,
            ports: vec![],
            node_timeout_ms,
            procs: vec![],
        };
        for _ in 0..n {
            c.ports.push(ember_tests::free_port());
            c.procs.push(None);
        }
        for i in 0..n {
            c.spawn(i)?;
        }
        Ok(c)
    }

    /// (Re)starts server `i` with its own nodes.conf.
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.ports[i];
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                &self.node_timeout_ms.to_string(),
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--dir",
                &self.dir.path().display().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                &format!("redis-{port}.log"),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.procs[i] = Some(child);
        ember_tests::wait_until("redis-server up", Duration::from_secs(10), || {
            let mut c = connect(port)?;
            Ok(redis::cmd("PING").query::<String>(&mut c)? == "PONG")
        })
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].as_ref().map(|c| c.id())
    }

    /// kill -9 server `i`, and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// `redis-cli --cluster create` over the first `masters` servers (no replicas), then
    /// waits for `cluster_state:ok` on each of them.
    pub fn create(&self, masters: usize) -> anyhow::Result<()> {
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend((0..masters).map(|i| self.addr(i)));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let out = std::process::Command::new("redis-cli")
            .args(&args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.wait_ok(masters)
    }

    /// Waits until the first `n` servers report `cluster_state:ok`.
    pub fn wait_ok(&self, n: usize) -> anyhow::Result<()> {
        ember_tests::wait_until("redis cluster_state:ok", Duration::from_secs(60), || {
            for &p in &self.ports[..n] {
                if cluster_info_field(p, "cluster_state")? != "ok" {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// `CLUSTER MYID` of server `i`.
    pub fn id(&self, i: usize) -> anyhow::Result<String> {
        Ok(redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut connect(self.ports[i])?)?)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

/// The benchmark key for index `i`.
pub fn key(i: usize) -> String {
    format!("key:{i}")
}

/// Loads keys `0..n` with `value_len`-byte values straight into their owners (routed by
/// the `CLUSTER SLOTS` of the node at `seed`), pipelined in batches of 1000 per node.
pub fn load_keys(seed: u16, n: usize, value_len: usize) -> anyhow::Result<()> {
    let ranges = slot_ranges(&mut connect(seed)?)?;
    let mut owner = vec![0u16; 16384];
    for (lo, hi, port) in ranges {
        for s in lo..=hi {
            owner[s as usize] = port;
        }
    }
    anyhow::ensure!(owner.iter().all(|p| *p != 0), "not every slot is owned");
    let value = vec![b'v'; value_len];
    let mut conns: std::collections::HashMap<u16, (redis::Connection, redis::Pipeline)> =
        std::collections::HashMap::new();
    for i in 0..n {
        let k = key(i);
        let port = owner[ember_core::key_slot(k.as_bytes()) as usize];
        let (conn, pipe) = match conns.entry(port) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((connect(port)?, redis::pipe()))
            }
        };
        pipe.cmd("SET").arg(k).arg(&value[..]).ignore();
        if pipe.len() >= 1000 {
            pipe.exec(conn)?;
            pipe.clear();
        }
    }
    for (conn, pipe) in conns.values_mut() {
        if !pipe.is_empty() {
            pipe.exec(conn)?;
        }
    }
    Ok(())
}

/// Sum of `DBSIZE` over `ports`.
pub fn total_keys(ports: &[u16]) -> anyhow::Result<usize> {
    let mut sum = 0;
    for p in ports {
        sum += redis::cmd("DBSIZE").query::<usize>(&mut connect(*p)?)?;
    }
    Ok(sum)
}

/// What a background client saw: (start offset since the client began, latency, ok).
pub type Samples = Vec<(Duration, Duration, bool)>;

/// Runs GET/SET (half each) on random keys of `0..n` through a `redis` cluster client
/// until `stop` is set (at most `limit`); returns every request's timing.
pub fn client_load(
    seeds: Vec<String>,
    n: usize,
    value_len: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    limit: Duration,
) -> std::thread::JoinHandle<anyhow::Result<(Instant, Samples)>> {
    use rand::Rng;
    std::thread::spawn(move || {
        let client = redis::cluster::ClusterClient::builder(seeds)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .build()?;
        let mut conn = client.get_connection()?;
        let value = vec![b'w'; value_len];
        let mut rng = rand::rng();
        let began = Instant::now();
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && began.elapsed() < limit {
            let k = key(rng.random_range(0..n));
            let t = Instant::now();
            let ok = if rng.random_bool(0.5) {
                redis::cmd("GET")
                    .arg(&k)
                    .query::<Option<Vec<u8>>>(&mut conn)
                    .is_ok()
            } else {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&value[..])
                    .query::<()>(&mut conn)
                    .is_ok()
            };
            out.push((t - began, t.elapsed(), ok));
        }
        Ok((began, out))
    })
}
