#!/usr/bin/env bash
# Fuzzes the data node's request path (RESP parsing and command execution) for a
# bounded time: EMBER_FUZZ_SECONDS (default 60; 0 skips). Installs cargo-fuzz if missing.
# cargo fuzz wants nightly; RUSTC_BOOTSTRAP lets the stable toolchain build the target
# (no sanitizer: libFuzzer's coverage guidance and panic detection only).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${EMBER_FUZZ_SECONDS:-60}
[ "$seconds" -gt 0 ] || { echo "fuzzing skipped (EMBER_FUZZ_SECONDS=0)"; exit 0; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=data-node/fuzz/corpus/request
mkdir -p "$corpus"
cd data-node
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -O request "fuzz/corpus/request" fuzz/seeds/request -- \
  -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 15
echo "fuzzing: no crash in ${seconds}s"
