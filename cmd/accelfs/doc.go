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
// More terms: the "parent" is the `accelfs mount` process that starts the
// server and waits for its result line (exitcodes.go); the "fstab form" is
// mount.fuse3's call `accelfs BACKING MOUNTPOINT -o OPTIONS`, rewritten by
// normalizeArgs (mountopts.go) into `accelfs mount FLAGS -- BACKING
// MOUNTPOINT`; the "guards" (guards.go) are the checks made before a server
// starts; the server's "records" (serverrecord.go) are mount.pid and
// mount.exit in BACKING/.accelfs, read by umount.
//
// Exit codes (docs/cli.md): 0 success, 1 runtime failure, 2 usage error (bad
// flags or -o options, wrong arguments, a refused mountpoint or backing
// directory, umount of something that is not an accelfs mount), 3 fsck
// found problems it did not repair, 4 fsck lost data; for mount: 5 FUSE is
// not usable here, 6 the kernel or fusermount3 refused the mount, 7 the
// store is served by another process. A mount gives the same code in the
// foreground and in the background.
package main
