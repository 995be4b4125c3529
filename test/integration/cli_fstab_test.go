package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// requireMountFuse skips unless mount(8) and mount.fuse3 (package fuse3)
// are installed: they are what an fstab line runs.
func requireMountFuse(t *testing.T) {
	t.Helper()
	requireFUSE(t)
	if _, err := exec.LookPath("mount"); err != nil {
		skipOrFail(t, "no mount(8)")
	}
	if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		skipOrFail(t, "no /sbin/mount.fuse3 (install fuse3)")
	}
}

// TestCLIFstabTypeFuseAccelfs (issue 8, fstab): `mount -t fuse.accelfs
// BACKING MNT -o ...` works with accelfs installed on the PATH; mount(8)
// runs mount.fuse3, which runs `accelfs BACKING MNT -o rw,...,dev,suid`.
// mount(8) gives helpers a fixed PATH (/usr/local/bin:...), so the test
// runs it in a private mount namespace where a temp directory holding the
// binary is bind-mounted on /usr/local/bin; the mount is reached through
// the server's /proc/PID/root.
func TestCLIFstabTypeFuseAccelfs(t *testing.T) {
	requireMountFuse(t)
	bindir, backing, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	copyFile(t, accelfsBinary(t), filepath.Join(bindir, "accelfs"), 0o755)
	opts := "algo=zstd,level=3,accel=" + accelMode() + ",defaults,noauto,nofail,_netdev,x-systemd.automount,commit-interval=1s"
	script := fmt.Sprintf("mount --bind %s /usr/local/bin && exec mount -t fuse.accelfs %s %s -o %s", bindir, backing, mnt, opts)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\nlog:\n%s", script, err, out, readFile(filepath.Join(backing, ".accelfs", "mount.log")))
	}
	pid := serverPidOf(t, backing)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM); waitGone(t, pid) })
	view := fmt.Sprintf("/proc/%d/root%s", pid, mnt) // the mount, seen from the server's namespace
	if mi := readFile(fmt.Sprintf("/proc/%d/mountinfo", pid)); !strings.Contains(mi, " "+mnt+" ") || !strings.Contains(mi, "fuse.accelfs") {
		t.Fatalf("no fuse.accelfs mount at %s in the server's namespace:\n%s", mnt, mi)
	}
	writeFile(t, filepath.Join(view, "f"), text(256<<10, 'z'))
	st, code := cliRun(t, "", "stats", "--json", view)
	if code != 0 {
		t.Fatalf("stats: %s", st)
	}
	var doc struct {
		Algo  string `json:"algo"`
		Level int    `json:"level"`
	}
	if err := json.Unmarshal([]byte(st), &doc); err != nil || doc.Algo != "zstd" || doc.Level != 3 {
		t.Errorf("stats: algo %q level %d (%v), want zstd 3 from -o algo=zstd,level=3", doc.Algo, doc.Level, err)
	}
	// Unmount from inside the namespace when nsenter is there; else SIGTERM.
	if nsenter, err := exec.LookPath("nsenter"); err == nil {
		out, err := exec.Command(nsenter, "-t", fmt.Sprint(pid), "-m", filepath.Join(bindir, "accelfs"), "umount", mnt).CombinedOutput()
		if err != nil {
			t.Fatalf("accelfs umount in the namespace: %v\n%s", err, out)
		}
	} else {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	waitGone(t, pid)
	m := remount(t, backing, nil)
	wantContent(t, m.path("f"), text(256<<10, 'z'))
}

// TestCLIFstabHashSource: an fstab line (in a file given to mount -T) of
// type fuse with the source "/path/to/accelfs#BACKING" (mount.fuse3 runs
// the part before # with the rest as source), with ro.
func TestCLIFstabHashSource(t *testing.T) {
	requireMountFuse(t)
	bindir, backing, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	bin := filepath.Join(bindir, "accelfs")
	copyFile(t, accelfsBinary(t), bin, 0o755)
	m := remount(t, backing, nil)
	writeFile(t, m.path("kept"), []byte("read-only view"))
	m.unmount(t)

	detachAtCleanup(t, mnt)
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := fmt.Sprintf("%s#%s %s fuse ro,accel=%s,noauto,nofail,_netdev,x-systemd.automount 0 0\n", bin, backing, mnt, accelMode())
	if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-T", fstab, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("mount -T %s %s (%s): %v\n%s", fstab, mnt, line, err, out)
	}
	wantContent(t, filepath.Join(mnt, "kept"), []byte("read-only view"))
	if err := os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a -o ro mount: %v, want EROFS", err)
	}
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: exit %d\n%s", code, out)
	}
}
