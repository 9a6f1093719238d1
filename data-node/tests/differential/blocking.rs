//! Blocking commands, compared with redis-server: scripted scenarios with several
//! connections, where some block and others write. Each scenario runs on both servers;
//! the transcripts (every reply, in the order the script reads them) must be equal.
//!
//! A step that blocks is sent without reading its reply; the script then waits until
//! the server reports that many blocked clients (`INFO clients`), so the next write
//! finds the client parked, on both servers alike.

use std::time::{Duration, Instant};

use redis::Value;

use super::{connect, show};

/// One step of a scenario.
enum Step {
    /// Client `c` runs a command and reads its reply.
    Run(usize, &'static [&'static str]),
    /// Client `c` sends a command that blocks; then `blocked` clients must be blocked.
    Block(usize, &'static [&'static str], usize),
    /// Reads the reply of client `c`'s blocked command.
    Reply(usize),
    /// Client `c` sends `CLIENT UNBLOCK <id of client target> [reason]`.
    Unblock(usize, usize, Option<&'static str>),
    /// Client `c` disconnects (while blocked); then `blocked` clients are blocked.
    Drop(usize, usize),
}

use Step::*;

fn packed(args: &[&str]) -> Vec<u8> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.get_packed_command()
}

fn blocked_clients(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO clients has blocked_clients")
}

fn wait_blocked(admin: &mut redis::Connection, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = blocked_clients(admin);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} blocked clients, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn reply(v: redis::RedisResult<Value>) -> String {
    match v {
        Ok(v) => show(&v),
        Err(e) => format!("-{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
    }
}

fn client(cons: &mut [Option<redis::Connection>], c: usize) -> &mut redis::Connection {
    cons[c].as_mut().expect("client still connected")
}

/// Runs `steps` with `clients` connections on the server at `url`: the transcript.
fn transcript(url: &str, clients: usize, steps: &[Step]) -> Vec<String> {
    let mut admin = connect(url);
    redis::cmd("FLUSHALL").query::<()>(&mut admin).unwrap();
    let mut cons: Vec<Option<redis::Connection>> =
        (0..clients).map(|_| Some(connect(url))).collect();
    let ids: Vec<i64> = cons
        .iter_mut()
        .map(|c| {
            redis::cmd("CLIENT")
                .arg("ID")
                .query(c.as_mut().unwrap())
                .unwrap()
        })
        .collect();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Run(c, args) => {
                let con = client(&mut cons, *c);
                con.send_packed_command(&packed(args)).unwrap();
                out.push(format!(
                    "{c}: {} -> {}",
                    args.join(" "),
                    reply(con.recv_response())
                ));
            }
            Block(c, args, n) => {
                let con = client(&mut cons, *c);
                con.send_packed_command(&packed(args)).unwrap();
                wait_blocked(&mut admin, *n, &format!("step {i} ({})", args.join(" ")));
            }
            Reply(c) => {
                let con = client(&mut cons, *c);
                out.push(format!("{c}: (blocked) -> {}", reply(con.recv_response())));
            }
            Unblock(c, target, reason) => {
                let con = client(&mut cons, *c);
                let mut cmd = redis::cmd("CLIENT");
                cmd.arg("UNBLOCK").arg(ids[*target]);
                if let Some(r) = reason {
                    cmd.arg(*r);
                }
                out.push(format!(
                    "{c}: CLIENT UNBLOCK {target} {reason:?} -> {}",
                    reply(cmd.query::<Value>(con))
                ));
            }
            Drop(c, n) => {
                cons[*c] = None;
                wait_blocked(&mut admin, *n, &format!("step {i} (disconnect)"));
            }
        }
    }
    out
}

/// The scenarios: (name, clients, steps).
fn scenarios() -> Vec<(&'static str, usize, Vec<Step>)> {
    vec![
        (
            "first blocked, first served; each push serves as many as it has elements",
            3,
            vec![
                Block(0, &["BLPOP", "{t}l1", "{t}l2", "0"], 1),
                Block(1, &["BRPOP", "{t}l2", "0"], 2),
                Run(2, &["RPUSH", "{t}l2", "a", "b", "c"]),
                Reply(0),
                Reply(1),
                Run(2, &["LRANGE", "{t}l2", "0", "-1"]),
            ],
        ),
        (
            "a push and pop inside one transaction wakes nobody",
            2,
            vec![
                Block(0, &["BLPOP", "{t}l", "0"], 1),
                Run(1, &["MULTI"]),
                Run(1, &["RPUSH", "{t}l", "x"]),
                Run(1, &["LPOP", "{t}l"]),
                Run(1, &["EXEC"]),
                Run(1, &["RPUSH", "{t}l", "y"]),
                Reply(0),
                Run(1, &["EXISTS", "{t}l"]),
            ],
        ),
        (
            "a transaction's push is served once it committed",
            2,
            vec![
                Block(0, &["BLPOP", "{t}l", "0"], 1),
                Run(1, &["MULTI"]),
                Run(1, &["RPUSH", "{t}l", "x", "y"]),
                Run(1, &["LLEN", "{t}l"]),
                Run(1, &["EXEC"]),
                Reply(0),
                Run(1, &["LRANGE", "{t}l", "0", "-1"]),
            ],
        ),
        (
            "BLMOVE feeds a client blocked on its destination",
            3,
            vec![
                Block(0, &["BLMOVE", "{t}a", "{t}b", "LEFT", "RIGHT", "0"], 1),
                Block(1, &["BLPOP", "{t}b", "0"], 2),
                Run(2, &["RPUSH", "{t}a", "1", "2", "3"]),
                Reply(0),
                Reply(1),
                Run(2, &["LRANGE", "{t}a", "0", "-1"]),
                Run(2, &["EXISTS", "{t}b"]),
            ],
        ),
        (
            "a key of another type does not serve; the list that replaces it does",
            2,
            vec![
                Block(0, &["BLPOP", "{t}s", "0"], 1),
                Run(1, &["SET", "{t}s", "x"]),
                Run(1, &["DEL", "{t}s"]),
                Run(1, &["ZADD", "{t}s", "1", "m"]),
                Run(1, &["DEL", "{t}s"]),
                Run(1, &["LPUSH", "{t}s", "v"]),
                Reply(0),
            ],
        ),
        (
            "timeouts, and nothing blocks inside MULTI",
            1,
            vec![
                Run(0, &["BLPOP", "{t}x", "0.05"]),
                Run(0, &["BRPOPLPUSH", "{t}x", "{t}y", "0.02"]),
                Run(0, &["BLMOVE", "{t}x", "{t}y", "LEFT", "LEFT", "0.02"]),
                Run(0, &["BZPOPMAX", "{t}x", "0.02"]),
                Run(0, &["BLMPOP", "0.02", "1", "{t}x", "LEFT"]),
                Run(0, &["BZMPOP", "0.02", "2", "{t}x", "{t}y", "MIN"]),
                Run(0, &["MULTI"]),
                Run(0, &["BLPOP", "{t}x", "0"]),
                Run(0, &["BZPOPMIN", "{t}x", "0"]),
                Run(0, &["BLMOVE", "{t}x", "{t}y", "LEFT", "LEFT", "0"]),
                Run(0, &["RPUSH", "{t}x", "1"]),
                Run(0, &["BLPOP", "{t}x", "0"]),
                Run(0, &["EXEC"]),
            ],
        ),
        (
            "CLIENT UNBLOCK: as a timeout, as an error, and of a client not blocked",
            2,
            vec![
                Block(0, &["BLPOP", "{t}q", "0"], 1),
                Unblock(1, 0, None),
                Reply(0),
                Block(0, &["BZPOPMIN", "{t}q", "0"], 1),
                Unblock(1, 0, Some("ERROR")),
                Reply(0),
                Block(0, &["BLMOVE", "{t}q", "{t}r", "RIGHT", "LEFT", "0"], 1),
                Unblock(1, 0, Some("TIMEOUT")),
                Reply(0),
                Unblock(1, 0, None),
                Unblock(1, 0, Some("bogus")),
                Run(1, &["CLIENT", "UNBLOCK", "abc"]),
            ],
        ),
        (
            "sorted sets: BZPOPMIN / BZPOPMAX / BZMPOP served by ZADD",
            3,
            vec![
                Block(0, &["BZPOPMIN", "{t}z1", "{t}z2", "0"], 1),
                Block(
                    1,
                    &["BZMPOP", "0", "2", "{t}z2", "{t}z3", "MAX", "COUNT", "2"],
                    2,
                ),
                Run(
                    2,
                    &["ZADD", "{t}z2", "5", "a", "1", "b", "3", "c", "4", "d"],
                ),
                Reply(0),
                Reply(1),
                Block(0, &["BZPOPMAX", "{t}z9", "0"], 1),
                Run(2, &["ZADD", "{t}z9", "1.5", "x", "2.5", "y"]),
                Reply(0),
                Run(2, &["ZRANGE", "{t}z2", "0", "-1", "WITHSCORES"]),
            ],
        ),
        (
            "BLMPOP with a count, BRPOPLPUSH onto its own list",
            2,
            vec![
                Block(
                    0,
                    &["BLMPOP", "0", "2", "{t}m1", "{t}m2", "RIGHT", "COUNT", "2"],
                    1,
                ),
                Run(1, &["RPUSH", "{t}m2", "a", "b", "c"]),
                Reply(0),
                Block(0, &["BRPOPLPUSH", "{t}r", "{t}r", "0"], 1),
                Run(1, &["RPUSH", "{t}r", "a", "b"]),
                Reply(0),
                Run(1, &["LRANGE", "{t}r", "0", "-1"]),
            ],
        ),
        (
            "a client that disconnects while blocked takes nothing",
            2,
            vec![
                Block(0, &["BLPOP", "{t}d", "0"], 1),
                Drop(0, 0),
                Run(1, &["RPUSH", "{t}d", "v"]),
                Run(1, &["LRANGE", "{t}d", "0", "-1"]),
            ],
        ),
        (
            "a blocking command that finds something answers at once; errors",
            1,
            vec![
                Run(0, &["RPUSH", "{t}l", "a", "b"]),
                Run(0, &["SET", "{t}s", "x"]),
                Run(0, &["BLPOP", "{t}s", "{t}l", "0"]),
                Run(0, &["BLPOP", "{t}none", "{t}l", "0"]),
                Run(0, &["BRPOPLPUSH", "{t}l", "{t}s", "0"]),
                Run(0, &["BLMOVE", "{t}l", "{t}l", "UP", "LEFT", "0"]),
                Run(0, &["BLPOP", "{t}l", "-1"]),
                Run(0, &["BLPOP", "{t}l", "abc"]),
                Run(0, &["BLPOP", "{t}l", "inf"]),
                Run(0, &["BLMPOP", "0", "0", "{t}l", "LEFT"]),
                Run(0, &["BLMPOP", "0", "3", "{t}l", "LEFT"]),
                Run(0, &["BLMPOP", "x", "1", "{t}l", "LEFT"]),
                Run(0, &["BLMPOP", "0", "1", "{t}l", "UP"]),
                Run(0, &["BLMPOP", "0", "1", "{t}l", "LEFT", "COUNT", "0"]),
                Run(0, &["BZPOPMIN", "{t}l", "0"]),
                Run(0, &["BZMPOP", "0", "1", "{t}l", "MIN"]),
                Run(0, &["BLPOP", "{t}l", "0"]),
            ],
        ),
    ]
}

/// Every scenario gives the same transcript on ember as on redis-server.
pub fn compare(redis_url: &str, ember_url: &str) {
    for (name, clients, steps) in scenarios() {
        let want = transcript(redis_url, clients, &steps);
        let got = transcript(ember_url, clients, &steps);
        assert_eq!(
            want, got,
            "blocking scenario `{name}`:\n  redis: {want:#?}\n  ember: {got:#?}"
        );
    }
}
