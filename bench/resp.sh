#!/usr/bin/env bash
# RESP throughput and memory, ember (one data node owning all 16384 slots) vs redis-server
# (no persistence), side by side on loopback.
#
# Memory first, on fresh processes: exactly N keys (default 1,000,000) `SET key:i <64 B>`
# loaded with `redis-cli --pipe`; then redis `used_memory`, ember `used_memory` and the
# RSS of both processes (VmRSS). Then, after FLUSHALL, throughput:
# `redis-benchmark -t set,get -n 1000000 -r 100000 -c 50 -d 64 -P {1,16} --csv`, ROUNDS
# (default 3) times per server, alternating; the table gives medians.
#
# Usage: bench/resp.sh [N_KEYS]     (run from anywhere; builds the release binaries)
# Every process it starts is killed and its temp dir removed on exit, also on error.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
REQS=${REQS:-1000000}
ROUNDS=${ROUNDS:-3}

cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
BIN=${CARGO_TARGET_DIR:-target}/release

source bench/lib.sh
bench_setup resp

start_redis_and_ember

# ---- memory ----
R_RSS0=$(rss "$RPID"); E_RSS0=$(rss "$EPID"); R_USED0=$(used "$RP"); E_USED0=$(used "$EP")
awk -v n="$KEYS" 'BEGIN {
  v = sprintf("%064d", 0); gsub(/0/, "x", v)
  for (i = 0; i < n; i++) { k = "key:" i; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n", length(k), k, v }
}' >"$TMP/load.resp"
redis-cli -p "$RP" --pipe <"$TMP/load.resp" >"$TMP/pipe-redis.txt"
redis-cli -p "$EP" --pipe <"$TMP/load.resp" >"$TMP/pipe-ember.txt"
rm -f "$TMP/load.resp"
R_KEYS=$(redis-cli -p "$RP" dbsize); E_KEYS=$(redis-cli -p "$EP" dbsize)
sleep 1
R_RSS=$(rss "$RPID"); E_RSS=$(rss "$EPID"); R_USED=$(used "$RP"); E_USED=$(used "$EP")
E_ALLOC=$(redis-cli -p "$EP" info memory | tr -d '\r' | awk -F: '$1=="mem_allocator" {print $2}')

echo
echo "## Memory: $KEYS keys, 64-byte values (date: $(date -u +%F))"
echo
echo "\`bench/resp.sh${1:+ $1}\` (keys loaded with \`redis-cli --pipe\`; DBSIZE redis $R_KEYS, ember $E_KEYS)"
echo
echo "| metric | redis 7 | ember | ember / redis |"
echo "|---|---|---|---|"
echo "| used_memory (INFO) | $(mib "$R_USED") | $(mib "$E_USED") ($E_ALLOC) | $(ratio "$E_USED" "$R_USED") |"
echo "| used_memory, minus empty | $(mib $((R_USED - R_USED0))) | $(mib $((E_USED - E_USED0))) | $(ratio $((E_USED - E_USED0)) $((R_USED - R_USED0))) |"
echo "| RSS (VmRSS) | $(mib "$R_RSS") | $(mib "$E_RSS") | $(ratio "$E_RSS" "$R_RSS") |"
echo "| RSS, minus empty process | $(mib $((R_RSS - R_RSS0))) | $(mib $((E_RSS - E_RSS0))) | $(ratio $((E_RSS - E_RSS0)) $((R_RSS - R_RSS0))) |"
echo "| bytes per key (RSS delta) | $(( (R_RSS - R_RSS0) / KEYS )) | $(( (E_RSS - E_RSS0) / KEYS )) | |"

# ---- throughput ----
# ROUNDS alternating runs per pipeline depth (redis, ember, redis, ember ...): one run on
# 2 shared cores moves by 10-20%, so the table gives each system's median.
redis-cli -p "$RP" flushall >/dev/null
redis-cli -p "$EP" flushall >/dev/null
for P in 1 16; do
  for R in $(seq "$ROUNDS"); do
    for SYS in redis ember; do
      PORT=$RP; [ "$SYS" = ember ] && PORT=$EP
      # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
      redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -n "$REQS" -r 100000 -c 50 -d 64 -P "$P" --csv |
        tr -d '"' | awk -F, -v s="$SYS" -v p="$P" '$1 != "test" { print s, p, $1, $2, $7 }' >>"$TMP/runs.txt"
    done
  done
done
stat() { awk -v s="$1" -v p="$2" -v t="$3" -v c="$4" '$1 == s && $2 == p && $3 == t { print $c }' "$TMP/runs.txt" | median; }

echo
echo "## RESP throughput (redis-benchmark, 50 clients, 64-byte values, 100k key space, $REQS requests, median of $ROUNDS)"
echo
echo "\`bench/resp.sh${1:+ $1}\` runs \`redis-benchmark -t set,get -n $REQS -r 100000 -c 50 -d 64 -P {1,16} --csv\` $ROUNDS times against each server, alternating"
echo
echo "| test | pipeline | redis rps | ember rps | ember / redis | redis p99 | ember p99 | ember / redis per run |"
echo "|---|---|---|---|---|---|---|---|"
for P in 1 16; do
  for T in SET GET; do
    r=$(stat redis "$P" "$T" 4); e=$(stat ember "$P" "$T" 4)
    runs=$(paste -d' ' <(awk -v p="$P" -v t="$T" '$1 == "redis" && $2 == p && $3 == t { print $4 }' "$TMP/runs.txt") \
                       <(awk -v p="$P" -v t="$T" '$1 == "ember" && $2 == p && $3 == t { print $4 }' "$TMP/runs.txt") |
           awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $2 / $1 }')
    echo "| $T | $P | $r | $e | $(ratio "$e" "$r") | $(stat redis "$P" "$T" 5) ms | $(stat ember "$P" "$T" 5) ms | $runs |"
  done
done
echo
echo "(redis-benchmark, the server under test and the other server share the machine's $(nproc) cores; ember runs $(redis-cli -p "$EP" config get io-threads | tail -1) connection thread(s).)"
