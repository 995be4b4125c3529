package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCLIRelativePaths (issue 8 defect 1): `cd DIR && accelfs mount b m`
// mounts DIR/b at DIR/m, also when the same relative paths exist under /
// (where the background server used to resolve them).
func TestCLIRelativePaths(t *testing.T) {
	requireFUSE(t)
	name := fmt.Sprintf("accelfs-rel-%d", os.Getpid())
	decoy := filepath.Join("/", name)
	for _, d := range []string{"b", "m"} {
		if err := os.MkdirAll(filepath.Join(decoy, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := 0; i < 4 && mounted(filepath.Join(decoy, "m")); i++ {
			unix.Unmount(filepath.Join(decoy, "m"), unix.MNT_DETACH)
		}
		os.RemoveAll(decoy)
	})
	work := t.TempDir()
	for _, d := range []string{"b", "m"} {
		if err := os.MkdirAll(filepath.Join(work, name, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	backing, mnt := filepath.Join(work, name, "b"), filepath.Join(work, name, "m")
	cliMount(t, work, mnt, name+"/b", name+"/m")
	if at := mountsOf(backing); len(at) != 1 || at[0] != mnt {
		t.Fatalf("%s is mounted at %v, want [%s]; the decoy /%s/b is mounted at %v",
			backing, at, mnt, name, mountsOf(filepath.Join(decoy, "b")))
	}
	writeFile(t, filepath.Join(mnt, "f"), []byte("relative"))
	if out, code := cliRun(t, work, "umount", name+"/m"); code != 0 {
		t.Fatalf("umount %s/m: exit %d\n%s", name, code, out)
	}
	if _, err := os.Stat(filepath.Join(decoy, "b", ".accelfs")); err == nil {
		t.Errorf("a store was created in the decoy /%s/b", name)
	}
	m := remount(t, backing, nil)
	wantContent(t, m.path("f"), []byte("relative"))
}

// TestCLIMountGuards (issue 8 defects 2 and 6, mountpoint half, and the
// mount pre-check of "init"): each mistake is refused with exit 2 and a
// message saying why, nothing is mounted and no store is created.
func TestCLIMountGuards(t *testing.T) {
	requireFUSE(t)
	root := t.TempDir()
	mk := func(p ...string) string {
		d := filepath.Join(append([]string{root}, p...)...)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	store, inner := mk("s"), mk("s", "inner")
	outer := mk("outer")
	nested := mk("outer", "store")
	full := mk("full")
	writeFile(t, filepath.Join(full, "keep.txt"), []byte("mine"))
	plain := mk("plain")
	writeFile(t, filepath.Join(plain, "existing.txt"), []byte("not a store"))
	empty := mk("empty")
	for _, tc := range []struct {
		name         string
		args         []string
		mnt, backing string
		says         string
	}{
		{"mountpoint inside backing", nil, inner, store, "inside the backing directory"},
		{"backing inside mountpoint", nil, outer, nested, "inside the mountpoint"},
		{"non-empty mountpoint", nil, full, store, "-o nonempty"},
		{"plain directory as backing", nil, empty, plain, "accelfs init"},
		{"missing backing", nil, empty, filepath.Join(root, "nope"), "no such directory"},
	} {
		detachAtCleanup(t, tc.mnt)
		out, code := cliRun(t, "", append(append([]string{"mount", "--accel=" + accelMode()}, tc.args...), tc.backing, tc.mnt)...)
		wantCode(t, tc.name, out, code, 2, tc.says)
		if mounted(tc.mnt) {
			t.Errorf("%s: %s was mounted", tc.name, tc.mnt)
			unix.Unmount(tc.mnt, unix.MNT_DETACH)
		}
	}
	for _, d := range []string{plain, nested} {
		if _, err := os.Stat(filepath.Join(d, ".accelfs")); err == nil {
			t.Errorf("a store was created in %s", d)
		}
	}
	if b, err := os.ReadFile(filepath.Join(plain, "existing.txt")); err != nil || string(b) != "not a store" {
		t.Errorf("plain backing's file changed: %q %v", b, err)
	}

	// -o nonempty accepts the non-empty mountpoint (hiding its files until
	// the unmount) ...
	store2 := mk("s2")
	cliMount(t, "", full, "-o", "nonempty", store2, full)
	if _, err := os.Stat(filepath.Join(full, "keep.txt")); !os.IsNotExist(err) {
		t.Errorf("the mount does not cover %s: %v", full, err)
	}
	// ... and a second mount on the same mountpoint is refused.
	other := mk("other")
	out, code := cliRun(t, "", "mount", "--accel="+accelMode(), "-o", "nonempty", other, full)
	wantCode(t, "already mounted", out, code, 2, "already mounted")
	if at := mountsOf(other); len(at) != 0 {
		t.Errorf("second store mounted at %v", at)
	}
	// The same store twice: exit 7 (served by another process), in both modes.
	for _, fg := range []string{"--foreground=false", "--foreground"} {
		twice := mk("twice" + fg)
		detachAtCleanup(t, twice)
		out, code = cliRun(t, "", "mount", fg, "--accel="+accelMode(), store2, twice)
		wantCode(t, "store mounted twice "+fg, out, code, 7, "served by another accelfs process")
	}
	if out, code := cliRun(t, "", "umount", full); code != 0 {
		t.Fatalf("umount: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(full, "keep.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the mountpoint's own file after umount: %q %v", b, err)
	}
}
