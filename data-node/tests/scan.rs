//! End to end, with a real client: the `SCAN` family returns every element present for
//! the whole scan while others are deleted between calls and the collection grows or
//! shrinks (tables resized); `RANDOMKEY` and `SPOP` on big and expired data.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use redis::Connection;

fn connect(addr: std::net::SocketAddr) -> Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Runs a scan to its end, calling `between(con, call)` after every call that did not
/// end it; returns every element (every field for `HSCAN`) seen.
fn full_scan(
    con: &mut Connection,
    args: &[&str],
    pairs: bool,
    mut between: impl FnMut(&mut Connection, usize),
) -> HashSet<String> {
    let cursor_at = if args[0] == "SCAN" { 1 } else { 2 };
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut seen = HashSet::new();
    for call in 0.. {
        assert!(call < 100_000, "the scan does not end");
        let mut c = redis::cmd(&args[0]);
        c.arg(&args[1..]);
        let (next, page): (String, Vec<String>) = c.query(con).unwrap();
        if pairs {
            seen.extend(page.chunks(2).map(|p| p[0].clone()));
        } else {
            seen.extend(page);
        }
        if next == "0" {
            break;
        }
        args[cursor_at] = next;
        between(con, call);
    }
    seen
}

fn add(con: &mut Connection, cmd: &str, key: Option<&str>, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    for chunk in items.chunks(1000) {
        let mut c = redis::cmd(cmd);
        if let Some(k) = key {
            c.arg(k);
        }
        for i in chunk {
            c.arg(i);
            if cmd == "HSET" {
                c.arg("v");
            }
        }
        let _: redis::Value = c.query(con).unwrap();
    }
}

/// `SET` (or `DEL`) of each key, pipelined: the keys are in many slots, which one
/// multi-key command would refuse (`CROSSSLOT`).
fn each(con: &mut Connection, cmd: &str, keys: impl Iterator<Item = String>) {
    let mut p = redis::pipe();
    for k in keys {
        p.cmd(cmd).arg(k);
        if cmd == "SET" {
            p.arg("v");
        }
        p.ignore();
    }
    let _: () = p.query(con).unwrap();
}

fn missed(seen: &HashSet<String>, stable: impl Iterator<Item = String>) -> Vec<String> {
    stable.filter(|x| !seen.contains(x)).collect()
}

#[test]
fn sscan_and_hscan_return_what_stays_while_the_collection_grows_then_shrinks() {
    let mut con = connect(common::start_in_thread());
    for (cmd, del, scan, pairs) in [
        ("SADD", "SREM", "SSCAN", false),
        ("HSET", "HDEL", "HSCAN", true),
    ] {
        let key = format!("{{c}}{cmd}");
        let stable = || (0..3000).map(|i| format!("s{i}"));
        add(&mut con, cmd, Some(&key), stable());
        add(
            &mut con,
            cmd,
            Some(&key),
            (0..6000).map(|i| format!("v{i}")),
        );
        // Growing: 6 deleted and 400 added per call (the tables double several times).
        let mut next_new = 0;
        let seen = full_scan(
            &mut con,
            &[scan, &key, "0", "COUNT", "50"],
            pairs,
            |con, call| {
                if call < 60 {
                    let gone = (call * 6..call * 6 + 6).map(|i| format!("v{i}"));
                    add(con, del, Some(&key), gone);
                    add(
                        con,
                        cmd,
                        Some(&key),
                        (next_new..next_new + 400).map(|i| format!("n{i}")),
                    );
                    next_new += 400;
                }
            },
        );
        assert_eq!(
            missed(&seen, stable()),
            Vec::<String>::new(),
            "{scan} while growing"
        );
        // Shrinking: everything but the stable elements goes, 500 per call, so the
        // tables fall below a quarter full and shrink, moving what remains.
        let mut doomed: Vec<String> = (360..6000)
            .map(|i| format!("v{i}"))
            .chain((0..next_new).map(|i| format!("n{i}")))
            .collect();
        let seen = full_scan(
            &mut con,
            &[scan, &key, "0", "COUNT", "20"],
            pairs,
            |con, _| {
                let n = doomed.len().min(500);
                add(con, del, Some(&key), doomed.drain(..n));
            },
        );
        assert_eq!(
            missed(&seen, stable()),
            Vec::<String>::new(),
            "{scan} while shrinking"
        );
        let card: i64 = redis::cmd(if pairs { "HLEN" } else { "SCARD" })
            .arg(&key)
            .query(&mut con)
            .unwrap();
        assert_eq!(card, 3000);
    }
}

#[test]
fn scan_returns_the_keys_that_stay_while_slot_tables_grow_and_shrink() {
    let mut con = connect(common::start_in_thread());
    // Spread keys, and keys of one hot slot (its table is paged inside).
    let stable = || {
        (0..2000)
            .map(|i| format!("s{i}"))
            .chain((0..2000).map(|i| format!("{{hot}}s{i}")))
    };
    each(&mut con, "SET", stable());
    each(&mut con, "SET", (0..3000).map(|i| format!("{{hot}}v{i}")));
    each(&mut con, "SET", (0..3000).map(|i| format!("v{i}")));
    let mut next_new = 0;
    let seen = full_scan(
        &mut con,
        &["SCAN", "0", "COUNT", "40"],
        false,
        |con, call| {
            // Delete 20, add 100 to the hot slot and 20 elsewhere per call for a while,
            // then delete the hot slot's volatile keys (its table shrinks).
            if call < 60 {
                let gone = (call * 10..call * 10 + 10)
                    .flat_map(|i| [format!("v{i}"), format!("{{hot}}v{i}")]);
                each(con, "DEL", gone);
                each(
                    con,
                    "SET",
                    (next_new..next_new + 100).map(|i| format!("{{hot}}n{i}")),
                );
                each(
                    con,
                    "SET",
                    (next_new..next_new + 20).map(|i| format!("n{i}")),
                );
                next_new += 100;
            } else if call == 60 {
                each(con, "DEL", (600..3000).map(|i| format!("{{hot}}v{i}")));
            }
        },
    );
    assert_eq!(missed(&seen, stable()), Vec::<String>::new());
    // Every cursor is resumable however it was made: a stale one ends, never errors.
    let _: (String, Vec<String>) = redis::cmd("SCAN")
        .arg("18446744073709551615")
        .query(&mut con)
        .unwrap();
}

#[test]
fn randomkey_finds_live_keys_among_few_or_expired_ones() {
    let mut con = connect(common::start_in_thread());
    let random =
        |con: &mut Connection| -> Option<String> { redis::cmd("RANDOMKEY").query(con).unwrap() };
    assert_eq!(random(&mut con), None);
    let _: () = redis::cmd("SET")
        .arg("only")
        .arg("v")
        .query(&mut con)
        .unwrap();
    for _ in 0..20 {
        assert_eq!(random(&mut con).as_deref(), Some("only"));
    }
    // 300 keys about to expire, spread over slots, and the one live key: RANDOMKEY
    // deletes the expired keys it meets and still answers the live one.
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("e{i}"))
            .arg("v")
            .arg("PX")
            .arg(1)
            .query(&mut con)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..50 {
        assert_eq!(random(&mut con).as_deref(), Some("only"));
    }
    let _: i64 = redis::cmd("DEL").arg("only").query(&mut con).unwrap();
    assert_eq!(random(&mut con), None);
}

#[test]
fn spop_with_a_count_removes_exactly_what_it_returns() {
    let mut con = connect(common::start_in_thread());
    add(
        &mut con,
        "SADD",
        Some("s"),
        (0..10_000).map(|i| format!("m{i}")),
    );
    let popped: Vec<String> = redis::cmd("SPOP")
        .arg("s")
        .arg(3000)
        .query(&mut con)
        .unwrap();
    let distinct: HashSet<&String> = popped.iter().collect();
    assert_eq!(distinct.len(), 3000);
    let card: i64 = redis::cmd("SCARD").arg("s").query(&mut con).unwrap();
    assert_eq!(card, 7000);
    let still: Vec<i64> = redis::cmd("SMISMEMBER")
        .arg("s")
        .arg(&popped)
        .query(&mut con)
        .unwrap();
    assert!(still.iter().all(|&x| x == 0));
    let rest: Vec<String> = redis::cmd("SPOP")
        .arg("s")
        .arg(7001)
        .query(&mut con)
        .unwrap();
    assert_eq!(rest.len(), 7000);
    let exists: i64 = redis::cmd("EXISTS").arg("s").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}
