#!/usr/bin/env bash
# The arm64 leg (a stage of scripts/test.sh): cross-builds and vets the whole
# tree for linux/arm64, then runs the unit tests of codec/, accel/... and
# blockstore/ as arm64 binaries under qemu user emulation (Debian's
# qemu-user-static, via go test -exec), so the arm64 barrier and atomics code
# runs, not only compiles. No -race (not supported under qemu user mode).
#
# Without qemu-aarch64(-static) the test run is skipped with the reason,
# unless ACCELFS_TEST_STRICT=1 (then it fails). .ci/run installs it.
#
# Tests run with -short: under qemu every instruction is emulated, and the
# long randomized runs (crash iterations, model ops) already run natively in
# the unit stage; -short keeps every test, with fewer iterations.
#
# Env: ACCELFS_ARM64_PKGS   packages to test (default: ./codec/... ./accel/... ./blockstore/...)
#      ACCELFS_ARM64_SHORT=0 the full iteration counts
set -euo pipefail
cd "$(dirname "$0")/.."

export GOOS=linux GOARCH=arm64 CGO_ENABLED=0

echo "-- cross-build linux/arm64"
go build ./...
echo "-- go vet linux/arm64"
go vet ./...

qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ -z "$qemu" ]; then
	msg="qemu-aarch64-static not found (Debian: apt-get install qemu-user-static)"
	if [ "${ACCELFS_TEST_STRICT:-}" = 1 ]; then
		echo "$msg; ACCELFS_TEST_STRICT=1: failing"; exit 1
	fi
	echo "$msg: arm64 unit tests skipped"
	exit 0
fi

# Tests that re-exec their own binary (crash and lock children) need the
# kernel to run arm64 ELF files itself: binfmt_misc with qemu registered.
# Register it (root, Debian's /usr/lib/binfmt.d/qemu-aarch64.conf) when it is
# missing; without it those tests are skipped, with the reason.
binfmt=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ ! -e "$binfmt/qemu-aarch64" ] && [ "$(id -u)" = 0 ] && [ -f "$conf" ]; then
	{ mountpoint -q "$binfmt" || mount -t binfmt_misc binfmt_misc "$binfmt"; } 2>/dev/null &&
		cat "$conf" >"$binfmt/register" 2>/dev/null &&
		echo "-- registered qemu-aarch64 with binfmt_misc ($conf)" || true
fi
skip=()
if ! grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null; then
	reexec='^(TestCrash|TestLockAcrossProcesses)$'
	echo "-- binfmt_misc has no qemu-aarch64: tests that re-exec the test binary are skipped ($reexec)"
	skip=(-skip "$reexec")
fi

pkgs=${ACCELFS_ARM64_PKGS:-./codec/... ./accel/... ./blockstore/...}
short=(-short)
[ "${ACCELFS_ARM64_SHORT:-1}" = 0 ] && short=()
echo "-- unit tests for arm64 under $qemu (${short[*]:-full}): $pkgs"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
# shellcheck disable=SC2086
go test -exec "$qemu" "${short[@]}" "${skip[@]}" -count 1 -timeout 30m -v $pkgs >"$log" 2>&1 || rc=$?
# The verbose log is long (it is there to count tests); show package results
# and failures.
grep -E '^(ok|FAIL|panic:)|--- FAIL' "$log" || true
pass=$(grep -cE '^\s*--- PASS' "$log" || true)
top=$(grep -cE '^--- PASS' "$log" || true)
nskip=$(grep -cE '^\s*--- SKIP' "$log" || true)
fail=$(grep -cE '^\s*--- FAIL' "$log" || true)
echo "arm64 under qemu: $pass tests passed ($top top-level, the rest subtests), $nskip skipped, $fail failed"
if [ "$rc" != 0 ]; then
	echo "-- arm64 go test failed (exit $rc); last lines:"
	tail -n 60 "$log"
fi
exit "$rc"
