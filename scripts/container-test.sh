#!/usr/bin/env bash
# The container leg: builds the Dockerfile's "test" target and runs it in a
# privileged container with /dev/fuse (its entrypoint is ./scripts/test.sh,
# strict), then builds the runtime image (the default target, what
# `docker build -t accelfs .` gives) and smoke-tests `accelfs mount` in it.
#
# Engine: docker when a daemon answers, else podman (installed from Debian
# when missing) with --runtime runc (crun refuses cgroups in hybrid mode on
# some hosts). When no image registry is reachable, the base images the
# Dockerfile names are built locally from the Debian mirror of this host
# (debootstrap) and imported under those names; the Dockerfile itself is the
# ordinary one. Images already present are reused, so a rerun takes minutes.
#
# Env: ACCELFS_CT_ENGINE=docker|podman  force an engine
#      ACCELFS_CT_SKIP_TEST=1           only the runtime image + smoke test
#      ACCELFS_CT_REBUILD_BASE=1        rebuild locally made base images
#      ACCELFS_TEST_ACCELS              passed into the test container
#
# Exit: 0 all passed; 1 a build, the tests or the smoke test failed;
#       2 no usable container engine (says why).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== container-test: %s\n' "$*"; }
# Seconds per step, printed at the end (docs/ci.md quotes them).
times=()
t_mark=$SECONDS
lap() { times+=("$(printf '%-34s %5ss' "$1" $((SECONDS - t_mark)))"); t_mark=$SECONDS; }
die() { printf '== container-test: FAILED: %s\n' "$*" >&2; exit "${2:-1}"; }

# retry N CMD...: runs CMD up to N times, 10s apart; says which attempt failed.
retry() {
	local n=$1 i; shift
	for ((i = 1; i <= n; i++)); do
		"$@" && return 0
		echo "attempt $i/$n failed: $*" >&2
		((i < n)) && sleep 10
	done
	return 1
}

apt_install() {
	command -v apt-get >/dev/null || die "$* missing and no apt-get to install it" 2
	[ "$(id -u)" = 0 ] || die "$* missing; install it (needs root)" 2
	retry 3 apt-get update -qq || die "apt-get update failed (Debian mirror unreachable?)" 2
	DEBIAN_FRONTEND=noninteractive retry 3 apt-get install -y -qq "$@" >/dev/null ||
		die "apt-get install $* failed" 2
}

# ---- engine
engine=${ACCELFS_CT_ENGINE:-}
if [ -z "$engine" ]; then
	if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
		engine=docker
	else
		engine=podman
	fi
fi
ce=("$engine")
if [ "$engine" = podman ]; then
	command -v podman >/dev/null || { say "installing podman from Debian"; apt_install podman; }
	command -v runc >/dev/null || { say "installing runc from Debian"; apt_install runc; }
	ce=(podman --runtime runc)
fi
say "engine: ${ce[*]}"

# ulimits at or below the host's: a container runtime may not raise them,
# and on some hosts not even set them as high as the host has them
# (runc: "error setting rlimit type 6: operation not permitted"), so
# probe_ulimits halves them until a container starts.
lim_nofile=$(ulimit -n); lim_nproc=$(ulimit -u)
[ "$lim_nofile" = unlimited ] && lim_nofile=1048576
[ "$lim_nproc" = unlimited ] && lim_nproc=1048576
set_ulim() { ulim=(--ulimit "nofile=$lim_nofile:$lim_nofile" --ulimit "nproc=$lim_nproc:$lim_nproc"); }
set_ulim
probe_ulimits() { # probe_ulimits IMAGE
	local i err
	for ((i = 0; i < 8; i++)); do
		if err=$("${ce[@]}" run --rm "${ulim[@]}" --entrypoint true "$1" 2>&1); then
			say "ulimits: nofile=$lim_nofile nproc=$lim_nproc"
			return 0
		fi
		case $err in
		*"rlimit type 6"*) lim_nproc=$((lim_nproc / 2)) ;;
		*"rlimit type 7"*) lim_nofile=$((lim_nofile / 2)) ;;
		*) echo "$err" >&2; die "a test container with $1 does not start (above)" ;;
		esac
		set_ulim
	done
	die "no ulimits found that the container runtime accepts"
}

# ---- containers and temp dirs are cleaned up whatever happens
run_id="accelfs-ct-$$"
base_work=
cleanup() {
	"${ce[@]}" rm -f "$run_id-test" "$run_id-smoke" >/dev/null 2>&1 || true
	[ -n "$base_work" ] && rm -rf "$base_work"
	return 0
}
trap cleanup EXIT

# ---- base images named by the Dockerfile
go_version=$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile | head -n1)
golang_image="golang:${go_version}-bookworm"
debian_image="debian:bookworm-slim"
qualify() { echo "docker.io/library/$1"; } # what a short name means on Docker Hub

have_image() { "${ce[@]}" image inspect "$1" >/dev/null 2>&1; }

registry_up() {
	# A registry that answers /v2/ (even 401) is reachable.
	local code
	code=$(curl -sS -m 15 -o /dev/null -w '%{http_code}' https://registry-1.docker.io/v2/ 2>/dev/null || true)
	[ -n "$code" ] && [ "$code" != 000 ]
}

debian_mirror() {
	# First Debian (non-security) URI of the host's apt sources, deb822 or one-line.
	local uri
	uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}')
	[ -z "$uri" ] && uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i !~ /security/) {print $i; exit}}')
	echo "${uri:-http://deb.debian.org/debian}"
}

build_local_bases() {
	local work mirror
	work=$(mktemp -d /var/tmp/accelfs-base.XXXXXX)
	base_work=$work # removed by cleanup, also when a step fails
	command -v debootstrap >/dev/null || { say "installing debootstrap from Debian"; apt_install debootstrap; }
	if [ -n "${ACCELFS_CT_REBUILD_BASE:-}" ] || ! have_image "$(qualify "$debian_image")"; then
		mirror=$(debian_mirror)
		say "building $debian_image locally: debootstrap --variant=minbase bookworm from $mirror"
		retry 3 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
			tail -n 20 "$work/debootstrap.log" >&2
			die "debootstrap from $mirror failed (log above)"
		}
		rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
		tar -C "$work/rootfs" -c . | "${ce[@]}" import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["bash"]' - "$(qualify "$debian_image")" >/dev/null ||
			die "importing the debootstrap rootfs as $debian_image failed"
	fi
	if [ -n "${ACCELFS_CT_REBUILD_BASE:-}" ] || ! have_image "$(qualify "$golang_image")"; then
		say "building $golang_image locally: $debian_image + gcc libc6-dev git + host $(go version | awk '{print $3}') + host CA bundle"
		mkdir -p "$work/golang"
		cp -a "$(go env GOROOT)" "$work/golang/go"
		cp /etc/ssl/certs/ca-certificates.crt "$work/golang/ca-certificates.crt"
		cat >"$work/golang/Containerfile" <<-EOF
			FROM $(qualify "$debian_image")
			RUN for i in 1 2 3; do apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev git make && break; sleep 10; done \\
			    && command -v gcc && rm -rf /var/lib/apt/lists/*
			COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
			COPY go /usr/local/go
			ENV GOLANG_VERSION=$(go env GOVERSION) GOTOOLCHAIN=local GOPATH=/go
			ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
			RUN mkdir -p /go/src /go/bin && go version
			WORKDIR /go
		EOF
		probe_ulimits "$(qualify "$debian_image")"
		"${ce[@]}" build --pull=never --network host "${ulim[@]}" -t "$(qualify "$golang_image")" "$work/golang" ||
			die "building $golang_image locally failed"
	fi
	rm -rf "$work"
}

lap "engine setup"
pull=()
if have_image "$(qualify "$golang_image")" && have_image "$(qualify "$debian_image")"; then
	say "base images present: $golang_image, $debian_image (reused)"
	pull=(--pull=never)
elif registry_up; then
	say "registry reachable: pulling $golang_image, $debian_image"
	retry 3 "${ce[@]}" pull "$(qualify "$golang_image")" || die "pulling $golang_image failed"
	retry 3 "${ce[@]}" pull "$(qualify "$debian_image")" || die "pulling $debian_image failed"
	pull=(--pull=never)
else
	say "no image registry reachable (registry-1.docker.io): base images are built locally from Debian"
	build_local_bases
	pull=(--pull=never)
fi

build() { # build TARGET TAG
	say "building target $1 as $2"
	"${ce[@]}" build "${pull[@]}" --network host "${ulim[@]}" --target "$1" -t "$2" . ||
		die "building target $1 failed"
}

lap "base images"
probe_ulimits "$(qualify "$debian_image")"
status=0
if [ -z "${ACCELFS_CT_SKIP_TEST:-}" ]; then
	build test accelfs-test
	lap "build test image"
	say "running ./scripts/test.sh in a privileged container"
	env_args=()
	[ -n "${ACCELFS_TEST_ACCELS:-}" ] && env_args=(-e "ACCELFS_TEST_ACCELS=$ACCELFS_TEST_ACCELS")
	if "${ce[@]}" run --name "$run_id-test" --rm --privileged --device /dev/fuse \
		"${ulim[@]}" "${env_args[@]}" accelfs-test; then
		say "test container: passed"
	else
		say "test container: FAILED"; status=1
	fi
	lap "test.sh in the test container"
fi

build runtime accelfs
lap "build runtime image"
say "smoke test: accelfs mount / write / read / stats / umount in the runtime image"
# shellcheck disable=SC2016
smoke='set -eu
mkdir -p /store /mnt/accelfs
accelfs mount /store /mnt/accelfs
echo "hello from the runtime image" > /mnt/accelfs/hello.txt
head -c 1048576 /dev/urandom > /tmp/blob
cp /tmp/blob /mnt/accelfs/blob
seq 1 300000 > /tmp/seq.txt
cp /tmp/seq.txt /mnt/accelfs/seq.txt
test "$(cat /mnt/accelfs/hello.txt)" = "hello from the runtime image"
cmp /tmp/blob /mnt/accelfs/blob
cmp /tmp/seq.txt /mnt/accelfs/seq.txt
accelfs stats /mnt/accelfs
accelfs umount /mnt/accelfs
! grep -q " /mnt/accelfs " /proc/mounts
accelfs mount /store /mnt/accelfs
cmp /tmp/blob /mnt/accelfs/blob
cmp /tmp/seq.txt /mnt/accelfs/seq.txt
accelfs umount /mnt/accelfs
echo "smoke: ok"'
if "${ce[@]}" run --name "$run_id-smoke" --rm --privileged --device /dev/fuse "${ulim[@]}" \
	--entrypoint /bin/sh accelfs -c "$smoke"; then
	say "smoke test: passed"
else
	say "smoke test: FAILED"; status=1
fi
lap "smoke test"
say "seconds per step:"
printf '   %s\n' "${times[@]}"

# The containers' mounts live in their own mount namespaces and end with
# them; test.sh (inside) and the smoke script both check for leftovers.
exit "$status"
