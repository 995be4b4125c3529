#!/usr/bin/env bash
# accelfs demo: builds accelfs, mounts a new store, copies a real source tree
# in, compares it with the original, prints `accelfs stats`, unmounts.
#
#   ./scripts/demo.sh            # uses a temp dir, removed at the end
#   DEMO_DIR=/some/dir ./scripts/demo.sh   # keep the store there
#
# Needs /dev/fuse, and root or fuse3's fusermount3.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=${DEMO_DIR:+yes}
work=${DEMO_DIR:-$(mktemp -d /tmp/accelfs-demo.XXXXXX)}
mkdir -p "$work/backing" "$work/mnt"
bin="$work/accelfs"
src="$(go env GOROOT)/src/net"

cleanup() {
	if grep -q " $work/mnt " /proc/mounts; then "$bin" umount --lazy "$work/mnt" || true; fi
	[ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

echo "== building accelfs"
go build -o "$bin" ./cmd/accelfs

echo "== mounting $work/backing at $work/mnt"
"$bin" mount "$work/backing" "$work/mnt"

echo "== copying $src into the mount"
cp -a "$src" "$work/mnt/"
echo "== comparing with the original"
diff -r --no-dereference "$src" "$work/mnt/net" && echo "identical: $(find "$work/mnt/net" -type f | wc -l) files"
echo "== space: original vs backing (compressed) vs what the mount reports"
du -sh "$src" "$work/backing/net" "$work/mnt/net"

echo "== accelfs stats"
"$bin" stats "$work/mnt"

echo "== unmounting"
"$bin" umount "$work/mnt"
echo "done"
