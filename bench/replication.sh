#!/usr/bin/env bash
# Replication, ember vs redis-server side by side on loopback: a primary and one replica
# each (redis: `replicaof`; ember: `emberctl join --replica-of`), no persistence.
#
# 1. Full sync: N keys (default 1,000,000) `SET key:i <100 B>` loaded into each primary
#    with `redis-cli --pipe`, then the replica attached; time until the replica reports
#    `master_link_status:up` (and its DBSIZE).
# 2. Cost of replicating: `redis-benchmark -t set -n REQS -r 100000 -c 50 -d 64 -P {1,16}`
#    against each primary with its replica attached, ROUNDS (default 3) times, alternating;
#    medians. Meanwhile the replica's lag (primary offset minus replica offset, bytes) is
#    sampled every ~20 ms; the table gives its p99 and max.
#
# Usage: bench/replication.sh [N_KEYS]   (builds the release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
REQS=${REQS:-500000}
ROUNDS=${ROUNDS:-3}

cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
BIN=${CARGO_TARGET_DIR:-target}/release
source bench/lib.sh
bench_setup replication

RP=$(free_port); RR=$(free_port); CP=$(free_port)
E1=$(free_port); E1I=$(free_port); E2=$(free_port); E2I=$(free_port)
for p in "$RP" "$RR"; do
  # No diskless-sync delay (Redis waits 5 s by default for more replicas to arrive).
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --dbfilename "dump-$p.rdb" --logfile "$TMP/redis-$p.log" --repl-diskless-sync-delay 0 &
  PIDS+=("$!")
done
RUST_LOG=warn "$BIN/ember-control-plane" --listen "127.0.0.1:$CP" --data-dir "$TMP/cp" 2>"$TMP/cp.log" &
PIDS+=("$!")
for n in 1 2; do
  port=E$n; iport=E${n}I
  RUST_LOG=warn "$BIN/ember-data-node" --port "${!port}" --internal-port "${!iport}" \
    --control-plane "http://127.0.0.1:$CP" --data-dir "$TMP/n$n" --name "n$n" 2>"$TMP/n$n.log" &
  PIDS+=("$!")
done
CTL=("$BIN/emberctl" --control-plane "http://127.0.0.1:$CP")
"${CTL[@]}" bootstrap --wait 30s n1 >/dev/null
for _ in $(seq 300); do
  redis-cli -p "$E1" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
  sleep 0.1
done

field() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
now() { date +%s.%N; }
wait_up() { # port: seconds until master_link_status:up
  local t0; t0=$(now)
  for _ in $(seq 6000); do
    [ "$(field "$1" master_link_status)" = up ] && break
    sleep 0.01
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}

# ---- full sync ----
awk -v n="$KEYS" 'BEGIN {
  v = sprintf("%0100d", 0); gsub(/0/, "x", v)
  for (i = 0; i < n; i++) { k = "key:" i; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n", length(k), k, v }
}' >"$TMP/load.resp"
redis-cli -p "$RP" --pipe <"$TMP/load.resp" >/dev/null
redis-cli -p "$E1" --pipe <"$TMP/load.resp" >/dev/null
rm -f "$TMP/load.resp"
redis-cli -p "$RR" replicaof 127.0.0.1 "$RP" >/dev/null
R_SYNC=$(wait_up "$RR")
"${CTL[@]}" join n2 --replica-of n1 >/dev/null
E_SYNC=$(wait_up "$E2")
R_KEYS=$(redis-cli -p "$RR" dbsize); E_KEYS=$(redis-cli -p "$E2" dbsize)

echo
echo "## Replication (date: $(date -u +%F))"
echo
echo "\`bench/replication.sh${1:+ $1}\`"
echo
echo "Full sync of $KEYS keys x 100 B to a new replica (until \`master_link_status:up\`):"
echo
echo "| | redis 7 | ember | ember / redis |"
echo "|---|---|---|---|"
echo "| full sync | ${R_SYNC} s ($R_KEYS keys) | ${E_SYNC} s ($E_KEYS keys) | $(ratio "$E_SYNC" "$R_SYNC") |"

# ---- SET with a replica attached, and its lag ----
redis-cli -p "$RP" flushall >/dev/null
redis-cli -p "$E1" flushall >/dev/null
sample_lag() { # primary replica out: lag samples until killed
  while :; do
    # The replica first: the primary read after it is never behind it.
    b=$(field "$2" master_repl_offset); a=$(field "$1" master_repl_offset)
    [ -n "$a" ] && [ -n "$b" ] && echo $((a - b))
    sleep 0.02
  done >>"$3"
}
pct() { sort -g | awk -v q="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * q + 0.5) + 1; print (NR ? v[i] : "n/a") }'; }
for P in 1 16; do
  for R in $(seq "$ROUNDS"); do
    for SYS in redis ember; do
      PRI=$RP; REP=$RR; [ "$SYS" = ember ] && { PRI=$E1; REP=$E2; }
      sample_lag "$PRI" "$REP" "$TMP/lag-$SYS-$P.txt" &
      LAGPID=$!
      redis-benchmark -h 127.0.0.1 -p "$PRI" -t set -n "$REQS" -r 100000 -c 50 -d 64 -P "$P" --csv |
        tr -d '"' | awk -F, -v s="$SYS" -v p="$P" '$1 == "SET" { print s, p, $2 }' >>"$TMP/runs.txt"
      kill "$LAGPID" 2>/dev/null; wait "$LAGPID" 2>/dev/null || true
    done
  done
done
stat() { awk -v s="$1" -v p="$2" '$1 == s && $2 == p { print $3 }' "$TMP/runs.txt" | median; }

echo
echo "SET with one replica attached (\`redis-benchmark -t set -n $REQS -r 100000 -c 50 -d 64 -P {1,16}\`, median of $ROUNDS, alternating); replica lag sampled every ~20 ms during the runs:"
echo
echo "| pipeline | redis rps | ember rps | ember / redis | redis lag p99 / max | ember lag p99 / max |"
echo "|---|---|---|---|---|---|"
for P in 1 16; do
  r=$(stat redis "$P"); e=$(stat ember "$P")
  rl="$(pct 0.99 <"$TMP/lag-redis-$P.txt") / $(pct 1 <"$TMP/lag-redis-$P.txt") B"
  el="$(pct 0.99 <"$TMP/lag-ember-$P.txt") / $(pct 1 <"$TMP/lag-ember-$P.txt") B"
  echo "| $P | $r | $e | $(ratio "$e" "$r") | $rl | $el |"
done
echo
echo "(All four servers, redis-benchmark and the lag sampler share the machine's $(nproc) cores.)"
