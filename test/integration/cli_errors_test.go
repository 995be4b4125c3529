package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCLIMountErrorsAsUser (issue 8 defect 7): a mount that fusermount3
// refuses (here: a user asking for allow_other without user_allow_other
// in /etc/fuse.conf, or a /dev/fuse the user may not open) prints
// fusermount3's own line on the terminal, not "fusermount exited with code
// 256", and exits with the same class code (5 or 6, docs/cli.md) in the
// background and in --foreground.
func TestCLIMountErrorsAsUser(t *testing.T) {
	requireFUSE(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		skipOrFail(t, "no fusermount3 (install fuse3)")
	}
	if b, _ := os.ReadFile("/etc/fuse.conf"); strings.Contains(stripComments(string(b)), "user_allow_other") {
		t.Skip("/etc/fuse.conf has user_allow_other: allow_other is not refused here")
	}
	const nobody = 65534
	dir := publicDir(t, nobody)
	bin := filepath.Join(dir, "accelfs")
	copyFile(t, accelfsBinary(t), bin, 0o755)
	codes := map[string]int{}
	for _, mode := range []string{"background", "foreground"} {
		backing, mnt := filepath.Join(dir, mode+"-b"), filepath.Join(dir, mode+"-m")
		for _, d := range []string{backing, mnt} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chown(d, nobody, nobody)
		}
		detachAtCleanup(t, mnt)
		args := []string{"mount", "--accel=" + accelMode(), "--allow-other", backing, mnt}
		if mode == "foreground" {
			args = append(args[:1], append([]string{"--foreground"}, args[1:]...)...)
		}
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		// The user's own temp dir (--accel emu keeps its device tree there):
		// scripts/test.sh's $TMPDIR is root's, 0700.
		cmd.Env = append(os.Environ(), "TMPDIR="+dir)
		out, _ := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		codes[mode] = code
		if code != 5 && code != 6 {
			t.Errorf("%s: exit %d, want 5 (FUSE not usable) or 6 (mount refused)\n%s", mode, code, out)
		}
		if !strings.Contains(string(out), "fusermount3:") || strings.Contains(string(out), "exited with code") {
			t.Errorf("%s: the output does not carry fusermount3's own line:\n%s", mode, out)
		}
		if mounted(mnt) {
			t.Errorf("%s: mounted", mode)
		}
		if mode == "background" { // fusermount3's stderr is a log record too
			log := readFile(filepath.Join(backing, ".accelfs", "mount.log"))
			if !strings.Contains(log, "src=stderr") || !strings.Contains(log, "fusermount3") {
				t.Errorf("fusermount3's line is not a record of the server's log:\n%s", log)
			}
			for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
				if !strings.HasPrefix(l, "time=") {
					t.Errorf("log line not in the slog text format: %q", l)
				}
			}
		}
	}
	if codes["background"] != codes["foreground"] {
		t.Errorf("exit codes differ: background %d, foreground %d", codes["background"], codes["foreground"])
	}
}

// TestCLIBadMountOption: an unknown -o option is a usage error (2) in both
// modes, before anything is created.
func TestCLIBadMountOption(t *testing.T) {
	requireFUSE(t)
	for _, fg := range []string{"--foreground=false", "--foreground"} {
		backing, mnt := t.TempDir(), t.TempDir()
		detachAtCleanup(t, mnt)
		out, code := cliRun(t, "", "mount", fg, "--accel="+accelMode(), "-o", "ro,frobnicate", backing, mnt)
		wantCode(t, "-o frobnicate "+fg, out, code, 2, "frobnicate", "unknown mount option")
		if _, err := os.Stat(filepath.Join(backing, ".accelfs")); err == nil {
			t.Errorf("%s: a store was created", fg)
		}
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
