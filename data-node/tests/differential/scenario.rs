//! Scripted scenarios with several connections, run on redis-server and on ember: the
//! transcripts (every reply and push, in the order the script reads them) must be
//! equal. Used by the blocking and pub/sub comparisons.
//!
//! A step that blocks is sent without reading its reply; the script then waits until
//! the server reports that many blocked clients (`INFO clients`), so the next write
//! finds the client parked, on both servers alike.

use std::time::{Duration, Instant};

use redis::Value;

use super::{connect, show};

/// A scenario: its name, how many clients, its steps.
pub type Scenario = (&'static str, usize, Vec<Step>);

/// One step of a scenario.
#[derive(Clone)]
pub enum Step {
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
    /// Client `c` sends `CLIENT KILL ID <id of client target>`; then client `target` must
    /// be gone (its next read fails on both servers).
    Kill(usize, usize),
    /// Client `c` sends a command and reads nothing yet.
    Send(usize, &'static [&'static str]),
    /// Reads one reply or push of client `c`.
    Read(usize),
    /// Client `c` sends `CLIENT TRACKING on REDIRECT <id of client target>` and `more`.
    Redirect(usize, usize, &'static [&'static str]),
}

pub use Step::*;

/// Every scenario with its steps run a second time after the first (scripts that ran
/// once, and quickly, are known short: the second time they run on the connection's
/// thread instead of the script thread).
pub fn twice(scenarios: Vec<Scenario>) -> Vec<Scenario> {
    scenarios
        .into_iter()
        .map(|(name, clients, steps)| (name, clients, [steps.clone(), steps].concat()))
        .collect()
}

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
pub fn transcript(url: &str, clients: usize, steps: &[Step]) -> Vec<String> {
    let mut admin = connect(url);
    redis::cmd("FLUSHALL").query::<()>(&mut admin).unwrap();
    let mut cons: Vec<Option<redis::Connection>> = (0..clients)
        .map(|_| {
            let con = connect(url);
            // A reply or push that never comes fails the scenario instead of hanging it.
            con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Some(con)
        })
        .collect();
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
            Kill(c, target) => {
                let con = client(&mut cons, *c);
                let r = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(ids[*target])
                    .query::<Value>(con);
                out.push(format!("{c}: CLIENT KILL ID {target} -> {}", reply(r)));
                let gone = redis::cmd("PING")
                    .query::<Value>(client(&mut cons, *target))
                    .is_err();
                out.push(format!("{target}: killed -> {gone}"));
            }
            Send(c, args) => {
                client(&mut cons, *c)
                    .send_packed_command(&packed(args))
                    .unwrap();
            }
            Redirect(c, target, more) => {
                let con = client(&mut cons, *c);
                let mut cmd = redis::cmd("CLIENT");
                cmd.arg("TRACKING")
                    .arg("on")
                    .arg("REDIRECT")
                    .arg(ids[*target]);
                for a in *more {
                    cmd.arg(*a);
                }
                out.push(format!(
                    "{c}: CLIENT TRACKING on REDIRECT {target} {more:?} -> {}",
                    reply(cmd.query::<Value>(con))
                ));
            }
            Read(c) => {
                let con = client(&mut cons, *c);
                out.push(format!("{c}: (read) -> {}", reply(con.recv_response())));
            }
            Drop(c, n) => {
                cons[*c] = None;
                wait_blocked(&mut admin, *n, &format!("step {i} (disconnect)"));
            }
        }
    }
    out
}

/// Every scenario gives the same transcript on ember as on redis-server.
pub fn compare(redis_url: &str, ember_url: &str, scenarios: Vec<Scenario>) {
    for (name, clients, steps) in scenarios {
        let want = transcript(redis_url, clients, &steps);
        let got = transcript(ember_url, clients, &steps);
        assert_eq!(
            want, got,
            "scenario `{name}`:\n  redis: {want:#?}\n  ember: {got:#?}"
        );
    }
}
