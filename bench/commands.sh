#!/usr/bin/env bash
# Issue 13's commands, ember (one data node owning all 16384 slots) vs redis-server, side
# by side on loopback, with redis-benchmark:
#
# - PUBLISH with one subscriber attached to the channel (redis-cli reading every message);
# - EVALSHA of a small script (`return redis.call('INCR', KEYS[1])`), and FCALL of the
#   same as a function (loaded through the node, so through ember's control plane);
# - a queue: consumers looping on `BLPOP q 1` while producers `LPUSH q x` (two
#   redis-benchmark runs at once, N each); the consumers' rate is the queue's throughput.
#
# 50 clients (queue: 25 consumers, 25 producers), -P 1 and 16 (queue: -P 1 only: a
# pipelined BLPOP would block the rest of the pipeline), ROUNDS (default 3) alternating
# runs per server, medians.
#
# Usage: bench/commands.sh      (run from anywhere; builds the release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${REQS:-500000}
ROUNDS=${ROUNDS:-3}

cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
BIN=${CARGO_TARGET_DIR:-target}/release

source bench/lib.sh
bench_setup commands

start_redis_and_ember

# One subscriber per server, reading (and discarding) every message.
for PORT in "$RP" "$EP"; do
  redis-cli -p "$PORT" subscribe news >/dev/null &
  PIDS+=("$!")
done
SCRIPT="return redis.call('INCR', KEYS[1])"
R_SHA=$(redis-cli -p "$RP" script load "$SCRIPT")
E_SHA=$(redis-cli -p "$EP" script load "$SCRIPT")
[ "$R_SHA" = "$E_SHA" ] || { echo "SCRIPT LOAD differs: $R_SHA vs $E_SHA" >&2; exit 1; }
LIB="#!lua name=bench
redis.register_function('incr', function(keys) return redis.call('INCR', keys[1]) end)"
for PORT in "$RP" "$EP"; do
  [ "$(redis-cli -p "$PORT" function load replace "$LIB")" = bench ] || { echo "FUNCTION LOAD failed on $PORT" >&2; exit 1; }
done

# bench SYS PORT NAME PIPELINE CMD...: one redis-benchmark run, appended to runs.txt.
bench() {
  local sys=$1 port=$2 name=$3 p=$4; shift 4
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQS" -c 50 -P "$p" --csv "$@" |
    tr -d '"' | awk -F, -v s="$sys" -v n="$name" -v p="$p" '$1 != "test" { print s, n, p, $2, $7 }' >>"$TMP/runs.txt"
}
queue() {
  local sys=$1 port=$2
  redis-cli -p "$port" del q >/dev/null
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQS" -c 25 --csv LPUSH q x >/dev/null &
  local producers=$!
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQS" -c 25 --csv BLPOP q 1 |
    tr -d '"' | awk -F, -v s="$sys" '$1 != "test" { print s, "queue", 1, $2, $7 }' >>"$TMP/runs.txt"
  wait "$producers"
}
for R in $(seq "$ROUNDS"); do
  for SYS in redis ember; do
    PORT=$RP; [ "$SYS" = ember ] && PORT=$EP
    for P in 1 16; do
      bench "$SYS" "$PORT" publish "$P" PUBLISH news hello
      bench "$SYS" "$PORT" evalsha "$P" EVALSHA "$R_SHA" 1 counter
      bench "$SYS" "$PORT" fcall "$P" FCALL incr 1 counter
    done
    queue "$SYS" "$PORT"
  done
done
stat() { awk -v s="$1" -v n="$2" -v p="$3" -v c="$4" '$1 == s && $2 == n && $3 == p { print $c }' "$TMP/runs.txt" | median; }

echo
echo "## Pub/sub, scripting, blocking queue (date: $(date -u +%F); median of $ROUNDS)"
echo
echo "\`bench/commands.sh\`: redis-benchmark -n $REQS -c 50: \`PUBLISH news hello\` with one subscriber reading, \`EVALSHA <sha of return redis.call('INCR', KEYS[1])> 1 counter\`, \`FCALL incr 1 counter\` (the same as a function), and a queue (25 clients \`LPUSH q x\` while 25 clients \`BLPOP q 1\`; the consumers' rate)"
echo
echo "| test | pipeline | redis rps | ember rps | ember / redis | redis p99 | ember p99 |"
echo "|---|---|---|---|---|---|---|"
for T in publish evalsha fcall queue; do
  for P in 1 16; do
    [ "$T" = queue ] && [ "$P" = 16 ] && continue
    r=$(stat redis "$T" "$P" 4); e=$(stat ember "$T" "$P" 4)
    echo "| $T | $P | $r | $e | $(ratio "$e" "$r") | $(stat redis "$T" "$P" 5) ms | $(stat ember "$T" "$P" 5) ms |"
  done
done
echo
echo "(redis-benchmark, the subscribers and both servers share the machine's $(nproc) cores.)"
