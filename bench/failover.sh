#!/usr/bin/env bash
# Failover time, kill -9 of a primary: ember vs a Redis 7 Cluster (3 primaries + 3
# replicas each, same node timeout), side by side on loopback. See bench/failover.py.
#
# Usage: bench/failover.sh [RUNS] [NODE_TIMEOUTS_MS...]   (default: 3 runs, 1000 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ember-data-node -p ember-control-plane -p emberctl
echo
echo "## Failover: kill -9 of a primary (date: $(date -u +%F))"
echo
echo "\`bench/failover.sh $*\`"
echo
python3 bench/failover.py "${CARGO_TARGET_DIR:-target}/release" "$@"
