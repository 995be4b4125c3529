package integration

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	accelfs "github.com/accelfs/accelfs/fs"
)

func TestSparseFiles(t *testing.T) {
	m := newMount(t, nil)
	p := m.path("sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const off = 16 << 20
	data := text(64<<10, 'S')
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	if pos, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil || pos > off || pos < off-(1<<20) {
		t.Fatalf("SEEK_DATA from 0: %d, %v; want the block holding %d", pos, err, off)
	}
	if pos, err := unix.Seek(fd, 0, unix.SEEK_HOLE); err != nil || pos != 0 {
		t.Fatalf("SEEK_HOLE from 0: %d, %v; want 0", pos, err)
	}
	if _, err := unix.Seek(fd, off+64<<10, unix.SEEK_DATA); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("SEEK_DATA at EOF: %v, want ENXIO", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != off+64<<10 || st.Blocks*512 > 1<<20 {
		t.Fatalf("sparse file: size %d, %d bytes on disk; want %d and well under 1 MiB", st.Size, st.Blocks*512, off+64<<10)
	}
	got := make([]byte, 4096)
	if _, err := f.ReadAt(got, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("hole does not read as zeros")
	}

	// Punch a hole over the data: zeros, size unchanged.
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, 64<<10); err != nil {
		t.Fatalf("punch hole: %v", err)
	}
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("punched range does not read as zeros")
	}
	// Fallocate mode 0 extends, KEEP_SIZE does not.
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 64<<20); err != nil {
		t.Fatalf("fallocate keep size: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != off+64<<10 {
		t.Fatalf("size after KEEP_SIZE fallocate: %d", fi.Size())
	}
	if err := unix.Fallocate(fd, 0, 0, 32<<20); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 32<<20 {
		t.Fatalf("size after fallocate: %d, want %d", fi.Size(), 32<<20)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_COLLAPSE_RANGE, 0, 128<<10); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("collapse range: %v, want EOPNOTSUPP", err)
	}
}

func TestXattrs(t *testing.T) {
	m := newMount(t, nil)
	p := m.path("f")
	writeFile(t, p, []byte("x"))
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{p, m.path("d"), m.Dir} {
		if err := unix.Setxattr(target, "user.test", []byte("value"), 0); err != nil {
			t.Fatalf("setxattr %s: %v", target, err)
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(target, "user.test", buf)
		if err != nil || string(buf[:n]) != "value" {
			t.Fatalf("getxattr %s: %q %v", target, buf[:n], err)
		}
		n, err = unix.Listxattr(target, buf)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(buf[:n], []byte(accelfs.StatsXattr)) {
			t.Fatalf("listxattr shows %s", accelfs.StatsXattr)
		}
		if !bytes.Contains(buf[:n], []byte("user.test")) {
			t.Fatalf("listxattr %s: %q", target, buf[:n])
		}
		if err := unix.Removexattr(target, "user.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Getxattr(target, "user.test", buf); !errors.Is(err, unix.ENODATA) {
			t.Fatalf("getxattr after remove: %v", err)
		}
	}
	if err := unix.Setxattr(m.Dir, accelfs.StatsXattr, []byte("{}"), 0); err == nil {
		t.Fatal("setting the stats attribute succeeded")
	}
	// The attribute lives on the backing file.
	writeFile(t, p, []byte("y"))
	unix.Setxattr(p, "user.kept", []byte("1"), 0)
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(m.Backing+"/f", "user.kept", buf); err != nil || string(buf[:n]) != "1" {
		t.Fatalf("backing xattr: %q %v", buf[:n], err)
	}
}

func TestXattrsOff(t *testing.T) {
	m := newMount(t, &mountOpts{fs: accelfs.Options{NoXattrs: true}})
	writeFile(t, m.path("f"), []byte("x"))
	if err := unix.Setxattr(m.path("f"), "user.test", []byte("v"), 0); !errors.Is(err, unix.ENOTSUP) {
		t.Fatalf("setxattr with xattrs off: %v, want ENOTSUP", err)
	}
	readStatsDoc(t, m.Dir) // the stats channel still works
}
