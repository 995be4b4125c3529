// Package integration holds tests against real accelfs mounts: go-fuse's
// POSIX suite, a real source tree extracted and compared across remounts,
// namespace corner cases, sparse files, xattrs, shared mmap, concurrency,
// unmount with open files, and a SIGKILLed server. They need root and
// /dev/fuse and skip otherwise (ACCELFS_TEST_STRICT=1 makes that a
// failure). ACCELFS_TEST_ACCEL selects the compression engine (default cpu).
// See helpers_test.go.
package integration
