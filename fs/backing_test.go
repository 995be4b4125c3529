package fs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenRelStaysInside: no path component, the last one included, may be
// a symlink, whether openat2 or the component walk resolves it.
func TestOpenRelStaysInside(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"out": outside, "in": "dir", "abs": "/"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "dir", "deep")); err != nil {
		t.Fatal(err)
	}
	b, err := openBacking(root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	for _, open := range []struct {
		name string
		fn   func(string, int) (int, error)
	}{{"openat2", b.openRel}, {"walk", b.walk}} {
		for _, ok := range []string{"", ".", "dir", "dir/sub"} {
			fd, err := open.fn(ok, unix.O_PATH|unix.O_DIRECTORY)
			if err != nil {
				t.Errorf("%s(%q): %v", open.name, ok, err)
				continue
			}
			unix.Close(fd)
		}
		for _, bad := range []string{"out", "out/secret", "in", "in/sub", "abs", "dir/deep", "dir/deep/secret", "..", "dir/../.."} {
			fd, err := open.fn(bad, unix.O_RDONLY)
			if err == nil {
				unix.Close(fd)
				t.Errorf("%s(%q) succeeded; it must not follow a symlink or leave the root", open.name, bad)
				continue
			}
			if !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s(%q): %v, want ELOOP, EXDEV or ENOTDIR", open.name, bad, err)
			}
		}
	}
}

func TestTargetProcPath(t *testing.T) {
	tg := target{dirfd: 7, name: "a b"}
	if got := tg.procPath(); got != "/proc/self/fd/7/a b" {
		t.Errorf("procPath = %q", got)
	}
	if tg.atFlags() != unix.AT_SYMLINK_NOFOLLOW {
		t.Error("a named target must not follow symlinks")
	}
	fdt := target{dirfd: unix.AT_FDCWD, name: "/proc/self/fd/9", follow: true}
	if fdt.procPath() != "/proc/self/fd/9" || fdt.atFlags() != 0 {
		t.Error("an fd target is reached through its /proc path")
	}
}
