#!/usr/bin/env bash
# Container tests: builds the offline image from host-built binaries (no registry
# needed), then runs tests/tests/containers.rs, which drives the same docker-compose.yml
# as users (`docker compose up`), with the image tag and a short node timeout overridden.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/docker/stage.sh target/docker-stage
docker build -q -t ember:test target/docker-stage >/dev/null
echo "built image ember:test"
EMBER_CONTAINER_TESTS=1 cargo test -p ember-tests --test containers -- --ignored --test-threads=1 --nocapture
