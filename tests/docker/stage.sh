#!/usr/bin/env bash
# Stages a root filesystem for tests/docker/Dockerfile.local in $1 (default
# target/docker-stage): the release binaries, the shared libraries ldd says they need,
# the dynamic loader, and the content of /data (owned by uid 10001 in the image).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/docker-stage}
cargo build --release --bins -p ember-control-plane -p ember-data-node -p emberctl
rm -rf "$out" && mkdir -p "$out/rootfs/usr/local/bin" "$out/rootfs/tmp" "$out/rootfs/etc" "$out/data"
for b in ember-control-plane ember-data-node emberctl; do
  cp "target/release/$b" "$out/rootfs/usr/local/bin/"
  strip --strip-debug "$out/rootfs/usr/local/bin/$b"
  ldd "target/release/$b" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$out/rootfs$(dirname "$lib")"
    cp -L "$lib" "$out/rootfs$lib"
  done
done
echo 'ember:x:10001:10001:ember:/data:/nonexistent' > "$out/rootfs/etc/passwd"
echo 'ember:x:10001:' > "$out/rootfs/etc/group"
printf 'hosts: files dns\n' > "$out/rootfs/etc/nsswitch.conf"
chmod 1777 "$out/rootfs/tmp"
echo "ember data lives here" > "$out/data/README"
cp tests/docker/Dockerfile.local "$out/Dockerfile"
echo "staged $(du -sh "$out/rootfs" | cut -f1) in $out"
