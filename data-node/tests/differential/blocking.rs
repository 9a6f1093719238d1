//! Blocking commands, compared with redis-server: clients that block and clients that
//! write (see `scenario.rs`).

use super::scenario::*;

/// The scenarios: (name, clients, steps).
pub fn scenarios() -> Vec<Scenario> {
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
            "CLIENT REPLY OFF / SKIP / ON, CLIENT KILL of a blocked client",
            2,
            vec![
                Send(0, &["CLIENT", "REPLY", "OFF"]),
                Send(0, &["SET", "{t}r", "1"]),
                Send(0, &["GET", "{t}r"]),
                Run(0, &["CLIENT", "REPLY", "ON"]),
                Run(0, &["GET", "{t}r"]),
                Send(0, &["CLIENT", "REPLY", "SKIP"]),
                Send(0, &["SET", "{t}r", "2"]),
                Run(0, &["GET", "{t}r"]),
                Run(0, &["CLIENT", "REPLY", "MAYBE"]),
                // A script's reply is suppressed too.
                Send(0, &["CLIENT", "REPLY", "SKIP"]),
                Send(
                    0,
                    &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "{t}r"],
                ),
                Send(0, &["CLIENT", "REPLY", "OFF"]),
                Send(
                    0,
                    &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "{t}r"],
                ),
                Run(0, &["CLIENT", "REPLY", "ON"]),
                Run(
                    0,
                    &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "{t}r"],
                ),
                Block(0, &["BLPOP", "{t}k", "0"], 1),
                Kill(1, 0),
                Run(1, &["RPUSH", "{t}k", "v"]),
                Run(1, &["LLEN", "{t}k"]),
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
        (
            "CLIENT PAUSE WRITE: writes and transactions of writes wait, reads go on",
            3,
            vec![
                Run(0, &["SET", "{t}k", "1"]),
                Run(0, &["CLIENT", "PAUSE", "100000", "WRITE"]),
                Run(1, &["GET", "{t}k"]),
                Run(1, &["EXISTS", "{t}k"]),
                Block(1, &["SET", "{t}k", "2"], 1),
                Run(2, &["MULTI"]),
                Block(2, &["INCR", "{t}k"], 2),
                Run(0, &["GET", "{t}k"]),
                Run(0, &["CLIENT", "UNPAUSE"]),
                Reply(1),
                Reply(2),
                Run(2, &["EXEC"]),
                Run(0, &["GET", "{t}k"]),
                // A short ALL pause: even reads wait, then run.
                Run(0, &["CLIENT", "PAUSE", "30"]),
                Run(1, &["GET", "{t}k"]),
                Run(0, &["CLIENT", "PAUSE"]),
                Run(0, &["CLIENT", "PAUSE", "x"]),
                Run(0, &["CLIENT", "PAUSE", "-1"]),
                Run(0, &["CLIENT", "PAUSE", "10", "FOO"]),
                Run(0, &["CLIENT", "PAUSE", "10", "write", "extra"]),
                Run(0, &["CLIENT", "UNPAUSE", "x"]),
                Run(0, &["CLIENT", "UNPAUSE"]),
            ],
        ),
    ]
}

/// A seeded random interleaving of three clients that push, pop, block on one or two
/// lists and unblock each other; a model of the lists' lengths and of who waits on which
/// key (first blocked, first served) says which steps block and which replies arrive.
/// One client always stays free; every blocked client is served before the end.
pub fn random(seed: u64) -> Scenario {
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    const KEYS: [&str; 2] = ["{t}r1", "{t}r2"];
    let leak = |v: Vec<String>| -> &'static [&'static str] {
        Box::leak(
            v.into_iter()
                .map(|s| &*Box::leak(s.into_boxed_str()))
                .collect::<Vec<&'static str>>()
                .into_boxed_slice(),
        )
    };
    let mut len = [0usize; 2];
    let mut waiters: [VecDeque<usize>; 2] = Default::default();
    let mut blocked = [false; 3];
    let mut steps = Vec::new();
    let mut value = 0;
    // A push of `n` elements to `k` serves that many waiters of `k`, in order.
    let serve = |k: usize,
                 len: &mut [usize; 2],
                 waiters: &mut [VecDeque<usize>; 2],
                 blocked: &mut [bool; 3],
                 steps: &mut Vec<Step>| {
        while len[k] > 0 {
            let Some(w) = waiters[k].pop_front() else {
                break;
            };
            for q in waiters.iter_mut() {
                q.retain(|x| *x != w);
            }
            len[k] -= 1;
            blocked[w] = false;
            steps.push(Reply(w));
        }
    };
    for _ in 0..40 {
        let free: Vec<usize> = (0..3).filter(|c| !blocked[*c]).collect();
        let c = free[rng.random_range(0..free.len())];
        let k = rng.random_range(0..2);
        match rng.random_range(0..10) {
            0..=3 => {
                let n = rng.random_range(1..=3);
                let verb = if rng.random_bool(0.5) {
                    "RPUSH"
                } else {
                    "LPUSH"
                };
                let mut args = vec![verb.to_string(), KEYS[k].to_string()];
                for _ in 0..n {
                    value += 1;
                    args.push(format!("v{value}"));
                }
                steps.push(Run(c, leak(args)));
                len[k] += n;
                serve(k, &mut len, &mut waiters, &mut blocked, &mut steps);
            }
            4..=6 => {
                let verb = if rng.random_bool(0.5) {
                    "BLPOP"
                } else {
                    "BRPOP"
                };
                let keys: Vec<usize> = match rng.random_range(0..3) {
                    0 => vec![k],
                    1 => vec![k, 1 - k],
                    _ => vec![1 - k, k],
                };
                let mut args = vec![verb.to_string()];
                args.extend(keys.iter().map(|k| KEYS[*k].to_string()));
                args.push("0".into());
                let n = blocked.iter().filter(|b| **b).count();
                match keys.iter().find(|k| len[**k] > 0) {
                    Some(&ready) => {
                        len[ready] -= 1;
                        steps.push(Run(c, leak(args)));
                    }
                    // One client always stays free to push.
                    None if n == 2 => {}
                    None => {
                        blocked[c] = true;
                        for k in &keys {
                            waiters[*k].push_back(c);
                        }
                        steps.push(Block(c, leak(args), n + 1));
                    }
                }
            }
            7 => {
                if let Some(b) = (0..3).find(|b| blocked[*b]) {
                    steps.push(Unblock(c, b, None));
                    for q in waiters.iter_mut() {
                        q.retain(|x| *x != b);
                    }
                    blocked[b] = false;
                    steps.push(Reply(b));
                }
            }
            8 => {
                steps.push(Run(c, leak(vec!["LPOP".into(), KEYS[k].into()])));
                len[k] = len[k].saturating_sub(1);
            }
            _ => steps.push(Run(c, leak(vec!["LLEN".into(), KEYS[k].into()]))),
        }
    }
    // Serve whoever still waits, then show what is left.
    while let Some(b) = (0..3).find(|b| blocked[*b]) {
        let k = (0..2)
            .find(|k| waiters[*k].contains(&b))
            .expect("a blocked client waits");
        let pusher = (0..3)
            .find(|c| !blocked[*c])
            .expect("one client never blocks");
        value += 1;
        let args = vec!["RPUSH".into(), KEYS[k].into(), format!("v{value}")];
        steps.push(Run(pusher, leak(args)));
        len[k] += 1;
        serve(k, &mut len, &mut waiters, &mut blocked, &mut steps);
    }
    for k in KEYS {
        steps.push(Run(
            0,
            leak(vec!["LRANGE".into(), k.into(), "0".into(), "-1".into()]),
        ));
    }
    let name: &'static str =
        Box::leak(format!("random interleaving, seed {seed}").into_boxed_str());
    (name, 3, steps)
}
