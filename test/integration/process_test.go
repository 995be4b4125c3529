package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMmapShared writes through a shared writable mapping (served by a
// separate server process: page faults on a mapping served by this very
// process could deadlock it), then checks the data with read(2) and after
// a remount.
func TestMmapShared(t *testing.T) {
	backing := t.TempDir()
	s := startServer(t, backing)
	p := filepath.Join(s.Dir, "mapped")
	const size = 1 << 20
	base := text(size, 'M')
	writeFile(t, p, base)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if !bytes.Equal(mem[:4096], base[:4096]) {
		t.Fatal("mapping does not show the file contents")
	}
	want := append([]byte{}, base...)
	for off := 0; off < size; off += 100 << 10 {
		copy(mem[off:], "MMAPPED")
		copy(want[off:], "MMAPPED")
	}
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Fatalf("msync: %v", err)
	}
	if err := unix.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantContent(t, p, want)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
	m := remount(t, backing, nil)
	wantContent(t, m.path("mapped"), want)
}

// TestSigkillServer: data fsync'ed before the server is SIGKILLed is intact
// after a remount; unsynced data may be old or new but reads without error.
func TestSigkillServer(t *testing.T) {
	backing := t.TempDir()
	s := startServer(t, backing)
	synced := text(700<<10, 'K')
	f, err := os.Create(filepath.Join(s.Dir, "synced"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(synced); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// Keep writing after the fsync, without syncing, and leave it open.
	if _, err := f.WriteAt(text(300<<10, 'X'), 100<<10); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "unsynced"), text(50<<10, 'N'))
	s.kill(t)
	f.Close() // the mount is gone; the error is expected

	m := remount(t, backing, nil)
	got := mustRead(t, m.path("synced"))
	if len(got) != len(synced) {
		t.Fatalf("synced file: %d bytes after the kill, want %d", len(got), len(synced))
	}
	// Each block is either the synced version or the later write.
	later := append([]byte{}, synced...)
	copy(later[100<<10:], text(300<<10, 'X'))
	for off := 0; off < len(got); off += 4096 {
		end := min(off+4096, len(got))
		if !bytes.Equal(got[off:end], synced[off:end]) && !bytes.Equal(got[off:end], later[off:end]) {
			t.Fatalf("synced file: bytes %d..%d are neither the fsync'ed nor the later data", off, end)
		}
	}
	if _, err := os.ReadFile(m.path("unsynced")); err != nil && !os.IsNotExist(err) {
		t.Fatalf("unsynced file: %v", err)
	}
}

// TestUnmountWithOpenFiles: unmount fails while a file is open, a lazy
// unmount detaches, the open file keeps working, and the data is committed
// when it is closed.
func TestUnmountWithOpenFiles(t *testing.T) {
	m := newMount(t, nil)
	f, err := os.Create(m.path("open"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(text(100<<10, 'O')); err != nil {
		t.Fatal(err)
	}
	if err := m.srv.Unmount(); err == nil {
		t.Fatal("unmount with an open file succeeded")
	}
	if err := m.srv.LazyUnmount(); err != nil {
		t.Fatalf("lazy unmount: %v", err)
	}
	if mounted(m.Dir) {
		t.Fatal("still in /proc/mounts after the lazy unmount")
	}
	if _, err := f.WriteAt([]byte("LATE"), 0); err != nil {
		t.Fatalf("write after lazy unmount: %v", err)
	}
	f.Close()
	m.srv.Wait()
	m.done = true
	m.closeStore(t)
	m2 := remount(t, m.Backing, nil)
	want := text(100<<10, 'O')
	copy(want, "LATE")
	wantContent(t, m2.path("open"), want)
}

// TestConcurrentWriters: goroutines write disjoint ranges of one file and
// their own files at the same time; everything reads back.
func TestConcurrentWriters(t *testing.T) {
	m := newMount(t, nil)
	shared, err := os.Create(m.path("shared"))
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	const workers, chunk = 8, 96 << 10 // chunks straddle 128 KiB blocks
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := text(chunk, byte('a'+w))
			for off := 0; off < chunk; off += 8 << 10 {
				if _, err := shared.WriteAt(data[off:off+8<<10], int64(w*chunk+off)); err != nil {
					errs <- err
					return
				}
			}
			if err := os.WriteFile(m.path(fmt.Sprintf("own%d", w)), text(300<<10, byte('a'+w)), 0o644); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	shared.Close()
	var want []byte
	for w := range workers {
		want = append(want, text(chunk, byte('a'+w))...)
	}
	wantContent(t, m.path("shared"), want)
	for w := range workers {
		wantContent(t, m.path(fmt.Sprintf("own%d", w)), text(300<<10, byte('a'+w)))
	}
}

// TestLocks: flock and POSIX locks conflict between processes (the kernel
// keeps them for the mount).
func TestLocks(t *testing.T) {
	m := newMount(t, nil)
	p := m.path("lockme")
	writeFile(t, p, []byte("x"))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("flock: %v", err)
	}
	g, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := unix.Flock(int(g.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second flock: %v, want EWOULDBLOCK", err)
	}
	// A POSIX lock held here blocks another process.
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatalf("fcntl lock: %v", err)
	}
	out, err := exec.Command("flock", "--version").CombinedOutput()
	if err != nil {
		t.Logf("no flock(1) for the cross-process check: %v %s", err, out)
		return
	}
	// flock(1) uses flock(2): held by us, so -n must fail with 1.
	cmd := exec.Command("flock", "-n", "-E", "7", p, "true")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("flock -n from another process while we hold it: %v", err)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if out, err := exec.Command("flock", "-n", p, "true").CombinedOutput(); err != nil {
		t.Fatalf("flock after unlock: %v %s", err, out)
	}
}

// TestCLI runs the real binary: usage errors exit 2, mount returns once
// ready with the server in the background, stats works, umount ends the
// server.
func TestCLI(t *testing.T) {
	requireFUSE(t)
	bin := accelfsBinary(t)
	for _, args := range [][]string{
		{"mount", "only-one-arg"},
		{"mount", "--algo", "bogus", "a", "b"},
		{"mount", "--block-size", "3000", "a", "b"},
		{"mount", "--accel", "warp-drive", "a", "b"},
		{"mount", "--no-such-flag", "a", "b"},
		{"stats"},
		{"frobnicate"},
	} {
		cmd := exec.Command(bin, args...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("accelfs %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, out)
		}
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "accelfs ") {
		t.Errorf("version: %v %s", err, out)
	}

	backing, mnt := t.TempDir(), t.TempDir()
	out, err := exec.Command(bin, "mount", "--accel", accelMode(), backing, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if !mounted(mnt) {
		t.Fatalf("mount returned but %s is not mounted: %s", mnt, out)
	}
	writeFile(t, filepath.Join(mnt, "f"), text(1<<20, 'c'))
	out, err = exec.Command(bin, "stats", "--json", mnt).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"ratio"`) {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	if out, err = exec.Command(bin, "stats", mnt).CombinedOutput(); err != nil || !strings.Contains(string(out), "ratio") {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	// umount returns once the server has committed and exited: the store
	// is free at once.
	m, err := tryRemount(t, backing)
	if err != nil {
		t.Fatalf("store not free right after umount returned: %v", err)
	}
	wantContent(t, m.path("f"), text(1<<20, 'c'))
}

// TestSigtermWithOpenFile: SIGTERM while a file is open detaches the mount
// lazily; the open file keeps working; the server commits and exits 0 when
// it is closed.
func TestSigtermWithOpenFile(t *testing.T) {
	backing := t.TempDir()
	s := startServer(t, backing)
	f, err := os.Create(filepath.Join(s.Dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	data := text(200<<10, 'H')
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	// The server answers the signal by detaching: the mount point goes
	// away from the namespace while our descriptor still works.
	for i := 0; mounted(s.Dir); i++ {
		if i > 1000 {
			t.Fatal("mount still attached 10s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-s.exited:
		t.Fatalf("server exited with a file still open: %v", err)
	default:
	}
	if _, err := f.WriteAt([]byte("TAIL"), int64(len(data))); err != nil {
		t.Fatalf("write after the lazy detach: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, readFile(s.log))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server still running 30s after the last file was closed\n%s", readFile(s.log))
	}
	m := remount(t, backing, nil)
	wantContent(t, m.path("held"), append(data, "TAIL"...))
}
