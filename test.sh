#!/usr/bin/env bash
# Runs every test of ember: unit, property, differential (against redis-server) and
# end-to-end tests (real processes on loopback) with cargo, a bounded fuzzing run of the
# request path (tests/fuzz.sh), then the container tests (tests/docker/run.sh) when a
# Docker engine is available.
#
# Needs Debian's redis-server, redis-cli and etcd (installs them when missing and run as root)
# and python3 with redis-py (installs it with pip when missing).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v etcd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing redis-server, redis-tools and etcd-server (the differential, e2e and control-plane HA tests use them)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools etcd-server >/dev/null
  else
    echo "error: redis-server, redis-cli and etcd are needed: apt-get install redis-server redis-tools etcd-server" >&2
    exit 1
  fi
fi

# tests/tests/clients.rs drives an ember cluster with redis-py's cluster client.
if ! python3 -c "import redis.cluster" 2>/dev/null; then
  echo "installing redis-py for python3 (the redis-py cluster client test uses it)"
  python3 -m pip install --quiet redis || {
    echo "error: python3 with redis-py is needed: python3 -m pip install redis" >&2
    exit 1
  }
fi

cargo test --workspace

tests/fuzz.sh

if [ "${EMBER_SKIP_DOCKER_TESTS:-0}" != 1 ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  tests/docker/run.sh
else
  echo "container tests skipped: no Docker engine (or EMBER_SKIP_DOCKER_TESTS=1)"
  if [ "${CI:-}" = true ]; then
    echo "error: CI must run the container tests" >&2
    exit 1
  fi
fi
