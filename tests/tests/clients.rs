//! Other clients than the `redis` crate against a real ember cluster, and what a real
//! data node (with its own global allocator) reports about itself.

use std::process::Command;
use std::time::Duration;

use ember_tests::TestCluster;

const T: Duration = Duration::from_secs(20);

/// redis-py's cluster client routes `MEMORY USAGE key` by the subcommand's key
/// specification in `COMMAND`'s reply (the container `memory` has no keys itself), so
/// it needs Redis 7's reply shape, subcommands included.
#[test]
fn redis_py_cluster_client_runs_memory_usage() {
    let probe = Command::new(ember_tests::PYTHON)
        .args(["-c", "import redis.cluster"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): this test needs Python 3",
                ember_tests::PYTHON
            )
        });
    assert!(
        probe.status.success(),
        "this test needs redis-py (python3 -m pip install redis): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let c = TestCluster::start(3, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let script = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]), socket_timeout=5)
for key in ["user:1", "{t}x", "another key"]:
    rc.set(key, "v" * 1000)
    n = rc.memory_usage(key)
    assert isinstance(n, int) and n >= 1000, (key, n)
    print(key, n)
assert rc.memory_usage("missing") is None
"#;
    assert_eq!(ember_tests::redis_py(&c, script, &[]).lines().count(), 3);
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// `used_memory` is what the allocator has handed out, not the resident set size
/// (`used_memory_rss`): far below it on an idle node, and it follows the data.
#[test]
fn used_memory_is_the_allocators_figure() {
    let c = TestCluster::start(1, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1"]);
    c.wait_all_info("cluster_state", "ok", T);
    let mut con = c.conn(0).unwrap();
    let used = info_field(&mut con, "memory", "used_memory");
    let rss = info_field(&mut con, "memory", "used_memory_rss");
    assert!(used > 0 && used < rss / 2, "used_memory {used}, rss {rss}");
    let big = vec![b'x'; 16 << 20];
    redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query::<()>(&mut con)
        .unwrap();
    let with = info_field(&mut con, "memory", "used_memory");
    assert!(
        // The value's 16 MiB, less whatever the connection's buffers gave back meanwhile.
        with >= used + (15 << 20),
        "used_memory {used} -> {with} after 16 MiB"
    );
    redis::cmd("DEL").arg("big").query::<()>(&mut con).unwrap();
    let without = info_field(&mut con, "memory", "used_memory");
    assert!(
        without + (15 << 20) <= with,
        "used_memory {with} -> {without} after DEL"
    );
}

/// redis-py's cluster client: pub/sub across nodes, sharded pub/sub routed by slot,
/// BLPOP served by a push from another client, a registered script (EVALSHA, NOSCRIPT,
/// SCRIPT LOAD on every primary) and a transaction-free lock released by a script.
#[test]
fn redis_py_cluster_client_uses_pubsub_blocking_pops_and_scripts() {
    let c = TestCluster::start(3, Duration::from_secs(2));
    c.ctl_ok(&["bootstrap", "n1", "n2", "n3"]);
    c.wait_all_info("cluster_state", "ok", T);
    let script = r#"
import sys, threading, time
from redis.cluster import RedisCluster, ClusterNode
port = int(sys.argv[1])
rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=10)

# Classic pub/sub: subscribed through one node, published through the cluster client
# (which sends PUBLISH to some node): every message arrives, in order.
p = rc.pubsub(node=rc.get_nodes()[0])
p.subscribe("news")
assert p.get_message(timeout=5)["type"] == "subscribe"
for i in range(20):
    rc.publish("news", f"m{i}")
got = []
deadline = time.time() + 10
while len(got) < 20 and time.time() < deadline:
    m = p.get_message(timeout=1)
    if m and m["type"] == "message":
        got.append(m["data"].decode())
assert got == [f"m{i}" for i in range(20)], got
print("pubsub ok")

# Sharded pub/sub: redis-py routes SSUBSCRIBE and SPUBLISH by the channel's slot.
sp = rc.pubsub()
sp.ssubscribe("orders:{eu}")
m = sp.get_sharded_message(timeout=5)
assert m["type"] == "ssubscribe", m
assert rc.spublish("orders:{eu}", "o1") == 1
m = sp.get_sharded_message(timeout=5)
assert m and m["type"] == "smessage" and m["data"] == b"o1", m
print("sharded ok")

# BLPOP blocks until another client pushes.
result = {}
def worker():
    result["v"] = RedisCluster(host="127.0.0.1", port=port, socket_timeout=10).blpop(["jobs:{q}"], timeout=5)
t = threading.Thread(target=worker)
t.start()
time.sleep(0.2)
rc.rpush("jobs:{q}", "j1")
t.join()
assert result["v"] == (b"jobs:{q}", b"j1") or result["v"] == [b"jobs:{q}", b"j1"], result
print("blpop ok")

# A lock: SET NX PX to take it, a script to release it only by its owner.
release = rc.register_script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
assert rc.set("lock:{r}", "me", nx=True, px=10000)
assert not rc.set("lock:{r}", "you", nx=True, px=10000)
assert release(keys=["lock:{r}"], args=["you"]) == 0
assert release(keys=["lock:{r}"], args=["me"]) == 1
assert rc.get("lock:{r}") is None
print("script ok")
"#;
    assert_eq!(ember_tests::redis_py(&c, script, &[]).lines().count(), 4);
}
