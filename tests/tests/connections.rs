//! Connection handling under abuse (issue 10, items 2, 5 and 6), against real data-node
//! processes: `maxclients` and the descriptors kept for the control-plane session and
//! node-to-node streams, fairness between a client pipelining big replies and the
//! others on its connection thread, backpressure on a client that does not read, and
//! `client-output-buffer-limit`. Raw sockets check exact bytes; the `redis` crate is the
//! well-behaved client.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ember_tests::{wait_until, NodeOptions, TestCluster};

const T: Duration = Duration::from_secs(20);
/// Size of the big value the pipelining clients GET.
const BIG: usize = 1024 * 1024;

/// A raw RESP connection.
struct Raw {
    s: TcpStream,
    pending: Vec<u8>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw {
            s,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Sends one command as a multibulk.
    fn send_cmd(&mut self, args: &[&str]) {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.send(&v);
    }

    /// Reads until `n` bytes are buffered; `Err` on EOF, reset or timeout.
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        let mut chunk = vec![0u8; 256 * 1024];
        while self.pending.len() < n {
            let got = self.s.read(&mut chunk)?;
            if got == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            self.pending.extend_from_slice(&chunk[..got]);
        }
        Ok(())
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.pending.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.pending.drain(..i + 2).collect());
            }
            let n = self.pending.len() + 1;
            self.fill(n)?;
        }
    }

    /// One reply, as the exact bytes the node sent (simple, error, integer, bulk, and
    /// arrays of those).
    fn try_reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = self.line()?;
        match out[0] {
            b'$' => {
                let len: i64 = std::str::from_utf8(&out[1..out.len() - 2])
                    .unwrap()
                    .parse()
                    .unwrap();
                if len >= 0 {
                    let len = len as usize + 2;
                    self.fill(len)?;
                    out.extend(self.pending.drain(..len));
                }
            }
            b'*' => {
                let n: i64 = std::str::from_utf8(&out[1..out.len() - 2])
                    .unwrap()
                    .parse()
                    .unwrap();
                for _ in 0..n.max(0) {
                    let item = self.try_reply()?;
                    out.extend(item);
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn reply(&mut self) -> String {
        String::from_utf8_lossy(&self.try_reply().expect("a reply")).into_owned()
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send_cmd(args);
        self.reply()
    }

    /// Reads a `$len` bulk reply of `len` bytes without keeping it.
    fn skip_bulk(&mut self, len: usize) -> std::io::Result<()> {
        let header = self.line()?;
        assert_eq!(header, format!("${len}\r\n").as_bytes(), "bulk header");
        let mut left = len + 2;
        let mut chunk = vec![0u8; 256 * 1024];
        let take = left.min(self.pending.len());
        self.pending.drain(..take);
        left -= take;
        while left > 0 {
            let n = self.s.read(&mut chunk[..left.min(256 * 1024)])?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        Ok(())
    }

    /// Everything until the node closes the connection.
    fn rest(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.pending);
        let _ = self.s.read_to_end(&mut v);
        v
    }
}

/// `INFO` of a node as key/value pairs.
fn info(r: &mut Raw) -> HashMap<String, String> {
    let text = r.call(&["INFO", "everything"]);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn info_u64(r: &mut Raw, field: &str) -> u64 {
    let i = info(r);
    i.get(field)
        .unwrap_or_else(|| panic!("INFO has no {field}"))
        .parse()
        .unwrap()
}

/// `CONFIG GET name` (one value).
fn config_get(r: &mut Raw, name: &str) -> String {
    let reply = r.call(&["CONFIG", "GET", name]);
    let lines: Vec<&str> = reply.split("\r\n").collect();
    assert_eq!(lines.len(), 6, "CONFIG GET {name}: {reply:?}");
    lines[4].to_string()
}

fn config_set_error(param: &str, why: &str) -> String {
    format!("-ERR CONFIG SET failed (possibly related to argument '{param}') - {why}\r\n")
}

/// One node owning every slot, its data nodes started with `options`.
fn one_node(options: NodeOptions) -> TestCluster {
    let c = TestCluster::start_with(1, Duration::from_secs(2), options);
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    c
}

fn set_big(c: &TestCluster) {
    let mut conn = c.conn(0).unwrap();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(vec![b'x'; BIG])
        .query(&mut conn)
        .unwrap();
}

fn gets(n: usize) -> Vec<u8> {
    b"GET big\r\n".repeat(n)
}

// ---------------------------------------------------------------------- maxclients

#[test]
fn maxclients_refuses_the_client_over_the_limit_as_redis() {
    let c = TestCluster::start(1, Duration::from_secs(5));
    let addr = c.specs[0].addr();
    let mut admin = Raw::connect(&addr);
    assert_eq!(config_get(&mut admin, "maxclients"), "10000");
    for (value, why) in [
        ("abc", "argument couldn't be parsed into an integer"),
        ("010", "argument couldn't be parsed into an integer"),
        ("0", "argument must be between 1 and 4294967295 inclusive"),
        (
            "4294967296",
            "argument must be between 1 and 4294967295 inclusive",
        ),
    ] {
        assert_eq!(
            admin.call(&["CONFIG", "SET", "maxclients", value]),
            config_set_error("maxclients", why),
            "CONFIG SET maxclients {value}"
        );
    }
    assert_eq!(
        admin.call(&["CONFIG", "SET", "maxclients", "50"]),
        "+OK\r\n"
    );
    assert_eq!(config_get(&mut admin, "maxclients"), "50");
    assert_eq!(info_u64(&mut admin, "maxclients"), 50);

    let mut clients: Vec<Raw> = (1..50)
        .map(|_| {
            let mut r = Raw::connect(&addr);
            assert_eq!(r.call(&["PING"]), "+PONG\r\n");
            r
        })
        .collect();
    let mut over = Raw::connect(&addr);
    assert_eq!(
        String::from_utf8_lossy(&over.rest()),
        "-ERR max number of clients reached\r\n"
    );
    let i = info(&mut admin);
    assert_eq!(i["connected_clients"], "50");
    assert_eq!(i["rejected_connections"], "1");

    // A client that leaves frees its place.
    drop(clients.pop());
    wait_until("a free place for a new client", T, || {
        let mut r = Raw::connect(&addr);
        r.send_cmd(&["PING"]);
        Ok(r.try_reply().ok().as_deref() == Some(&b"+PONG\r\n"[..]))
    })
    .unwrap();
}

#[test]
fn reserved_descriptors_keep_the_control_plane_session_when_clients_flood() {
    const NOFILE: u64 = 512;
    let c = one_node(NodeOptions {
        nofile: Some(NOFILE),
        ..NodeOptions::default()
    });
    let addr = c.specs[0].addr();
    let mut admin = Raw::connect(&addr);
    // The node lowered maxclients so that clients never take the descriptors it keeps.
    let max: u64 = config_get(&mut admin, "maxclients").parse().unwrap();
    assert!(
        max > 0 && max < NOFILE,
        "maxclients {max} with ulimit -n {NOFILE}"
    );
    let asked = (NOFILE * 4).to_string();
    assert_eq!(
        admin.call(&["CONFIG", "SET", "maxclients", &asked]),
        config_set_error(
            "maxclients",
            &format!(
                "The operating system is not able to handle the specified number of clients, try with {max}"
            )
        )
    );
    assert_eq!(config_get(&mut admin, "maxclients"), max.to_string());

    // Flood: every connection is served or refused with Redis's error, none hangs.
    let mut flood = Vec::new();
    let refused = loop {
        assert!(
            flood.len() as u64 <= NOFILE,
            "{} clients admitted",
            flood.len()
        );
        let mut r = Raw::connect(&addr);
        r.send_cmd(&["PING"]);
        match r.try_reply() {
            Ok(reply) if reply == b"+PONG\r\n" => flood.push(r),
            Ok(reply) => break String::from_utf8_lossy(&reply).into_owned(),
            Err(e) => panic!(
                "client {} was neither served nor refused: {e}",
                flood.len() + 2
            ),
        }
    };
    assert_eq!(refused, "-ERR max number of clients reached\r\n");
    assert_eq!(flood.len() as u64 + 1, max, "admin + flood = maxclients");

    // The control plane restarts while the node is full: the node's session comes back
    // and applies the next change.
    let mut c = c;
    c.cp.kill();
    c.cp.start();
    c.wait("the restarted control plane takes a change", T, |c| {
        let out = c.ctl(&["config", "set", "require-full-coverage", "no"]);
        Ok(out.status.success())
    });
    wait_until("the node applies the change", T, || {
        Ok(config_get(&mut admin, "cluster-require-full-coverage") == "no")
    })
    .unwrap();

    // Node-to-node gRPC still accepts connections.
    let internal = format!("http://127.0.0.1:{}", c.specs[0].internal_port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
        let channel = tonic::transport::Endpoint::from_shared(internal)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("the internal port accepts");
        let req = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        let status = HealthClient::new(channel)
            .check(req)
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving);
    });
    drop(flood);
}

// ------------------------------------------------------- fairness and backpressure

#[test]
fn a_client_pipelining_big_gets_does_not_starve_another_on_its_thread() {
    const N: usize = 600;
    // One connection thread: both clients share it.
    let c = one_node(NodeOptions {
        args: vec!["--io-threads".into(), "1".into()],
        ..NodeOptions::default()
    });
    set_big(&c);
    let mut b = c.conn(0).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let addr = c.specs[0].addr();
    let pipeliner = std::thread::spawn(move || {
        let mut a = Raw::connect(&addr);
        a.s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        a.send(&gets(N));
        for i in 0..N {
            a.skip_bulk(BIG)
                .unwrap_or_else(|e| panic!("reply {i} of {N}: {e}"));
        }
    });
    let (mut pings, mut worst) = (0, Duration::ZERO);
    while !pipeliner.is_finished() {
        let t = Instant::now();
        let pong: String = redis::cmd("PING").query(&mut b).unwrap();
        assert_eq!(pong, "PONG");
        worst = worst.max(t.elapsed());
        pings += 1;
    }
    pipeliner.join().unwrap();
    eprintln!("{pings} PINGs during {N} pipelined 1 MB GETs, the slowest {worst:?}");
    assert!(pings > 1, "B pinged while A's pipeline ran");
    assert!(
        worst < Duration::from_secs(1),
        "a PING waited {worst:?} behind {N} pipelined 1 MB GETs ({pings} pings)"
    );
}

#[test]
fn a_client_that_does_not_read_is_not_served_more() {
    const N: usize = 1000;
    let c = one_node(NodeOptions::default());
    set_big(&c);
    let addr = c.specs[0].addr();
    let mut admin = Raw::connect(&addr);
    let rss_before = info_u64(&mut admin, "used_memory_rss");
    let commands_before = info_u64(&mut admin, "total_commands_processed");
    let mut a = Raw::connect(&addr);
    a.send(&gets(N));
    // Wait until the node has stopped executing A's commands: between two INFOs only the
    // first INFO itself was counted, five times in a row.
    let mut last = commands_before;
    let mut quiet = 0;
    wait_until("the node to stop serving A", T, || {
        let now = info_u64(&mut admin, "total_commands_processed");
        quiet = if now == last + 1 { quiet + 1 } else { 0 };
        last = now;
        Ok(quiet >= 5)
    })
    .unwrap();
    let infos = 1 + 5 + 1; // the one before, the quiet ones, at least one more
    let executed = last - commands_before;
    assert!(
        executed < N as u64,
        "all {N} GETs of a client that reads nothing were executed ({executed} commands)"
    );
    assert!(executed > infos, "some of A's GETs ran");
    let grown = info_u64(&mut admin, "used_memory_rss").saturating_sub(rss_before);
    assert!(
        grown < 256 * 1024 * 1024,
        "the node grew by {} MiB for a client that reads nothing",
        grown >> 20
    );
    // Once A reads, every reply arrives, in order.
    a.s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    for i in 0..N {
        a.skip_bulk(BIG)
            .unwrap_or_else(|e| panic!("reply {i} of {N}: {e}"));
    }
    assert_eq!(a.call(&["PING"]), "+PONG\r\n");
}

// ------------------------------------------------------ client-output-buffer-limit

#[test]
fn client_output_buffer_limit_is_configured_as_redis() {
    let c = TestCluster::start(1, Duration::from_secs(5));
    let mut r = Raw::connect(&c.specs[0].addr());
    let param = "client-output-buffer-limit";
    assert_eq!(
        config_get(&mut r, param),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    for (value, why) in [
        (
            "normal 1mb 512k",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "foo 1 1 1",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "master 1 1 1",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "normal x 1 1",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "normal 1 1 -3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "normal 1.5mb 0 0",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
    ] {
        assert_eq!(
            r.call(&["CONFIG", "SET", param, value]),
            config_set_error(param, why),
            "CONFIG SET {param} {value:?}"
        );
    }
    // A rejected value changes nothing, even its valid classes.
    assert_eq!(
        r.call(&["CONFIG", "SET", param, "normal 1 1 1 foo 1 1 1"]),
        config_set_error(
            param,
            "Invalid client class specified in buffer limit configuration."
        )
    );
    assert_eq!(
        config_get(&mut r, param),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    assert_eq!(
        r.call(&["CONFIG", "SET", param, "NORMAL 1GB 1G 10 replica 1kb 1k 1"]),
        "+OK\r\n"
    );
    assert_eq!(
        config_get(&mut r, param),
        "normal 1073741824 1000000000 10 slave 1024 1000 1 pubsub 33554432 8388608 60"
    );
}

/// Pipelines `n` big GETs on a new connection without reading, waits until the node
/// has disconnected it for its output buffer, and returns how long that took.
fn disconnected_for_output(c: &TestCluster, admin: &mut Raw, n: usize) -> Duration {
    let before = info_u64(admin, "client_output_buffer_limit_disconnections");
    let mut a = Raw::connect(&c.specs[0].addr());
    let start = Instant::now();
    a.send(&gets(n));
    wait_until("the client to be disconnected", T, || {
        Ok(info_u64(admin, "client_output_buffer_limit_disconnections") == before + 1)
    })
    .unwrap();
    let took = start.elapsed();
    // It gets at most what was already written before the connection was closed.
    let mut replies = 0;
    while replies < n && a.skip_bulk(BIG).is_ok() {
        replies += 1;
    }
    assert!(replies < n, "a disconnected client got all {n} replies");
    took
}

#[test]
fn output_buffer_limits_disconnect_a_client_that_does_not_read() {
    let c = one_node(NodeOptions::default());
    set_big(&c);
    let mut admin = Raw::connect(&c.specs[0].addr());
    let param = "client-output-buffer-limit";

    // Hard limit: disconnected as soon as its unsent replies reach it.
    assert_eq!(
        admin.call(&["CONFIG", "SET", param, "normal 8mb 0 0"]),
        "+OK\r\n"
    );
    disconnected_for_output(&c, &mut admin, 200);

    // A client that reads is never disconnected: it keeps at most 4 MB of replies
    // outstanding (a client pipelining more than the hard limit and reading slower than
    // the node builds them may be cut off, in Redis as here).
    let mut reader = Raw::connect(&c.specs[0].addr());
    for window in 0..12 {
        reader.send(&gets(4));
        for i in 0..4 {
            reader
                .skip_bulk(BIG)
                .unwrap_or_else(|e| panic!("reader's reply {}: {e}", window * 4 + i));
        }
    }

    // Soft limit: disconnected once over it for more than its seconds.
    assert_eq!(
        admin.call(&["CONFIG", "SET", param, "normal 0 4mb 1"]),
        "+OK\r\n"
    );
    let took = disconnected_for_output(&c, &mut admin, 200);
    assert!(
        took >= Duration::from_secs(1),
        "soft limit of 1 s hit after {took:?}"
    );
    assert_eq!(
        info_u64(&mut admin, "client_output_buffer_limit_disconnections"),
        2
    );
    assert_eq!(reader.call(&["PING"]), "+PONG\r\n");
}
