package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	accelfs "github.com/accelfs/accelfs/fs"
)

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantContent(t *testing.T, p string, want []byte) {
	t.Helper()
	if got := mustRead(t, p); !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d (contents differ)", p, len(got), len(want))
	}
}

// text returns n bytes of compressible text.
func text(n int, seed byte) []byte {
	line := []byte("the quick brown fox jumps over the lazy dog 0123456789 ")
	line[0] = seed
	return bytes.Repeat(line, n/len(line)+1)[:n]
}

func TestHardlinksRenamesTruncates(t *testing.T) {
	m := newMount(t, nil)
	a, b, c := m.path("a"), m.path("b"), m.path("c")
	data := text(300<<10, 'A') // several 128 KiB blocks
	writeFile(t, a, data)
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	// A write through one name is seen through the other.
	f, err := os.OpenFile(b, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("LINKED"), 200<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	copy(data[200<<10:], "LINKED")
	wantContent(t, a, data)
	var st syscall.Stat_t
	if err := syscall.Stat(a, &st); err != nil || st.Nlink != 2 {
		t.Fatalf("nlink after link: %d, %v", st.Nlink, err)
	}

	// Rename over an existing file; the replaced file's data is gone, the
	// survivor intact.
	writeFile(t, c, text(10<<10, 'C'))
	if err := os.Rename(c, a); err != nil {
		t.Fatal(err)
	}
	wantContent(t, a, text(10<<10, 'C'))
	wantContent(t, b, data)

	// RENAME_NOREPLACE and RENAME_EXCHANGE.
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("RENAME_NOREPLACE onto an existing name: %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	wantContent(t, a, data)
	wantContent(t, b, text(10<<10, 'C'))

	// Truncate down across a block boundary, then up: the tail reads zeros.
	if err := os.Truncate(a, 130<<10); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(a, 400<<10); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, data[:130<<10]...), make([]byte, 270<<10)...)
	wantContent(t, a, want)
	// ftruncate on an open handle.
	f, err = os.OpenFile(a, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantContent(t, a, data[:5])

	// Directory renames keep the contents reachable.
	if err := os.MkdirAll(m.path("d1", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.path("d1", "sub", "f"), data)
	if err := os.Rename(m.path("d1"), m.path("d2")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, m.path("d2", "sub", "f"), data)

	// Everything survives a remount.
	m.unmount(t)
	m2 := remount(t, m.Backing, nil)
	wantContent(t, m2.path("a"), data[:5])
	wantContent(t, m2.path("b"), text(10<<10, 'C'))
	wantContent(t, m2.path("d2", "sub", "f"), data)
}

func TestUnlinkedOpenFile(t *testing.T) {
	m := newMount(t, nil)
	p := m.path("gone")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := text(200<<10, 'U')
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("AFTER"), 1000); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	copy(data[1000:], "AFTER")
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("unlinked file: contents differ")
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 0 || fi.Size() != int64(len(data)) {
		t.Fatalf("fstat of unlinked file: nlink %d size %d", st.Nlink, fi.Size())
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("stat of removed name: %v", err)
	}
}

func TestHiddenMetaDir(t *testing.T) {
	m := newMount(t, nil)
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == accelfs.MetaDir {
			t.Fatalf("%s is listed in the mount root", accelfs.MetaDir)
		}
	}
	if _, err := os.Lstat(m.path(accelfs.MetaDir)); !os.IsNotExist(err) {
		t.Fatalf("lstat %s: %v, want ENOENT", accelfs.MetaDir, err)
	}
	if err := os.Mkdir(m.path(accelfs.MetaDir), 0o755); err == nil {
		t.Fatalf("mkdir %s succeeded", accelfs.MetaDir)
	}
	writeFile(t, m.path("x"), []byte("x"))
	if err := os.Rename(m.path("x"), m.path(accelfs.MetaDir)); err == nil {
		t.Fatalf("rename onto %s succeeded", accelfs.MetaDir)
	}
	if err := os.Symlink("x", m.path(accelfs.MetaDir)); err == nil {
		t.Fatalf("symlink %s succeeded", accelfs.MetaDir)
	}
	// A subdirectory may use the name.
	if err := os.MkdirAll(m.path("sub", accelfs.MetaDir), 0o755); err != nil {
		t.Fatal(err)
	}
	// The store's own files are untouched.
	if _, err := os.Stat(filepath.Join(m.Backing, accelfs.MetaDir, "format")); err != nil {
		t.Fatalf("store format file: %v", err)
	}
}

// TestSymlinksStayInside: a symlink in the tree pointing outside is shown as
// a symlink and never followed by the server itself.
func TestSymlinksStayInside(t *testing.T) {
	m := newMount(t, nil)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), []byte("outside"))
	if err := os.Symlink(outside, filepath.Join(m.Backing, "escape")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(m.path("escape"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("lstat escape: %v %v", fi, err)
	}
	if target, err := os.Readlink(m.path("escape")); err != nil || target != outside {
		t.Fatalf("readlink: %q %v", target, err)
	}
	// A directory the kernel knows is swapped for a symlink to the
	// outside behind the mount's back: creating in it must not create
	// anything outside the backing tree.
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.path("d")); err != nil { // the kernel caches the entry
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(m.Backing, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(m.Backing, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("d", "planted"), []byte("x"), 0o644); err == nil {
		t.Log("create through the swapped directory succeeded (the kernel re-resolved the name)")
	}
	if _, err := os.Lstat(filepath.Join(outside, "planted")); !os.IsNotExist(err) {
		t.Fatalf("a file was created outside the backing tree through a symlink: %v", err)
	}
}
