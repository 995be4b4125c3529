package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	} else if rec := strings.TrimSpace(string(b)); !strings.HasSuffix(rec, " ok") {
		t.Errorf("exit record %q, want PID ok", rec)
	}
}

// TestCLIUmountFailedCommit (issue 9 item 7): when the final commit fails
// (the backing filesystem is full), umount exits non-zero with the reason;
// it exits 0 only when the data was committed.
func TestCLIUmountFailedCommit(t *testing.T) {
	requireFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	if err := unix.Mount("tmpfs", backing, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
	cliMount(t, "", mnt, "--commit-interval=0", backing, mnt)
	data := randomBytes(3 << 20)
	writeFile(t, filepath.Join(mnt, "f"), data) // not fsync'ed: committed at unmount
	fillUp(t, filepath.Join(backing, "filler"))
	out, code := cliRun(t, "", "umount", mnt)
	os.Remove(filepath.Join(backing, "filler"))
	// Whether the server's final commit failed is in its log (an ERROR
	// record about closing the store); umount must agree with it.
	failed := false
	for _, l := range strings.Split(readFile(filepath.Join(backing, ".accelfs", "mount.log")), "\n") {
		failed = failed || strings.Contains(l, "level=ERROR") && strings.Contains(l, "closing the store")
	}
	if failed || code != 0 {
		if !failed {
			t.Errorf("umount exit %d but the server logged no failed commit:\n%s", code, out)
		}
		wantCode(t, "umount after a failed final commit", out, code, 1, "final commit failed", "no space")
		return
	}
	// umount said 0: the data must be there.
	mnt2 := t.TempDir()
	cliMount(t, "", mnt2, backing, mnt2)
	wantContent(t, filepath.Join(mnt2, "f"), data)
	if out, code := cliRun(t, "", "umount", mnt2); code != 0 {
		t.Fatalf("umount: %s", out)
	}
}
