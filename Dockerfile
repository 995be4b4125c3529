# syntax=docker/dockerfile:1
#
# Targets:
#   runtime (default)  slim Debian with fuse3 and the accelfs binary
#   test               the toolchain + sources; its entrypoint is the very
#                      test command CI runs (./scripts/test.sh, strict)
#
#   docker build -t accelfs .
#   docker build --target test -t accelfs-test .
#   docker run --rm --privileged --device /dev/fuse accelfs-test
#   docker run --rm --privileged --device /dev/fuse -e ACCELFS_TEST_ACCEL=emu accelfs-test

ARG GO_VERSION=1.26

# ---- build: compile accelfs (static, no cgo)
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/accelfs ./cmd/accelfs

# ---- test: what CI runs, inside a privileged container
FROM golang:${GO_VERSION}-bookworm AS test
RUN apt-get update && apt-get install -y --no-install-recommends fuse3 util-linux diffutils tar \
    && rm -rf /var/lib/apt/lists/* \
    && go install honnef.co/go/tools/cmd/staticcheck@latest
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The arm64 leg (qemu) runs on the host in CI; here the point is FUSE.
# Run it here too with -e ACCELFS_TEST_SKIP= (needs qemu-user-static).
ENV ACCELFS_TEST_STRICT=1 ACCELFS_TEST_SKIP=arm64
ENTRYPOINT ["./scripts/test.sh"]

# ---- runtime: slim image with fuse3 and the binary
FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends fuse3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/accelfs /usr/local/bin/accelfs
ENTRYPOINT ["/usr/local/bin/accelfs"]
CMD ["--help"]
