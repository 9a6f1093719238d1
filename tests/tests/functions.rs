//! Function libraries on a real cluster: cluster-wide configuration kept by the control
//! plane. Loaded once (`emberctl functions load`, or `FUNCTION LOAD` on any node), every
//! node runs them, including nodes that join or restart later; the control plane keeps
//! them across its own restart; redis-py's cluster client, which sends `FUNCTION LOAD` and
//! `FUNCTION DELETE` to every primary, gets the same answer from each.

use std::time::Duration;

use ember_tests::TestCluster;
use redis::Value;

const T: Duration = Duration::from_secs(30);

const COUNTER: &str = "#!lua name=counter\n\
    redis.register_function('bump', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', flags={'no-writes'}, callback=function(keys) return redis.call('GET', keys[1]) end}";
const GREET: &str = "#!lua name=greet\n\
    redis.register_function('hello', function(keys, args) return 'hello ' .. args[1] end)";

/// The libraries node `i` lists, by name.
fn listed(c: &TestCluster, i: usize) -> Vec<String> {
    let reply: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query(&mut c.conn(i).unwrap())
        .unwrap();
    let Value::Array(libs) = reply else {
        panic!("FUNCTION LIST: {reply:?}")
    };
    libs.iter()
        .map(|lib| match lib {
            Value::Array(fields) => match &fields[1] {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("library name: {other:?}"),
            },
            other => panic!("library: {other:?}"),
        })
        .collect()
}

fn wait_listed(c: &TestCluster, i: usize, want: &[&str]) {
    ember_tests::wait_until(&format!("node {i} lists {want:?}"), T, || {
        Ok(listed(c, i) == want)
    })
    .unwrap();
}

fn fcall(c: &TestCluster, f: &str, key: &str, arg: &str) -> redis::RedisResult<Value> {
    let i = c.key_owner(key);
    redis::cmd("FCALL")
        .arg(f)
        .arg(1)
        .arg(key)
        .arg(arg)
        .query(&mut c.conn(i).unwrap())
}

#[test]
fn libraries_are_loaded_once_for_the_whole_cluster() {
    let mut c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);

    // emberctl loads a library: every node runs it, on the keys it owns.
    let file = c.cp_dir().join("counter.lua");
    std::fs::write(&file, COUNTER).unwrap();
    let out = c.ctl_ok(&["functions", "load", file.to_str().unwrap()]);
    assert!(out.contains("counter"), "{out}");
    for i in 0..3 {
        wait_listed(&c, i, &["counter"]);
    }
    for key in ["a", "b", "c", "d"] {
        assert_eq!(fcall(&c, "bump", key, "5").unwrap(), Value::Int(5));
    }
    // The same file again changes nothing; a different library of that name is refused
    // in Redis's words, unless replaced.
    let again = c.ctl(&["functions", "load", file.to_str().unwrap()]);
    assert!(again.status.success(), "{again:?}");
    let mut n2 = c.conn(1).unwrap();
    let taken: redis::RedisResult<String> = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(GREET.replace("greet", "counter"))
        .query(&mut n2);
    let e = taken.unwrap_err();
    assert_eq!(e.detail(), Some("Library 'counter' already exists"), "{e}");
    let broken = c.cp_dir().join("broken.lua");
    std::fs::write(&broken, "#!lua name=broken\nreturn 1 +").unwrap();
    let out = c.ctl(&["functions", "load", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error compiling function"),
        "{out:?}"
    );

    // FUNCTION LOAD on one node is carried to the control plane: answered once this
    // node runs it (an FCALL right after finds it), and every other node gets it.
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(GREET)
        .query(&mut n2)
        .unwrap();
    assert_eq!(name, "greet");
    let hi: String = redis::cmd("FCALL")
        .arg("hello")
        .arg(0)
        .arg("you")
        .query(&mut n2)
        .unwrap();
    assert_eq!(hi, "hello you");
    for i in 0..3 {
        wait_listed(&c, i, &["counter", "greet"]);
    }
    let json = c.ctl_json(&["functions", "list"]).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["counter", "greet"]);

    // A node that joins later, a restarted node and a restarted control plane have them.
    let n4 = c.add_node();
    c.wait("n4 registered", T, |c| {
        Ok(c.ctl_json(&["pending"])?["pending"]
            .as_array()
            .is_some_and(|p| !p.is_empty()))
    });
    c.ctl_ok(&["join", "n4"]);
    wait_listed(&c, n4, &["counter", "greet"]);
    c.nodes[0].kill();
    c.restart_node(0);
    c.wait_all_info("cluster_state", "ok", T);
    wait_listed(&c, 0, &["counter", "greet"]);
    c.cp.kill();
    c.cp.start();
    ember_tests::wait_until("the control plane answers", T, || {
        Ok(c.ctl(&["functions", "list"]).status.success())
    })
    .unwrap();
    let listing = c.ctl_ok(&["functions", "list"]);
    assert!(
        listing.contains("bump") && listing.contains("peek [no-writes]"),
        "{listing}"
    );

    // FUNCTION DELETE through one node removes the library everywhere.
    let ok: String = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("greet")
        .query(&mut c.conn(2).unwrap())
        .unwrap();
    assert_eq!(ok, "OK");
    for i in [0, 1, 2, n4] {
        wait_listed(&c, i, &["counter"]);
    }
    let out = c.ctl(&["functions", "delete", "greet"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Library not found"),
        "{out:?}"
    );
    assert_eq!(fcall(&c, "bump", "a", "1").unwrap(), Value::Int(6));
    c.ctl_ok(&["functions", "flush"]);
    for i in [0, 1, 2, n4] {
        wait_listed(&c, i, &[]);
    }
    let gone = fcall(&c, "bump", "a", "1").unwrap_err();
    assert_eq!(gone.detail(), Some("Function not found"), "{gone}");
}

/// redis-py's cluster client sends FUNCTION LOAD / DELETE to every primary and FCALL by
/// key: each primary answers as a lone Redis would, once.
#[test]
fn redis_py_cluster_client_loads_and_calls_functions() {
    let c = TestCluster::start(3, Duration::from_secs(5));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let script = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]), socket_timeout=10)
code = sys.argv[2]
# Sent to each primary: each answers with the library's name (the first commits it,
# the others find it committed already).
for attempt in range(2):
    r = rc.function_load(code)
    assert list(r.values()) == [b"counter"] * 3, (attempt, r)
for key in ["a", "b", "c", "{x}d"]:
    assert rc.fcall("bump", 1, key, 3) == 3, key
    assert rc.fcall_ro("peek", 1, key) == b"3", key
libs = rc.function_list()
assert b"counter" in str(libs).encode(), libs
r = rc.function_delete("counter")
assert list(r.values()) == [True] * 3, r
try:
    rc.fcall("bump", 1, "a", 1)
    raise AssertionError("the function is still there")
except Exception as e:
    assert "Function not found" in str(e), e
print("ok")
"#;
    assert_eq!(ember_tests::redis_py(&c, script, &[COUNTER]).trim(), "ok");
}
