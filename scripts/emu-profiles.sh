#!/usr/bin/env bash
# The emulator-profile table: for each engine choice, `accelfs mount --algo
# auto` on a new store, a tree extracted through the mount (tar -xf), then
# `accelfs stats --json`: the algorithm --algo auto chose, the engines that
# compressed, and the fraction of compressed blocks the device did (blocks
# under --hw-threshold, 8 KiB by default, stay on the CPU by design, and
# the scheduler moves blocks to the CPU when the device queue would finish
# later ("load→cpu": the emulated device computes on this host's CPU, so on
# a small shared machine this column varies from run to run).
#
#   sudo ./scripts/emu-profiles.sh
#   EMU_SRC=/usr/local/go/src/net EMU_FLAGS="--emu-model hisi_zip" sudo -E ./scripts/emu-profiles.sh
#
# Needs root (FUSE mounts) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "emu-profiles: needs root" >&2; exit 1; }
command -v jq >/dev/null || { echo "emu-profiles: needs jq" >&2; exit 1; }

SRC=${EMU_SRC:-$(go env GOROOT)/src/net}
FLAGS=${EMU_FLAGS:-}
work=$(mktemp -d "${EMU_DIR:-/var/tmp}/accelfs-emu.XXXXXX")
cleanup() {
	grep -q " $work/mnt " /proc/mounts && umount -l "$work/mnt"
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/accelfs" ./cmd/accelfs
tar -C "$(dirname "$SRC")" -cf "$work/src.tar" "$(basename "$SRC")"
echo "tree: $(tar -tf "$work/src.tar" | wc -l) entries, $(($(stat -c %s "$work/src.tar") / 1024)) KiB tarball of $SRC; flags: ${FLAGS:-none}"
printf '%-16s %-12s %-26s %-10s %s\n' "engine" "--algo auto" "compressed by (requests)" "load→cpu" "device fraction"

# row NAME ACCEL-FLAGS...
row() {
	local name=$1; shift
	rm -rf "$work/store" "$work/mnt"; mkdir -p "$work/store" "$work/mnt"
	# shellcheck disable=SC2086
	"$work/accelfs" mount --algo auto "$@" $FLAGS "$work/store" "$work/mnt" >/dev/null
	tar -C "$work/mnt" -xf "$work/src.tar"
	sync -f "$work/mnt"
	"$work/accelfs" stats --json "$work/mnt" >"$work/stats.json"
	"$work/accelfs" umount "$work/mnt"
	jq -r --arg name "$name" '
		def comp(e): (e.compress.requests - e.compress.errors);
		.algo as $algo
		| [.engines | to_entries[] | select(comp(.value) > 0) | "\(.key)=\(comp(.value))"] as $by
		| ([.engines | to_entries[] | select(.key != "cpu") | comp(.value)] | add // 0) as $dev
		| ([.engines | to_entries[] | comp(.value)] | add // 0) as $all
		| "\($name)\t\($algo)\t\($by | join(","))\t\(.fallbacks.load // 0)\t\(if $all > 0 then ($dev / $all * 100 | floor | tostring) + "%" else "-" end)"
	' "$work/stats.json" | awk -F'\t' '{printf "%-16s %-12s %-26s %-10s %s\n", $1, $2, $3, $4, $5}'
}

row "cpu" --accel cpu
for p in kunpeng920 kunpeng930 v3-lz4; do
	row "emu $p" --accel emu --emu-profile "$p"
done
