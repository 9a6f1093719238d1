//! RESP3 pushes compared with redis-server byte for byte: two raw connections per
//! server (a subscriber / tracking client and a publisher / writer) run the same steps,
//! and every byte each server sends is compared, not the parsed values.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What one step does: client `c` sends `args` (nothing: only read) and then whatever
/// arrives on client `read` within the quiet period is taken.
pub struct Step {
    pub c: usize,
    pub args: &'static [&'static str],
    pub read: usize,
}

const fn s(c: usize, args: &'static [&'static str], read: usize) -> Step {
    Step { c, args, read }
}

/// The steps (client 0 subscribes and tracks; client 1 publishes and writes).
pub const STEPS: &[Step] = &[
    s(0, &["SUBSCRIBE", "ch1", "ch2"], 0),
    s(0, &["PSUBSCRIBE", "ch*"], 0),
    s(1, &["PUBLISH", "ch1", "hello"], 1),
    s(1, &[], 0),
    s(0, &["PING"], 0),
    s(0, &["PING", "in subscribed mode"], 0),
    s(0, &["UNSUBSCRIBE", "ch1"], 0),
    s(1, &["PUBLISH", "ch2", "two"], 1),
    s(1, &[], 0),
    s(0, &["PUNSUBSCRIBE"], 0),
    s(0, &["UNSUBSCRIBE"], 0),
    s(0, &["SSUBSCRIBE", "{s}x"], 0),
    s(1, &["SPUBLISH", "{s}x", "sharded"], 1),
    s(1, &[], 0),
    s(0, &["SUNSUBSCRIBE"], 0),
    s(0, &["CLIENT", "TRACKING", "on"], 0),
    s(0, &["GET", "{s}k"], 0),
    s(1, &["SET", "{s}k", "v"], 1),
    s(1, &[], 0),
    s(0, &["MGET", "{s}k", "{s}j"], 0),
    s(1, &["FLUSHALL"], 1),
    s(1, &[], 0),
    s(0, &["CLIENT", "TRACKING", "off"], 0),
    s(0, &["CONFIG", "SET", "notify-keyspace-events", "E$"], 0),
    s(0, &["SUBSCRIBE", "__keyevent@0__:set"], 0),
    s(1, &["SET", "{s}k", "w"], 1),
    s(1, &[], 0),
    s(0, &["CONFIG", "SET", "notify-keyspace-events", ""], 0),
];

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Everything that arrives on `con` until it has been quiet for a while.
fn drain(con: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    con.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match con.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// The bytes each step received, on the server at `port`.
pub fn transcript(port: u16) -> Vec<String> {
    let mut cons: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            // HELLO's reply names the server: read, not compared.
            c.write_all(&encode(&["HELLO", "3"])).unwrap();
            drain(&mut c);
            c
        })
        .collect();
    cons[1].write_all(&encode(&["FLUSHALL"])).unwrap();
    drain(&mut cons[1]);
    STEPS
        .iter()
        .map(|step| {
            if !step.args.is_empty() {
                cons[step.c].write_all(&encode(step.args)).unwrap();
            }
            let got = drain(&mut cons[step.read]);
            format!(
                "{} {:?} -> {}",
                step.c,
                step.args,
                String::from_utf8_lossy(&got).escape_debug()
            )
        })
        .collect()
}
