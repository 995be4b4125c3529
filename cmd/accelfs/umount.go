package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount an accelfs mount",
		ArgsUsage: "MOUNTPOINT",
		Description: `Unmounts MOUNTPOINT (the top-most mount there; only accelfs mounts: anything
else is refused with exit 2; given a backing directory, says where it is
mounted). The server then writes and commits the remaining dirty data and
exits. Waits (up to --wait) until the server has committed and exited, so the
store is complete and free when umount returns; exits 1 with the reason when
the server's final commit failed or it died without committing. Fails with "device or resource
busy" while files are open, unless --lazy is given (the mount disappears now,
the server exits when the last open file is closed; umount does not wait).

Examples:
   accelfs umount /mnt/data
   accelfs umount --lazy /mnt/data`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"z"}, Usage: "detach now even if files are open"},
			&cli.DurationFlag{Name: "wait", Value: time.Minute, Usage: "how long to wait for the server to commit and exit (0: do not wait)"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			mnt, top, err := findAccelfsMount(c.Args().First())
			if err != nil {
				return err
			}
			backing := top.Source
			pid := serverPid(backing)
			if err := unmount(mnt, c.Bool("lazy")); err != nil {
				return err
			}
			if c.Bool("lazy") || c.Duration("wait") <= 0 {
				return nil
			}
			return waitServer(backing, pid, c.Duration("wait"))
		},
	}
}

// findAccelfsMount resolves the argument to the top-most mount at that
// path and refuses anything but an accelfs mount. Given a backing
// directory, it says where that store is mounted.
func findAccelfsMount(arg string) (string, *mountinfo.Info, error) {
	mnt, err := resolveMaybeDead(arg)
	if err != nil {
		return "", nil, err
	}
	top, err := topMount(mnt)
	if err != nil {
		return "", nil, fmt.Errorf("read the mount table: %w", err)
	}
	if top == nil {
		return "", nil, notMounted(mnt, "umount")
	}
	if top.FSType != "fuse.accelfs" {
		return "", nil, usagef("%s is a %s mount (from %s), not an accelfs mount; accelfs umount leaves it alone (use umount(8))", mnt, top.FSType, top.Source)
	}
	return mnt, top, nil
}

// resolveMaybeDead makes p absolute with its symlinks resolved; the last
// element is kept as it is when it cannot be resolved (a dead FUSE mount
// answers ENOTCONN).
func resolveMaybeDead(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", usagef("%q: %v", p, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", usagef("%s: %v", abs, err)
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// notMounted explains why path is not a mount for command cmd (umount,
// stats): it may be a backing directory (then: where is it mounted), or
// nothing mounted.
func notMounted(path, cmd string) error {
	fi, err := os.Lstat(filepath.Join(path, blockstore.MetaDir))
	if err != nil || !fi.IsDir() {
		return usagef("%s is not mounted", path)
	}
	l, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("fuse.accelfs"))
	if err != nil {
		return fmt.Errorf("read the mount table: %w", err)
	}
	var at []string
	for _, m := range l {
		if m.Source == path {
			at = append(at, m.Mountpoint)
		}
	}
	if len(at) == 0 {
		return usagef("%s is an accelfs store (a backing directory) and is not mounted", path)
	}
	return usagef("%s is the backing directory of the accelfs mount at %s; run: accelfs %s %s", path, strings.Join(at, ", "), cmd, at[0])
}

// serverPid is the pid of the server of the store in backing, checked
// against the process's command line (a stale pid file's pid may have been
// reused). 0 when unknown.
func serverPid(backing string) int {
	pid := readPid(backing)
	if pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return pid // gone, or a zombie: waitServer reports whether it recorded its exit
	}
	if !strings.Contains(string(cmdline), "\x00"+backing+"\x00") {
		return 0
	}
	return pid
}

// waitServer waits for the server to exit and turns what it recorded
// into umount's result (issue 9 item 7): a failed final commit, or a
// server that died without committing, is an error.
func waitServer(backing string, pid int, timeout time.Duration) error {
	if pid == 0 {
		return nil // no pid record (none could be written): nothing to wait on
	}
	if err := waitExit(pid, timeout); err != nil {
		return err
	}
	found, err := readExitRecord(backing, pid)
	switch {
	case err != nil:
		return fmt.Errorf("unmounted, but the server (pid %d) failed: %w", pid, err)
	case !found:
		return fmt.Errorf("unmounted, but the server (pid %d) exited without its final commit (killed or crashed): changes since its last commit are lost; check the store with accelfs fsck %s", pid, backing)
	}
	return nil
}

// unmount uses umount(2) as root and fusermount otherwise.
func unmount(mnt string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(mnt, flags)
	if err == nil {
		return nil
	}
	if err != unix.EPERM {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	args := []string{"-u", mnt}
	if lazy {
		args = []string{"-u", "-z", mnt}
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if p, lerr := exec.LookPath(bin); lerr == nil {
			out, err := exec.Command(p, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s %v: %w: %s", bin, args, err, out)
			}
			return nil
		}
	}
	return fmt.Errorf("umount %s: %w (and no fusermount found)", mnt, err)
}

// waitExit waits for process pid to exit, through a pidfd (no polling).
func waitExit(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // already gone (ESRCH), or no pidfd support: nothing to wait for
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("unmounted, but server pid %d has not exited after %v (still committing?)", pid, timeout)
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for server pid %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}
