#!/usr/bin/env bash
# Sequential write and read MB/s of one large file, measured in one run on:
#   native        a plain directory on the same filesystem
#   loopback      go-fuse's loopback (test/loopback), kernel passthrough off:
#                 the fair FUSE baseline
#   accelfs-cpu   accelfs mount --accel cpu  (--algo $BENCH_ALGO)
#   accelfs-emu   accelfs mount --accel emu  (--algo $BENCH_ALGO; the emulated
#                 hisi_zip device compresses, see --emu-model)
# Write: dd bs=1M of a compressible corpus (Go source tarball repeated to
# $BENCH_MB MiB) with conv=fsync. Read: after unmount + remount (accelfs and
# loopback) and drop_caches, dd to /dev/null. Prints MB/s and accelfs stats.
#
#   sudo ./scripts/bench-seq.sh
#   BENCH_MB=512 BENCH_ALGO=deflate BENCH_EMU_MODEL=hisi_zip BENCH_HW_QUEUES=2 sudo -E ./scripts/bench-seq.sh
#
# Needs root (FUSE mounts, drop_caches).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-seq: needs root" >&2; exit 1; }

MB=${BENCH_MB:-256}
ALGO=${BENCH_ALGO:-deflate}
EMU_MODEL=${BENCH_EMU_MODEL:-cpu}
HWQ=${BENCH_HW_QUEUES:-1}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/accelfs-seq.XXXXXX")

cleanup() {
	for m in "$work"/*-mnt; do
		[ -d "$m" ] && grep -q " $m " /proc/mounts && umount -l "$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/accelfs" ./cmd/accelfs
go build -o "$work/loopback" ./test/loopback
# Corpus: Go's source tree as a tarball, repeated to $MB MiB.
tar -C "$(go env GOROOT)" -cf "$work/one.tar" src
while [ "$(stat -c %s "$work/corpus" 2>/dev/null || echo 0)" -lt $((MB << 20)) ]; do
	cat "$work/one.tar" >>"$work/corpus"
done
truncate -s $((MB << 20)) "$work/corpus"
cat "$work/corpus" >/dev/null

mbs() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b / 1e6 / s}'; }
now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; cat "$work/corpus" >/dev/null; }
declare -A wr rd
bytes=$((MB << 20))

# measure TARGET DIR MOUNT_CMD UMOUNT_CMD
measure() {
	local t0 t1
	t0=$(now)
	dd if="$work/corpus" of="$2/file" bs=1M conv=fsync status=none
	t1=$(now)
	wr[$1]=$(mbs "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
	eval "$4"
	eval "$3"
	drop
	t0=$(now)
	dd if="$2/file" of=/dev/null bs=1M status=none
	t1=$(now)
	rd[$1]=$(mbs "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
	cmp "$work/corpus" "$2/file" || { echo "$1: read back differs" >&2; exit 1; }
}

start_loopback() {
	mkfifo "$work/loop.fifo"
	"$work/loopback" "$work/loop-orig" "$work/loop-mnt" >"$work/loop.fifo" &
	read -r line <"$work/loop.fifo"; rm "$work/loop.fifo"
	[ "$line" = ready ] || { echo "loopback did not start" >&2; exit 1; }
}
stop_loopback() { umount "$work/loop-mnt"; wait; }

mkdir -p "$work/native"
measure native "$work/native" true true

mkdir -p "$work/loop-orig" "$work/loop-mnt"
start_loopback
measure loopback "$work/loop-mnt" start_loopback stop_loopback
stop_loopback

declare -A stats
for accel in cpu emu; do
	b="$work/$accel-back" m="$work/$accel-mnt"
	mkdir -p "$b" "$m"
	mnt="'$work/accelfs' mount --accel $accel --emu-model $EMU_MODEL --hw-queues $HWQ --algo $ALGO '$b' '$m' >/dev/null"
	eval "$mnt"
	measure "accelfs-$accel" "$m" "$mnt" "'$work/accelfs' umount '$m'"
	stats[$accel]=$("$work/accelfs" stats "$m")
	"$work/accelfs" umount "$m"
done

echo "file: $MB MiB (Go source tarball repeated), dd bs=1M; accelfs --algo $ALGO, emu model $EMU_MODEL, --hw-queues $HWQ"
printf '%-13s %10s %10s\n' target "write MB/s" "read MB/s"
for t in native loopback accelfs-cpu accelfs-emu; do
	printf '%-13s %10s %10s\n' "$t" "${wr[$t]}" "${rd[$t]}"
done
for accel in cpu emu; do
	echo; echo "accelfs --accel $accel stats:"; echo "${stats[$accel]}"
done
