#!/usr/bin/env bash
# Loaded-machine check (not part of every CI run): runs the unit suite
# (-race) and the integration suite N times in a row while stress-ng keeps
# every core busy, and reports each run. A test that fails here depends on
# the machine being idle (a wall-clock deadline, an engine that a timeout
# may change): fix the test, not the load.
#
#   ./scripts/stress-test.sh [N]        N runs (default 3)
#
# Env: ACCELFS_STRESS_CPUS=K            stress-ng --cpu K (default: nproc)
#      ACCELFS_TEST_ACCELS="cpu emu"    integration passes per run (as test.sh)
#      ACCELFS_TEST_STRICT=1            missing root or /dev/fuse fails
#
# Exit 0 when every run passed, 1 otherwise. Needs stress-ng (installed from
# Debian when missing and root).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

runs=${1:-3}
cpus=${ACCELFS_STRESS_CPUS:-$(nproc)}
accels=${ACCELFS_TEST_ACCELS:-${ACCELFS_TEST_ACCEL:-cpu emu}}

if ! command -v stress-ng >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "== installing stress-ng from Debian"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null; } ||
			{ echo "apt-get install stress-ng failed"; exit 1; }
	else
		echo "stress-ng missing (Debian: apt-get install stress-ng)"; exit 1
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/accelfs-stress.XXXXXX")
export TMPDIR="$tmp"
stress_pid=
cleanup() {
	[ -n "$stress_pid" ] && kill "$stress_pid" 2>/dev/null && wait "$stress_pid" 2>/dev/null
	awk -v d="$tmp" '$3 ~ /^fuse/ && index($2, d) == 1 {print $2}' /proc/mounts |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf "$tmp"
	return 0
}
trap cleanup EXIT

echo "== load: stress-ng --cpu $cpus (machine: $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg))"
stress-ng --cpu "$cpus" --timeout 0 --quiet &
stress_pid=$!
sleep 2

# shellcheck disable=SC2046
unit_pkgs=$(go list ./... | grep -v /test/integration)
results=()
failed=0
for ((i = 1; i <= runs; i++)); do
	t0=$SECONDS
	res=ok
	log="$tmp/run$i.log"
	echo "== run $i/$runs: unit (-race)"
	# shellcheck disable=SC2086
	if ! go test -race -count 1 -timeout 20m $unit_pkgs >"$log" 2>&1; then
		res="FAILED unit"
	fi
	grep -E '^(ok|FAIL|---)|panic:' "$log" | grep -v -- '--- PASS' || true
	for accel in $accels; do
		echo "== run $i/$runs: integration accel=$accel"
		if ! ACCELFS_TEST_ACCEL=$accel go test -race -count 1 -p 1 -timeout 30m ./test/integration/... >>"$log" 2>&1; then
			res="${res/ok/FAILED} integration/$accel"
		fi
		tail -n 1 "$log"
	done
	if [ "$res" != ok ]; then
		failed=$((failed + 1))
		cp "$log" "/tmp/accelfs-stress-run$i.log"
		echo "-- failures of run $i (full log: /tmp/accelfs-stress-run$i.log):"
		grep -E -B2 -A12 -- '--- FAIL' "$log" | head -n 80
	fi
	results+=("run $i: $res, $((SECONDS - t0))s, load $(cut -d' ' -f1-3 /proc/loadavg)")
done

echo
echo "== stress summary (stress-ng --cpu $cpus; integration: $accels)"
printf '  %s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
	echo "$failed of $runs runs FAILED"
	exit 1
fi
echo "all $runs runs passed"
