// Command accelfs mounts a backing directory as a FUSE filesystem whose
// regular files are stored compressed, block by block, and manages such
// stores.
//
// Subcommands (one file each): mount, umount, stats, fsck, devices, bench,
// version. Shared flag builders are in flags.go; the choice
// of compression engine (--accel) is in accel.go, which turns the flags
// into package engine's Config (newCompressor).
//
// Terms: BACKING is the directory that holds the stored tree and the
// store's .accelfs/ directory; MOUNTPOINT is where the mount appears. The
// "server" is the accelfs process that answers FUSE requests: `mount`
// starts it in the background and returns when the mount is ready.
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error (bad flags, wrong
// number of arguments, unknown algorithm or accel mode), 3 fsck found
// problems it did not repair.
package main
