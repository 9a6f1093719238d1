#!/usr/bin/env python3
"""Failover time, ember vs a Redis 7 Cluster, side by side on loopback.

Both clusters: 3 primaries with one replica each, the same node timeout. Each run
kill -9s the primary owning a probe key, then polls every ~2 ms until
  route: every surviving node either serves the key or redirects (MOVED) to the new
         primary (GET, so nothing is written meanwhile), and
  write: a SET of the key on the new primary succeeds.
The killed node is restarted afterwards (it rejoins as a replica) and the next run
kills the primary of another probe key. Prints a markdown table (medians and ranges).

Usage: bench/failover.py BIN_DIR [RUNS] [TIMEOUTS_MS...]   (bench/failover.sh runs it)
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

BIN = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
TIMEOUTS = [int(t) for t in sys.argv[3:]] or [1000, 5000]
PROBES = ["probe:a", "probe:b", "probe:c", "probe:d", "probe:e", "probe:f"]


def free_port():
    """A free port below 55536 whose +10000 (Redis's cluster bus port) is free too."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p > 55535:
            continue
        try:
            b = socket.socket()
            b.bind(("127.0.0.1", p + 10000))
            b.close()
            return p
        except OSError:
            continue


def wait(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def conn(port):
    return redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.2)


def info(port, section="replication"):
    return conn(port).info(section)


STARTED = []  # every process, killed when the script ends (also on errors)


class Node:
    def __init__(self, argv, log, env=None):
        self.argv, self.log, self.env, self.proc = argv, log, env, None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env)
        STARTED.append(self)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class Cluster:
    """What the measurement needs of either system."""

    def __init__(self, tmp, timeout_ms):
        self.tmp, self.timeout_ms, self.nodes, self.ports, self.extra = tmp, timeout_ms, [], [], []

    def stop(self):
        for n in self.nodes + self.extra:
            n.kill()

    def primary_of(self, key):
        """The port of the node serving `key` (asked of any live node)."""
        for p in self.live():
            try:
                conn(p).get(key)
                if info(p)["role"] == "master":
                    return p
            except redis.exceptions.ResponseError as e:  # MOVED slot host:port
                return int(str(e).split()[-1].rsplit(":", 1)[1])
        raise SystemExit("no node answers")

    def live(self):
        return [p for p, n in zip(self.ports, self.nodes) if n.proc.poll() is None]

    def replica_of(self, port):
        for p in self.live():
            i = info(p)
            if i.get("role") == "slave" and int(i.get("master_port", 0)) == port and i.get("master_link_status") == "up":
                return p
        return None

    def healthy(self):
        return all(conn(p).execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") >= 0
                   for p in self.live()) and all(
            self.replica_of(p) for p in self.live() if info(p)["role"] == "master")


def routes_to(port, key, target):
    try:
        conn(port).get(key)
        return port == target
    except redis.exceptions.ResponseError as e:
        return str(e).split()[-1].endswith(f":{target}")
    except Exception:
        return False


def measure(cluster, key):
    victim = cluster.primary_of(key)
    heir = cluster.replica_of(victim)
    assert heir, "the victim has a replica in sync"
    conn(victim).set(key, "before")
    i = cluster.ports.index(victim)
    t0 = time.monotonic()
    cluster.nodes[i].kill()
    route = write = None
    while write is None or route is None:
        now = time.monotonic()
        if now - t0 > 60:
            raise SystemExit("no failover within 60 s")
        if route is None and all(routes_to(p, key, heir) for p in cluster.live()):
            route = time.monotonic() - t0
        if write is None:
            try:
                conn(heir).set(key, "after")
                write = time.monotonic() - t0
            except Exception:
                pass
        time.sleep(0.002)
    cluster.nodes[i].start()
    wait("the cluster recovers with every shard replicated", cluster.healthy, 120)
    return route, write


def redis_cluster(tmp, timeout_ms):
    c = Cluster(tmp, timeout_ms)
    for k in range(6):
        p = free_port()
        d = os.path.join(tmp, f"r{p}")
        os.makedirs(d)
        n = Node(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                  "--cluster-node-timeout", str(timeout_ms), "--cluster-config-file", f"{d}/nodes.conf",
                  "--dir", d, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                  "--logfile", f"{d}/log"], f"{d}/out")
        n.start()
        c.nodes.append(n)
        c.ports.append(p)
    for p in c.ports:
        wait("redis up", lambda p=p: conn(p).ping())
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in c.ports],
                    "--cluster-replicas", "1", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
    wait("redis cluster ok", c.healthy, 120)
    return c


def ember_cluster(tmp, timeout_ms):
    c = Cluster(tmp, timeout_ms)
    cp = free_port()
    env = dict(os.environ, RUST_LOG="warn")
    cpn = Node([f"{BIN}/ember-control-plane", "--listen", f"127.0.0.1:{cp}", "--data-dir", f"{tmp}/cp",
                "--node-timeout", f"{timeout_ms}ms"], f"{tmp}/cp.log", env)
    cpn.start()
    c.extra.append(cpn)
    names = []
    for k in range(6):
        p, ip = free_port(), free_port()
        name = f"n{k + 1}"
        n = Node([f"{BIN}/ember-data-node", "--port", str(p), "--internal-port", str(ip), "--control-plane",
                  f"http://127.0.0.1:{cp}", "--data-dir", f"{tmp}/{name}", "--name", name], f"{tmp}/{name}.log", env)
        n.start()
        c.nodes.append(n)
        c.ports.append(p)
        names.append(name)
    for p in c.ports:
        wait("ember up", lambda p=p: conn(p).ping())
    subprocess.run([f"{BIN}/emberctl", "--control-plane", f"http://127.0.0.1:{cp}", "bootstrap", "--wait", "60s",
                    "--replicas", "1", *names], check=True, stdout=subprocess.DEVNULL)
    wait("ember cluster ok", c.healthy, 120)
    return c


def fmt(xs):
    return f"{statistics.median(xs) * 1000:.0f} ms ({min(xs) * 1000:.0f}-{max(xs) * 1000:.0f})"


def main():
    rows = []
    for timeout_ms in TIMEOUTS:
        results = {}
        for name, make in [("redis", redis_cluster), ("ember", ember_cluster)]:
            tmp = tempfile.mkdtemp(prefix=f"ember-bench-failover-{name}-")
            c = None
            try:
                c = make(tmp, timeout_ms)
                runs = [measure(c, PROBES[r % len(PROBES)]) for r in range(RUNS)]
            finally:
                if c:
                    c.stop()
                shutil.rmtree(tmp, ignore_errors=True)
            results[name] = runs
            print(f"{name} node-timeout {timeout_ms} ms: {runs}", file=sys.stderr)
        rows.append((timeout_ms, results))
    print(f"| node timeout | redis: routed | redis: write ok | ember: routed | ember: write ok | ember - node timeout (write) |")
    print("|---|---|---|---|---|---|")
    for timeout_ms, r in rows:
        over = statistics.median([w for _, w in r["ember"]]) * 1000 - timeout_ms
        print(f"| {timeout_ms} ms | {fmt([x for x, _ in r['redis']])} | {fmt([w for _, w in r['redis']])} | "
              f"{fmt([x for x, _ in r['ember']])} | {fmt([w for _, w in r['ember']])} | {over:+.0f} ms |")


if __name__ == "__main__":
    try:
        main()
    finally:
        for n in STARTED:
            n.kill()
