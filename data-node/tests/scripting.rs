//! Scripts that run long: atomic for the other clients of their slot, then `BUSY` for
//! everyone past `busy-reply-threshold`, `SCRIPT KILL` for one that did not write and
//! `UNKILLABLE` for one that did; short scripts that turn long on their connection's
//! thread; the VM's memory cap.

mod common;

use std::time::{Duration, Instant};

use redis::Value;

fn connect(addr: std::net::SocketAddr) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = c.get_connection().unwrap();
    con.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    con
}

/// A script that loops for `ms` milliseconds (by the server's clock).
fn spin(ms: u64) -> String {
    format!(
        "local function now() local t = redis.call('TIME'); return t[1] * 1000 + t[2] / 1000 end \
         local stop = now() + {ms} while now() < stop do end"
    )
}

fn send_eval(con: &mut redis::Connection, script: &str, keys: &[&str]) {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    con.send_packed_command(&cmd.get_packed_command()).unwrap();
}

/// Scripts make the node `BUSY` after 100 ms.
fn busy_after_100ms(con: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(100)
        .query(con)
        .unwrap();
}

/// Polls through `con` until the node answers `BUSY`.
fn wait_busy(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = redis::cmd("GET").arg("other").query::<Value>(con);
        if error_code(r).as_deref() == Some("BUSY") {
            return;
        }
        assert!(Instant::now() < deadline, "never BUSY");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn error_code(v: redis::RedisResult<Value>) -> Option<String> {
    match v {
        Ok(Value::ServerError(e)) => Some(e.code().to_string()),
        Err(e) => e.code().map(str::to_string),
        _ => None,
    }
}

#[test]
fn a_script_is_atomic_for_its_slot_then_busy_then_killable_until_it_writes() {
    let addr = common::start_in_thread();
    let mut a = connect(addr);
    let mut b = connect(addr);

    // Atomic: a reader of the script's key sees it before or after, never half done.
    let script = format!(
        "redis.call('SET', KEYS[1], 'half') {} redis.call('SET', KEYS[1], 'done') return 1",
        spin(300)
    );
    send_eval(&mut a, &script, &["{s}k"]);
    let began = Instant::now();
    let mut seen = Vec::new();
    while began.elapsed() < Duration::from_millis(200) {
        let v: Option<String> = redis::cmd("GET").arg("{s}k").query(&mut b).unwrap();
        seen.push(v);
    }
    assert_eq!(a.recv_response().unwrap(), Value::Int(1));
    assert!(
        seen.iter().all(|v| v.as_deref() != Some("half")),
        "a reader saw the script half done: {seen:?}"
    );
    let v: String = redis::cmd("GET").arg("{s}k").query(&mut b).unwrap();
    assert_eq!(v, "done");

    // Past the threshold everyone gets BUSY; SCRIPT KILL stops a script that only read.
    busy_after_100ms(&mut b);
    send_eval(&mut a, "while true do end", &[]);
    wait_busy(&mut b);
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut b).unwrap();
    assert_eq!(killed, "OK");
    match a.recv_response() {
        Ok(Value::ServerError(e)) => assert!(
            e.details()
                .unwrap_or_default()
                .starts_with("Script killed by user with SCRIPT KILL"),
            "{e:?}"
        ),
        other => panic!("expected the killed script's error, got {other:?}"),
    }
    let v: Option<String> = redis::cmd("GET").arg("other").query(&mut b).unwrap();
    assert_eq!(v, None, "the node serves again");

    // A script that wrote cannot be killed: it runs to its end.
    let script = format!("redis.call('SET', KEYS[1], 'w') {} return 2", spin(1500));
    send_eval(&mut a, &script, &["{s}w"]);
    // Once the node is BUSY the script is past its first statement, the write.
    wait_busy(&mut b);
    let r = redis::cmd("SCRIPT").arg("KILL").query::<Value>(&mut b);
    assert_eq!(error_code(r).as_deref(), Some("UNKILLABLE"));
    assert_eq!(a.recv_response().unwrap(), Value::Int(2));
    let v: String = redis::cmd("GET").arg("{s}w").query(&mut b).unwrap();
    assert_eq!(v, "w");
}

/// A busy function is stopped by `FUNCTION KILL`, not `SCRIPT KILL` (Redis's rule), and
/// `FUNCTION STATS` shows it meanwhile.
#[test]
fn a_busy_function_is_killed_by_function_kill() {
    let addr = common::start_in_thread();
    let mut a = connect(addr);
    let mut b = connect(addr);
    busy_after_100ms(&mut b);
    let code = format!(
        "#!lua name=slow\nredis.register_function('spin', function() {} return 1 end)",
        spin(20_000)
    );
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(code)
        .query(&mut b)
        .unwrap();
    a.send_packed_command(&redis::cmd("FCALL").arg("spin").arg(0).get_packed_command())
        .unwrap();
    wait_busy(&mut b);
    let stats: Value = redis::cmd("FUNCTION").arg("STATS").query(&mut b).unwrap();
    assert!(format!("{stats:?}").contains("spin"), "{stats:?}");
    let r = redis::cmd("SCRIPT").arg("KILL").query::<Value>(&mut b);
    assert_eq!(error_code(r).as_deref(), Some("BUSY"));
    let ok: String = redis::cmd("FUNCTION").arg("KILL").query(&mut b).unwrap();
    assert_eq!(ok, "OK");
    let killed = a.recv_response();
    assert!(
        format!("{killed:?}").contains("Script killed by user"),
        "{killed:?}"
    );
}

/// `SHUTDOWN NOSAVE` stops a node whose script cannot be killed (it wrote); a plain
/// `SHUTDOWN` is refused with `BUSY` meanwhile.
#[test]
fn shutdown_nosave_stops_a_node_busy_in_a_script() {
    let addr = common::start_in_thread();
    let mut a = connect(addr);
    let mut b = connect(addr);
    busy_after_100ms(&mut b);
    let script = format!("redis.call('SET', KEYS[1], 'w') {} return 2", spin(60_000));
    send_eval(&mut a, &script, &["{s}w"]);
    wait_busy(&mut b);
    let r = redis::cmd("SHUTDOWN").query::<Value>(&mut b);
    assert_eq!(error_code(r).as_deref(), Some("BUSY"));
    let r = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<Value>(&mut b);
    assert!(
        r.is_err(),
        "SHUTDOWN closes the connection without a reply: {r:?}"
    );
    // The node stops: nothing more is accepted, and the script's client is let go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the node still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A node with one connection thread: every client shares it (a script running there
/// would hold them all).
fn one_connection_thread() -> std::net::SocketAddr {
    let config = ember_data_node::Config {
        io_threads: 1,
        ..Default::default()
    };
    common::start_in_thread_with(config).0
}

fn eval(con: &mut redis::Connection, script: &str, key: &str, arg: &str) -> Value {
    redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg(key)
        .arg(arg)
        .query(con)
        .unwrap()
}

/// Makes `script` known short: quick runs (the first on the script thread, the next
/// ones on the connection's thread).
fn run_quickly(con: &mut redis::Connection, script: &str, key: &str, arg: &str, times: usize) {
    for _ in 0..times {
        eval(con, script, key, arg);
    }
}

/// A short script whose run turns long before it writes is abandoned on its
/// connection's thread and run again on the script thread: the other clients of that
/// thread are served meanwhile (`BUSY`, `SCRIPT KILL`), and nothing of the abandoned
/// run happened.
#[test]
fn a_short_script_that_turns_long_before_writing_leaves_the_connection_thread() {
    let addr = one_connection_thread();
    let mut a = connect(addr);
    let mut b = connect(addr);
    let script =
        "if ARGV[1] == 'spin' then while true do end end return redis.call('INCR', KEYS[1])";
    run_quickly(&mut a, script, "{s}n", "no", 5);
    busy_after_100ms(&mut b);
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(1).arg("{s}n").arg("spin");
    a.send_packed_command(&cmd.get_packed_command()).unwrap();
    wait_busy(&mut b);
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut b).unwrap();
    assert_eq!(killed, "OK");
    let r = a.recv_response();
    assert!(format!("{r:?}").contains("Script killed by user"), "{r:?}");
    assert_eq!(eval(&mut a, script, "{s}n", "no"), Value::Int(6));
}

/// A short script that wrote and then runs long runs to its end where it is, once: its
/// write is not repeated.
#[test]
fn a_short_script_that_wrote_then_turns_long_runs_once() {
    let addr = one_connection_thread();
    let mut a = connect(addr);
    let script = format!(
        "redis.call('INCR', KEYS[1]) if ARGV[1] == 'slow' then {} end return redis.call('GET', KEYS[1])",
        spin(30)
    );
    run_quickly(&mut a, &script, "{s}w", "fast", 5);
    let v = eval(&mut a, &script, "{s}w", "slow");
    assert_eq!(v, Value::BulkString(b"6".to_vec()));
    let n: i64 = redis::cmd("GET").arg("{s}w").query(&mut a).unwrap();
    assert_eq!(n, 6);
}

/// Nor is a `PUBLISH`: a short script that published and then runs long is not run
/// again (subscribers get each message once).
#[test]
fn a_short_script_that_published_then_turns_long_runs_once() {
    let addr = one_connection_thread();
    let mut a = connect(addr);
    let mut sub = connect(addr);
    let mut subscribe = redis::cmd("SUBSCRIBE");
    subscribe.arg("ch");
    sub.send_packed_command(&subscribe.get_packed_command())
        .unwrap();
    sub.recv_response().unwrap();
    let script = format!(
        "redis.call('PUBLISH', 'ch', ARGV[1]) if ARGV[1] == 'slow' then {} end return 1",
        spin(30)
    );
    run_quickly(&mut a, &script, "{s}p", "fast", 5);
    eval(&mut a, &script, "{s}p", "slow");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("ch")
        .arg("end")
        .query(&mut a)
        .unwrap();
    let mut got = Vec::new();
    loop {
        let Value::Array(m) = sub.recv_response().unwrap() else {
            panic!("not a message");
        };
        let Some(Value::BulkString(payload)) = m.last() else {
            panic!("not a message: {m:?}");
        };
        let payload = String::from_utf8(payload.clone()).unwrap();
        if payload == "end" {
            break;
        }
        got.push(payload);
    }
    assert_eq!(got, ["fast", "fast", "fast", "fast", "fast", "slow"]);
}

/// A script cannot take more than the VM's memory cap; the node goes on.
#[test]
fn a_script_is_capped_in_memory() {
    let addr = common::start_in_thread();
    let mut a = connect(addr);
    let r = redis::cmd("EVAL")
        .arg("local t = {} local s = string.rep('x', 1048576) for i = 1, 1000 do t[i] = s .. i end return #t")
        .arg(0)
        .query::<Value>(&mut a);
    assert!(format!("{r:?}").contains("memory"), "{r:?}");
    let one: i64 = redis::cmd("EVAL")
        .arg("return 1")
        .arg(0)
        .query(&mut a)
        .unwrap();
    assert_eq!(one, 1);
}
