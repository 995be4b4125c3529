#!/usr/bin/env bash
# The accelfs test command. README.md, .ci/run and the Dockerfile's "test"
# target all run exactly this script.
#
#   build, gofmt, go vet, staticcheck (when installed; .ci/run installs it),
#   the import-layer check (DESIGN §1), the arm64 leg (scripts/test-arm64.sh:
#   cross-build, vet, unit tests under qemu), unit tests with -race, then the
#   integration tests against real FUSE mounts (they need root and /dev/fuse
#   and skip otherwise, unless ACCELFS_TEST_STRICT=1, which CI sets), and a
#   check that no FUSE mount is left behind.
#
# Every stage runs even when an earlier one failed; the script ends with a
# summary (stage, result, seconds) and exits 1 if any stage failed.
#
# Env: ACCELFS_TEST_ACCELS="cpu emu"  engines the integration suite runs with,
#                                    one full pass each (default: cpu and emu,
#                                    so the emulated hisi_zip path passes the
#                                    same suite as the CPU)
#      ACCELFS_TEST_ACCEL=MODE         shorthand for a single pass with MODE
#      ACCELFS_TEST_STRICT=1           missing root, /dev/fuse or qemu is a
#                                      failure, not a skip
#      ACCELFS_TEST_SKIP="arm64 ..."   stages deliberately not run (names as in
#                                      the summary; the test image sets arm64:
#                                      the host leg of CI runs it)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

step() { printf '\n== %s\n' "$*"; }

# ---- stage runner: each stage runs in a subshell with -e, so a failing
# command fails its stage only; results are collected for the summary.
names=() results=() secs=()
stage() { # stage NAME FUNC
	local name=$1 t0=$SECONDS rc
	shift
	step "$name"
	if [[ " ${ACCELFS_TEST_SKIP:-} " == *" ${name%% *} "* ]]; then
		echo "skipped: ACCELFS_TEST_SKIP=${ACCELFS_TEST_SKIP}"
		names+=("$name") results+=(skipped) secs+=(0)
		return
	fi
	(set -e; "$@")
	rc=$?
	names+=("$name") secs+=($((SECONDS - t0)))
	if [ "$rc" = 0 ]; then results+=(ok); else results+=("FAILED (exit $rc)"); fi
}

st_build() { go build ./...; }

st_gofmt() {
	local unformatted
	unformatted=$(gofmt -l .)
	if [ -n "$unformatted" ]; then
		echo "not gofmt'ed:"; echo "$unformatted"; return 1
	fi
}

st_vet() { go vet ./...; }

st_staticcheck() {
	local sc
	sc=$(command -v staticcheck || true)
	[ -z "$sc" ] && [ -x "$(go env GOPATH)/bin/staticcheck" ] && sc="$(go env GOPATH)/bin/staticcheck"
	if [ -n "$sc" ]; then
		"$sc" ./...
	elif [ "${ACCELFS_TEST_STRICT:-}" = 1 ]; then
		echo "staticcheck not installed (ACCELFS_TEST_STRICT=1: a failure; .ci/run installs it)"; return 1
	else
		echo "staticcheck not installed: skipped (.ci/run installs it)"
	fi
}

st_layers() { ./scripts/check-layers.sh; }

st_arm64() { ./scripts/test-arm64.sh; }

st_unit() {
	# shellcheck disable=SC2046
	go test -race -count 1 -timeout 10m $(go list ./... | grep -v /test/integration)
}

st_integration() { # st_integration ACCEL
	ACCELFS_TEST_ACCEL=$1 go test -race -count 1 -p 1 -timeout 15m ./test/integration/...
}

# Test mounts live under a private TMPDIR so the leftover check below sees
# only ours.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/accelfs-test.XXXXXX")
export TMPDIR="$tmp"
leftovers() { awk -v d="$tmp" '$3 ~ /^fuse/ && index($2, d) == 1 {print $2}' /proc/mounts; }
cleanup() {
	for m in $(leftovers); do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$tmp" 2>/dev/null || true
}
trap cleanup EXIT

st_leftovers() {
	local left
	left=$(leftovers)
	if [ -n "$left" ]; then
		echo "FUSE mounts left behind:"; echo "$left"; return 1
	fi
	echo "none"
}

stage "build" st_build
stage "gofmt" st_gofmt
stage "vet" st_vet
stage "staticcheck" st_staticcheck
stage "layers" st_layers
stage "arm64" st_arm64
stage "unit (-race)" st_unit
for accel in ${ACCELFS_TEST_ACCELS:-${ACCELFS_TEST_ACCEL:-cpu emu}}; do
	stage "integration accel=$accel strict=${ACCELFS_TEST_STRICT:-0}" st_integration "$accel"
done
stage "leftovers" st_leftovers

step "summary"
failed=0
for i in "${!names[@]}"; do
	printf '  %-40s %-18s %5ss\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
	case ${results[$i]} in FAILED*) failed=$((failed + 1)) ;; esac
done
echo
if [ "$failed" -gt 0 ]; then
	echo "$failed STAGE(S) FAILED"
	exit 1
fi
echo "ALL TESTS PASSED"
