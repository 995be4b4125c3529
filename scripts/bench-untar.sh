#!/usr/bin/env bash
# The untar+diff workload, timed in one run on three targets:
#   native    a plain directory on the same filesystem
#   loopback  go-fuse's loopback (test/loopback) with kernel passthrough
#             disabled: the fair FUSE baseline, every read/write goes through
#             the server
#   accelfs   accelfs mount --accel $BENCH_ACCEL (default cpu)
# Phases: untar (tar -xf of a tarball of $BENCH_SRC), diff (diff -r against
# the original right after, page cache warm), cold diff (after unmount +
# remount and drop_caches). Prints seconds, ratios and `accelfs stats`.
#
#   sudo ./scripts/bench-untar.sh
#   BENCH_SRC=/usr/local/go/src/net BENCH_FLAGS="--algo zstd" sudo -E ./scripts/bench-untar.sh
#
# Needs root (direct FUSE mounts, drop_caches).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-untar: needs root" >&2; exit 1; }

SRC=${BENCH_SRC:-$(go env GOROOT)/src}
ACCEL=${BENCH_ACCEL:-cpu}
FLAGS=${BENCH_FLAGS:-}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/accelfs-bench.XXXXXX")
name=$(basename "$SRC")

cleanup() {
	for m in "$work/loop-mnt" "$work/acc-mnt"; do
		grep -q " $m " /proc/mounts && umount -l "$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/accelfs" ./cmd/accelfs
go build -o "$work/loopback" ./test/loopback
tar -C "$(dirname "$SRC")" -cf "$work/src.tar" "$name"
files=$(tar -tf "$work/src.tar" | wc -l)
bytes=$(stat -c %s "$work/src.tar")
# Warm the tarball and the original tree: every target reads them the same way.
cat "$work/src.tar" >/dev/null
tar -cf /dev/null -C "$(dirname "$SRC")" "$name"

now() { date +%s.%N; }
sec() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; tar -cf /dev/null -C "$(dirname "$SRC")" "$name"; cat "$work/src.tar" >/dev/null; }

declare -A untar diffw diffc
# run TARGET DIR: untar + warm diff
run() {
	local t0 t1 t2
	t0=$(now); tar -C "$2" -xf "$work/src.tar"; t1=$(now)
	diff -r --no-dereference "$SRC" "$2/$name" >/dev/null; t2=$(now)
	untar[$1]=$(sec "$t0" "$t1"); diffw[$1]=$(sec "$t1" "$t2")
}
cold() {
	local t0 t1
	drop
	t0=$(now); diff -r --no-dereference "$SRC" "$2/$name" >/dev/null; t1=$(now)
	diffc[$1]=$(sec "$t0" "$t1")
}
start_loopback() {
	mkfifo "$work/loop.fifo"
	"$work/loopback" "$work/loop-orig" "$work/loop-mnt" >"$work/loop.fifo" &
	read -r line <"$work/loop.fifo"; rm "$work/loop.fifo"
	[ "$line" = ready ] || { echo "loopback did not start" >&2; exit 1; }
}

echo "workload: $files entries, $((bytes / 1048576)) MiB tarball of $SRC"
echo "accelfs: --accel $ACCEL $FLAGS"

mkdir -p "$work/native"
run native "$work/native"
cold native "$work/native"

mkdir -p "$work/loop-orig" "$work/loop-mnt"
start_loopback
run loopback "$work/loop-mnt"
umount "$work/loop-mnt"; wait
start_loopback
cold loopback "$work/loop-mnt"
umount "$work/loop-mnt"; wait

mkdir -p "$work/acc-back" "$work/acc-mnt"
# shellcheck disable=SC2086
"$work/accelfs" mount --accel "$ACCEL" $FLAGS "$work/acc-back" "$work/acc-mnt" >/dev/null
run accelfs "$work/acc-mnt"
t0=$(now); "$work/accelfs" umount "$work/acc-mnt"
# (umount returns once the server has committed the rest and exited)
accumount=$(sec "$t0" "$(now)")
# shellcheck disable=SC2086
"$work/accelfs" mount --accel "$ACCEL" $FLAGS "$work/acc-back" "$work/acc-mnt" >/dev/null
cold accelfs "$work/acc-mnt"
stats=$("$work/accelfs" stats "$work/acc-mnt")
"$work/accelfs" umount "$work/acc-mnt"

echo
printf '%-10s %9s %10s %10s %11s\n' target "untar s" "diff s" "cold diff" "untar+diff"
for t in native loopback accelfs; do
	tot=$(awk -v a="${untar[$t]}" -v b="${diffw[$t]}" 'BEGIN {printf "%.2f", a + b}')
	printf '%-10s %9s %10s %10s %11s\n' "$t" "${untar[$t]}" "${diffw[$t]}" "${diffc[$t]}" "$tot"
done
echo "accelfs umount (commit of the rest + exit): ${accumount}s"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
tot() { awk -v a="${untar[$1]}" -v b="${diffw[$1]}" 'BEGIN {print a + b}'; }
echo "untar+diff: accelfs/native $(ratio "$(tot accelfs)" "$(tot native)"), accelfs/loopback $(ratio "$(tot accelfs)" "$(tot loopback)"), loopback/native $(ratio "$(tot loopback)" "$(tot native)")"
echo "cold diff:  accelfs/native $(ratio "${diffc[accelfs]}" "${diffc[native]}"), accelfs/loopback $(ratio "${diffc[accelfs]}" "${diffc[loopback]}")"
echo
echo "accelfs stats:"
echo "$stats"
