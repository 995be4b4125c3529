package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers of the CLI tests (cli_*_test.go): the real binary, run as a user
// runs it.

// cliRun runs the accelfs binary in dir (the caller's cwd when "") and
// returns its combined output and exit code.
func cliRun(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(accelfsBinary(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("accelfs %v: %v", args, err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// cliMount runs `accelfs mount --accel MODE ARGS...` (background server)
// in dir and wants it to succeed. Cleanup detaches mnt if still mounted.
func cliMount(t *testing.T, dir, mnt string, args ...string) string {
	t.Helper()
	detachAtCleanup(t, mnt)
	out, code := cliRun(t, dir, append([]string{"mount", "--accel=" + accelMode()}, args...)...)
	if code != 0 {
		t.Fatalf("accelfs mount %v: exit %d\n%s", args, code, out)
	}
	return out
}

// detachAtCleanup unmounts (lazily) whatever is still mounted at mnt when
// the test ends; the background server then exits by itself.
func detachAtCleanup(t *testing.T, mnt string) {
	t.Cleanup(func() {
		for i := 0; i < 4 && mounted(mnt); i++ {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
}

// wantCode checks an exit code and that the output says what it should.
func wantCode(t *testing.T, what, out string, code, want int, says ...string) {
	t.Helper()
	if code != want {
		t.Errorf("%s: exit %d, want %d\n%s", what, code, want, out)
	}
	for _, s := range says {
		if !strings.Contains(out, s) {
			t.Errorf("%s: output does not say %q:\n%s", what, s, out)
		}
	}
}

// mountsOf lists the mount points where backing is mounted (source field).
func mountsOf(backing string) []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var at []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == backing && f[2] == "fuse.accelfs" {
			at = append(at, f[1])
		}
	}
	return at
}

// serverPidOf reads the pid a server recorded in its store.
func serverPidOf(t *testing.T, backing string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backing, ".accelfs", "mount.pid"))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// waitGone waits until process pid has exited (pidfd: no polling, no
// deadline; the test's own timeout bounds it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if err != unix.EINTR {
			return
		}
	}
}

// startForeground runs `accelfs mount --foreground --notify-fd=3` at the
// given mountpoint and waits for its report line ("ok" or "err ...").
func startForeground(t *testing.T, backing, mnt string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := append([]string{"mount", "--foreground", "--notify-fd=3", "--accel=" + accelMode()}, extra...)
	cmd := exec.Command(accelfsBinary(t), append(args, backing, mnt)...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	line, _ := bufio.NewReader(r).ReadString('\n')
	return cmd, strings.TrimSpace(line)
}

// publicDir is a fresh directory every user may enter (t.TempDir's
// parents are 0700), owned by uid.
func publicDir(t *testing.T, uid int) string {
	t.Helper()
	// Not under $TMPDIR: scripts/test.sh makes that a private 0700
	// directory, which uid could not traverse to reach the binary.
	d, err := os.MkdirTemp("/tmp", "accelfs-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, uid, uid); err != nil {
		t.Fatal(err)
	}
	return d
}
