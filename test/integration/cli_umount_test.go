package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCLIUmountOnlyAccelfs (issue 8 defect 5): umount leaves other
// filesystems alone.
func TestCLIUmountOnlyAccelfs(t *testing.T) {
	requireFUSE(t)
	tmpfs := t.TempDir()
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	detachAtCleanup(t, tmpfs)
	out, code := cliRun(t, "", "umount", tmpfs)
	wantCode(t, "umount tmpfs", out, code, 2, "not an accelfs mount")
	if !mounted(tmpfs) {
		t.Fatal("accelfs umount unmounted a tmpfs")
	}
}

// TestCLIUmountStacked (issue 8 defect 5): umount takes the top-most of
// stacked mounts and waits for that mount's server (not the one below);
// given a backing directory it says where it is mounted.
func TestCLIUmountStacked(t *testing.T) {
	requireFUSE(t)

	// Two servers stacked on one mountpoint (a server started directly
	// skips the guards of `accelfs mount`): umount takes the top one and
	// waits for its server, not for the one below.
	lower, upper, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	cliMount(t, "", mnt, lower, mnt)
	writeFile(t, filepath.Join(mnt, "lower"), []byte("L"))
	top, line := startForeground(t, upper, mnt)
	if line != "ok" {
		t.Fatalf("stacked server: %q", line)
	}
	writeFile(t, filepath.Join(mnt, "upper"), []byte("U"))

	out, code := cliRun(t, "", "umount", upper)
	wantCode(t, "umount BACKING", out, code, 2, "backing directory of the accelfs mount at "+mnt)

	out, code = cliRun(t, "", "umount", "--wait=10m", mnt)
	wantCode(t, "umount stacked", out, code, 0)
	if err := top.Wait(); err != nil {
		t.Errorf("top server exit: %v", err)
	}
	if at := mountsOf(lower); len(at) != 1 {
		t.Errorf("lower mount: %v, want still mounted", at)
	}
	wantContent(t, filepath.Join(mnt, "lower"), []byte("L"))
	out, code = cliRun(t, "", "umount", mnt)
	wantCode(t, "umount lower", out, code, 0)
	out, code = cliRun(t, "", "umount", mnt)
	wantCode(t, "umount again", out, code, 2, "not mounted")
}

// TestCLIUmountServerKilled (issue 9 item 7): when the server dies before
// its final commit, umount says so and exits non-zero.
func TestCLIUmountServerKilled(t *testing.T) {
	requireFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	cliMount(t, "", mnt, "--commit-interval=0", backing, mnt)
	writeFile(t, filepath.Join(mnt, "unsynced"), text(300<<10, 'k'))
	pid := serverPidOf(t, backing)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	out, code := cliRun(t, "", "umount", mnt)
	wantCode(t, "umount after SIGKILL", out, code, 1, "pid "+strconv.Itoa(pid), "without its final commit")
	if mounted(mnt) {
		t.Error("the dead mount is still attached")
	}

	// A clean run reports 0.
	cliMount(t, "", mnt, backing, mnt)
	out, code = cliRun(t, "", "umount", mnt)
	wantCode(t, "clean umount", out, code, 0)
	if b, err := os.ReadFile(filepath.Join(backing, ".accelfs", "mount.exit")); err != nil {
		t.Errorf("exit record: %v", err)
	} else if want := " ok\n"; len(b) < len(want) || string(b[len(b)-len(want):]) != want {
		t.Errorf("exit record %q, want ...%q", b, want)
	}
}
