package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
		Description: `Unmounts MOUNTPOINT. The server then writes and commits the remaining dirty
data and exits. Waits (up to --wait) until the server has committed and exited, so the store
is complete and free when umount returns. Fails with "device or resource
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
			mnt, err := absArg(c)
			if err != nil {
				return err
			}
			pid := serverPid(mnt)
			if err := unmount(mnt, c.Bool("lazy")); err != nil {
				return err
			}
			if pid > 0 && !c.Bool("lazy") && c.Duration("wait") > 0 {
				return waitExit(pid, c.Duration("wait"))
			}
			return nil
		},
	}
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

// pidFile is where a server records its pid (BACKING/.accelfs/mount.pid).
func pidFile(backing string) string {
	return filepath.Join(backing, blockstore.MetaDir, "mount.pid")
}

// serverPid finds the pid of the server of an accelfs mount: the mount's
// source in /proc/mounts is the backing directory, whose pid file names
// the server. 0 when unknown.
func serverPid(mnt string) int {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || unescapeMount(f[1]) != mnt || f[2] != "fuse.accelfs" {
			continue
		}
		p, err := os.ReadFile(pidFile(unescapeMount(f[0])))
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(p)))
		return pid
	}
	return 0
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 = space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
