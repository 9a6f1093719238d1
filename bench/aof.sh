#!/usr/bin/env bash
# The append-only file's cost: SET throughput with `appendonly yes`, ember (one data node
# owning all 16384 slots) vs redis-server with the same flags, side by side on loopback,
# for each of `appendfsync everysec` and `always`, and both without persistence as the
# baseline. redis-benchmark -c 50, -P 1 and 16, ROUNDS (default 3) alternating runs per
# server, medians. Both servers write to the same disk (the temp dir).
#
# Usage: bench/aof.sh      (run from anywhere; builds the release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${REQS:-300000}
ROUNDS=${ROUNDS:-3}

cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
BIN=${CARGO_TARGET_DIR:-target}/release

source bench/lib.sh
bench_setup aof

bench() {
  local sys=$1 port=$2 mode=$3 p=$4
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$REQS" -c 50 -P "$p" -r 100000 -d 64 --csv SET key:__rand_int__ xxx |
    tr -d '"' | awk -F, -v s="$sys" -v m="$mode" -v p="$p" '$1 != "test" { print s, m, p, $2, $7 }' >>"$TMP/runs.txt"
}
for MODE in off everysec always; do
  case $MODE in
    off) PERSIST=(--appendonly no) ;;
    *) PERSIST=(--appendonly yes --appendfsync "$MODE") ;;
  esac
  start_redis_and_ember
  for R in $(seq "$ROUNDS"); do
    for P in 1 16; do
      bench redis "$RP" "$MODE" "$P"
      bench ember "$EP" "$MODE" "$P"
    done
  done
  if [ "$MODE" != off ]; then
    redis-cli -p "$EP" info persistence | tr -d '\r' | grep -q '^aof_enabled:1' || { echo "ember's AOF is off" >&2; exit 1; }
    redis-cli -p "$RP" info persistence | tr -d '\r' | grep -q '^aof_enabled:1' || { echo "redis's AOF is off" >&2; exit 1; }
  fi
  kill -9 "$RPID" "$EPID" "$CPID"
done
stat() { awk -v s="$1" -v m="$2" -v p="$3" -v c="$4" '$1 == s && $2 == m && $3 == p { print $c }' "$TMP/runs.txt" | median; }

echo
echo "## Append-only file: SET throughput (date: $(date -u +%F); median of $ROUNDS)"
echo
echo "\`bench/aof.sh\`: redis-benchmark -n $REQS -c 50 -r 100000 -d 64 \`SET key:__rand_int__ xxx\`, each server with the same \`--appendonly\` / \`--appendfsync\` flags"
echo
echo "| appendfsync | pipeline | redis rps | ember rps | ember / redis | redis p99 | ember p99 |"
echo "|---|---|---|---|---|---|---|"
for MODE in off everysec always; do
  for P in 1 16; do
    r=$(stat redis "$MODE" "$P" 4); e=$(stat ember "$MODE" "$P" 4)
    echo "| $MODE | $P | $r | $e | $(ratio "$e" "$r") | $(stat redis "$MODE" "$P" 5) ms | $(stat ember "$MODE" "$P" 5) ms |"
  done
done
echo
echo "(off: no persistence on either. redis-benchmark and both servers share the machine's $(nproc) cores and disk.)"
