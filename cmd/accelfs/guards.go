package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"

	"github.com/accelfs/accelfs/blockstore"
)

// Mount guards: checks made before the server starts (so the same error
// and exit code come in both modes, and nothing is created on a refusal).

// resolveDir makes p absolute and resolves its symlinks, so the server
// (which runs in /) and the guards see the real directory.
func resolveDir(role, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", usagef("%s %q: %v", role, p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", usagef("%s %s: no such directory", role, abs)
	}
	if errors.Is(err, syscall.ENOTCONN) {
		return "", usagef("%s %s: a FUSE mount whose server is gone is still attached there; run: accelfs umount %s", role, abs, abs)
	}
	if err != nil {
		return "", usagef("%s %s: %v", role, abs, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", usagef("%s %s: %v", role, real, err)
	}
	if !fi.IsDir() {
		return "", usagef("%s %s: not a directory", role, real)
	}
	return real, nil
}

// within reports whether dir is inner or one of its ancestors, by device
// and inode (so bind mounts and other spellings of a path count too).
func within(inner, dir string) bool {
	var want syscall.Stat_t
	if syscall.Stat(dir, &want) != nil {
		return false
	}
	for p := inner; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			return true
		}
		if p == "/" || p == "." {
			return false
		}
	}
}

// isEmptyDir reports whether dir has no entries.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// topMount is the top-most mount at mountpoint (the one a path lookup
// reaches when several are stacked), or nil when none is.
func topMount(mountpoint string) (*mountinfo.Info, error) {
	// Not mountinfo.SingleEntryFilter: it stops at the first (lowest) entry.
	l, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != mountpoint, false
	})
	if err != nil || len(l) == 0 {
		return nil, err
	}
	// A stacked mount's parent is the one below it at the same path.
	for _, m := range l {
		if !slices.ContainsFunc(l, func(o *mountinfo.Info) bool { return o.Parent == m.ID }) {
			return m, nil
		}
	}
	return l[len(l)-1], nil
}

// checkMountGuards refuses the mistakes of issue 8 (defects 2 and 6): a
// mountpoint inside BACKING or BACKING inside the mountpoint, a mountpoint
// with a FUSE mount on it already, a non-empty mountpoint (unless
// nonempty), and a BACKING that is neither empty nor a store. backing and
// mnt are resolved (resolveDir).
func checkMountGuards(backing, mnt string, opts []string) error {
	switch {
	case within(mnt, backing):
		return usagef("mountpoint %s is inside the backing directory %s: writes through it would feed the mount its own files; choose a mountpoint outside %s", mnt, backing, backing)
	case within(backing, mnt):
		return usagef("backing directory %s is inside the mountpoint %s: the mount would hide its own store; choose a mountpoint outside %s", backing, mnt, backing)
	}
	top, err := topMount(mnt)
	if err != nil {
		return fmt.Errorf("read the mount table: %w", err)
	}
	if top != nil && strings.HasPrefix(top.FSType, "fuse") {
		return usagef("%s is already mounted (%s from %s); unmount it first (accelfs umount %s)", mnt, top.FSType, top.Source, mnt)
	}
	if !slices.Contains(opts, "nonempty") {
		empty, err := isEmptyDir(mnt)
		if err != nil {
			return usagef("mountpoint %s: %v", mnt, err)
		}
		if !empty {
			return usagef("mountpoint %s is not empty: the mount would hide its files; empty it, choose another, or mount with -o nonempty", mnt)
		}
	}
	return checkBackingIsStore(backing)
}

// checkBackingIsStore refuses a BACKING that holds files but no store: the
// mount would show each existing file as an I/O error.
func checkBackingIsStore(backing string) error {
	fi, err := os.Lstat(filepath.Join(backing, blockstore.MetaDir))
	if err == nil && fi.IsDir() {
		return nil
	}
	empty, eerr := isEmptyDir(backing)
	if eerr != nil {
		return usagef("backing directory %s: %v", backing, eerr)
	}
	if !empty {
		return usagef("%s is not an accelfs store (no %s) and not empty; mount an empty directory or a store created by `accelfs init` (importing existing files is not supported)", backing, blockstore.MetaDir)
	}
	return nil
}
