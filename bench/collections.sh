#!/usr/bin/env bash
# Big sets and hashes, ember (one data node owning all 16384 slots) vs redis-server (no
# persistence), side by side on loopback.
#
# Memory, on fresh processes for each collection: one set of N members (`SADD s m:i`)
# or one hash of N fields (`HSET h f:i <16 B>`), default N = 1,000,000, loaded with
# `redis-cli --pipe`; used_memory and RSS (VmRSS) deltas over the empty process.
# Then random picks on a 100k-member set / 100k-field hash:
# `redis-benchmark -n REQS -c 50 SRANDMEMBER s | SRANDMEMBER s 10 | SPOP s | HRANDFIELD h`.
#
# Usage: bench/collections.sh [N]   (builds the release binaries; EMBER_BIN=dir runs the
# ember binaries of another build, e.g. to compare with an older commit)
# Every process it starts is killed and its temp dir removed on exit, also on error.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
REQS=${REQS:-100000}

if [ -z "${EMBER_BIN:-}" ]; then
  cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
  EMBER_BIN=${CARGO_TARGET_DIR:-target}/release
fi

source bench/lib.sh
bench_setup coll

# start_redis / start_ember: set PORT and PID.
start_redis() {
  PORT=$(free_port)
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis-$PORT.log" &
  PID=$!; PIDS+=("$PID")
  for _ in $(seq 100); do redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
}
start_ember() {
  local cp eip
  PORT=$(free_port); cp=$(free_port); eip=$(free_port)
  RUST_LOG=warn "$EMBER_BIN/ember-control-plane" --listen "127.0.0.1:$cp" --data-dir "$TMP/cp-$PORT" \
    2>"$TMP/cp-$PORT.log" &
  PIDS+=("$!")
  RUST_LOG=warn "$EMBER_BIN/ember-data-node" --port "$PORT" --internal-port "$eip" \
    --control-plane "http://127.0.0.1:$cp" --data-dir "$TMP/n-$PORT" --name n1 2>"$TMP/n-$PORT.log" &
  PID=$!; PIDS+=("$PID")
  "$EMBER_BIN/emberctl" --control-plane "http://127.0.0.1:$cp" bootstrap --wait 30s n1 >/dev/null
  for _ in $(seq 300); do
    redis-cli -p "$PORT" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
}

# load KIND COUNT: the RESP of one set (KIND=set) or hash (KIND=hash) of COUNT elements.
load() {
  awk -v n="$2" -v kind="$1" 'BEGIN {
    per = 1000
    for (i = 0; i < n; i += per) {
      m = (n - i < per) ? n - i : per
      if (kind == "set") { printf "*%d\r\n$4\r\nSADD\r\n$1\r\ns\r\n", m + 2 }
      else { printf "*%d\r\n$4\r\nHSET\r\n$1\r\nh\r\n", 2 * m + 2 }
      for (j = i; j < i + m; j++) {
        f = (kind == "set" ? "m:" : "f:") j
        printf "$%d\r\n%s\r\n", length(f), f
        if (kind == "hash") { v = sprintf("v:%014d", j); printf "$%d\r\n%s\r\n", length(v), v }
      }
    }
  }'
}

echo
echo "## Big collections: memory ($N elements, date: $(date -u +%F))"
echo
echo "\`bench/collections.sh${1:+ $1}\` (members \`m:i\`; fields \`f:i\`, values 16 B; fresh processes, deltas over the empty process)"
echo
echo "| collection | redis used_memory | ember used_memory | ember / redis | redis RSS | ember RSS | ember / redis | ember RSS bytes per element |"
echo "|---|---|---|---|---|---|---|---|"
for KIND in set hash; do
  load "$KIND" "$N" >"$TMP/load.resp"
  declare -A U R
  for SYS in redis ember; do
    "start_$SYS"
    r0=$(rss "$PID"); u0=$(used "$PORT")
    redis-cli -p "$PORT" --pipe <"$TMP/load.resp" >/dev/null
    sleep 1
    U[$SYS]=$(( $(used "$PORT") - u0 )); R[$SYS]=$(( $(rss "$PID") - r0 ))
    { kill -9 "$PID"; wait "$PID"; } 2>/dev/null || true
  done

  echo "| $KIND | $(mib "${U[redis]}") | $(mib "${U[ember]}") | $(ratio "${U[ember]}" "${U[redis]}") | $(mib "${R[redis]}") | $(mib "${R[ember]}") | $(ratio "${R[ember]}" "${R[redis]}") | $(( R[ember] / N )) |"
done
rm -f "$TMP/load.resp"

echo
echo "## Big collections: random picks on 100,000 elements (redis-benchmark -n $REQS -c 50, rps)"
echo
echo "| command | redis | ember | ember / redis |"
echo "|---|---|---|---|"
start_redis; RP=$PORT
start_ember; EP=$PORT
for P in "$RP" "$EP"; do
  load set 100000 | redis-cli -p "$P" --pipe >/dev/null
  load hash 100000 | redis-cli -p "$P" --pipe >/dev/null
done
bench() { redis-benchmark -h 127.0.0.1 -p "$1" -n "$REQS" -c 50 --csv "${@:2}" | tr -d '"' | awk -F, 'NR == 2 { print $2 }'; }
for CMD in "SRANDMEMBER s" "SRANDMEMBER s 10" "HRANDFIELD h" "HRANDFIELD h -5 WITHVALUES" "SPOP s"; do
  # shellcheck disable=SC2086
  r=$(bench "$RP" $CMD); e=$(bench "$EP" $CMD)
  echo "| \`$CMD\` | $r | $e | $(ratio "$e" "$r") |"
done
