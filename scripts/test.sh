#!/usr/bin/env bash
# The accelfs test command. README.md, .ci/run and the Dockerfile's "test"
# target all run exactly this script.
#
#   build, gofmt, go vet, staticcheck (when installed; .ci/run installs it),
#   unit tests with -race, then the integration tests against real FUSE mounts
#   (they need root and /dev/fuse and skip otherwise, unless
#   ACCELFS_TEST_STRICT=1, which CI sets), and a check that no FUSE mount is
#   left behind.
#
# Env: ACCELFS_TEST_ACCELS="cpu emu"  engines the integration suite runs with,
#                                    one full pass each (default: cpu and emu,
#                                    so the emulated hisi_zip path passes the
#                                    same suite as the CPU)
#      ACCELFS_TEST_ACCEL=MODE         shorthand for a single pass with MODE
#      ACCELFS_TEST_STRICT=1           missing root or /dev/fuse is a failure
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "build"
go build ./...

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
sc=$(command -v staticcheck || true)
[ -z "$sc" ] && [ -x "$(go env GOPATH)/bin/staticcheck" ] && sc="$(go env GOPATH)/bin/staticcheck"
if [ -n "$sc" ]; then
	"$sc" ./...
else
	echo "staticcheck not installed: skipped (.ci/run installs it)"
fi

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

step "unit tests (-race)"
go test -race -count 1 -timeout 10m $(go list ./... | grep -v /test/integration)

for accel in ${ACCELFS_TEST_ACCELS:-${ACCELFS_TEST_ACCEL:-cpu emu}}; do
	step "integration tests (accel=$accel, strict=${ACCELFS_TEST_STRICT:-0})"
	ACCELFS_TEST_ACCEL=$accel go test -race -count 1 -p 1 -timeout 15m ./test/integration/...
done

step "leftover mounts"
left=$(leftovers)
if [ -n "$left" ]; then
	echo "FUSE mounts left behind:"; echo "$left"; exit 1
fi
echo "none"
echo
echo "ALL TESTS PASSED"
