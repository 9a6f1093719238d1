# Shared by the bench/*.sh scripts (sourced, not run): a temp dir and the list of
# processes started, removed and killed on exit (also on error), and the measuring helpers.

# bench_setup NAME: creates $TMP and $PIDS and installs the cleanup.
bench_setup() {
  TMP=$(mktemp -d "/tmp/ember-bench-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
used() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1=="used_memory" {print $2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.1f MiB", a / 1048576 }'; }

# start_redis_and_ember: a redis-server (no persistence) on $RP and one ember data node
# owning every slot on $EP (its control plane on $CP), both answering; $RPID and $EPID
# are their pids ($CPID the control plane's). Needs $BIN (the release binaries) and bench_setup first. Flags in the
# arrays PERSIST (both servers, e.g. `--appendonly yes`) are added to both.
start_redis_and_ember() {
  RP=$(free_port); CP=$(free_port); EP=$(free_port); EIP=$(free_port)
  local persist=(--appendonly no)
  [ -n "${PERSIST+x}" ] && persist=("${PERSIST[@]}")
  mkdir -p "$TMP/redis-$RP"
  redis-server --port "$RP" --bind 127.0.0.1 --save '' "${persist[@]}" --dir "$TMP/redis-$RP" \
    --logfile "$TMP/redis.log" &
  RPID=$!; PIDS+=("$RPID")
  RUST_LOG=warn "$BIN/ember-control-plane" --listen "127.0.0.1:$CP" --data-dir "$TMP/cp-$CP" \
    2>"$TMP/cp.log" &
  CPID=$!; PIDS+=("$CPID")
  RUST_LOG=warn "$BIN/ember-data-node" --port "$EP" --internal-port "$EIP" \
    --control-plane "http://127.0.0.1:$CP" --data-dir "$TMP/n1-$EP" --name n1 \
    ${PERSIST+"${PERSIST[@]}"} 2>"$TMP/n1.log" &
  EPID=$!; PIDS+=("$EPID")
  "$BIN/emberctl" --control-plane "http://127.0.0.1:$CP" bootstrap --wait 30s n1 >/dev/null
  for _ in $(seq 300); do
    if redis-cli -p "$EP" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
       redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.1
  done
  redis-cli -p "$EP" cluster info | grep -q 'cluster_state:ok' || { echo "ember not ok" >&2; exit 1; }
}
