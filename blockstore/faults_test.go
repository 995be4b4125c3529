package blockstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
	"golang.org/x/sys/unix"
)

// failPath injects err into op ("write" or "sync") on the backing file at
// path while on is set (the storage seam of STYLE §19).
func failPath(op, path string, err error, on *atomic.Bool) *testHooks {
	return &testHooks{fail: func(o, p string) error {
		if o == op && p == path && on.Load() {
			return err
		}
		return nil
	}}
}

// One file whose write-out or fdatasync keeps failing costs no other file
// its commit: the interval commit, the stats commit (Store.Commit) and the
// final commit of Store.Close record every other file, and the failing
// file's own Sync reports its failure (issue 9 item 1).
func TestFaultIsolation(t *testing.T) {
	for _, op := range []string{"write", "sync"} {
		for _, how := range []string{"interval", "stats", "close"} {
			t.Run(op+"/"+how, func(t *testing.T) { testFaultIsolation(t, op, how) })
		}
	}
}

func testFaultIsolation(t *testing.T, op, how string) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	good := createFile(t, s, "good")
	v1, v2 := compressible(3*bs, 1), compressible(3*bs, 7)
	mustWrite(t, good, v1, 0)
	if err := good.Sync(); err != nil {
		t.Fatal(err)
	}
	bad := createFile(t, s, "bad")
	var on atomic.Bool
	on.Store(true)
	s.hooks = failPath(op, filepath.Join(dir, "bad"), syscall.ENOSPC, &on)
	mustWrite(t, bad, []byte("cannot be stored"), 10) // a partial block: stays dirty
	mustWrite(t, good, v2, 0)
	switch how {
	case "interval":
		s.backgroundCommit()
	case "stats":
		if err := s.Commit(context.Background()); !errors.Is(err, ErrNoSpace) {
			t.Errorf("Store.Commit: %v, want the bad file's ErrNoSpace", err)
		}
	case "close":
		bad.Close()
		good.Close()
		if err := s.Close(); !errors.Is(err, ErrNoSpace) {
			t.Errorf("Store.Close: %v, want the bad file's ErrNoSpace", err)
		}
	}
	if how != "close" {
		if err := bad.Sync(); !errors.Is(err, ErrNoSpace) {
			t.Errorf("the bad file's Sync: %v, want ErrNoSpace", err)
		}
		s.abandon() // a crash: only what was committed counts
	}
	s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	good = openFile(t, s, "good")
	checkContent(t, good, v2)
	good.Close()
}

// watchdog fails the test when op has not returned after limit (a hang,
// not a slow machine: the limit is far above any op's time).
func watchdog(t *testing.T, what string, limit time.Duration, op func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		op()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s: no progress for %v (hang)", what, limit)
	}
}

// A file whose blocks cannot be written does not pin the dirty budget:
// its writer gets ErrNoSpace instead of waiting forever, writers of other
// files go on, the dropped blocks are reported by the file's Sync, and
// once space is back the file takes writes again (issue 9 item 2).
func TestFaultStuckBlocksDoNotPinBudget(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(4 * bs)
	s := mustOpen(t, dir, o)
	defer s.Close()
	full, other := createFile(t, s, "full"), createFile(t, s, "other")
	var on atomic.Bool
	on.Store(true)
	s.hooks = failPath("write", filepath.Join(dir, "full"), syscall.ENOSPC, &on)
	var werr error
	watchdog(t, "writes to the full file", time.Minute, func() {
		for i := range 64 {
			if _, werr = full.WriteAt(compressible(bs, i), int64(i*bs)); werr != nil {
				return
			}
		}
	})
	if !errors.Is(werr, ErrNoSpace) {
		t.Fatalf("64 blocks into a file that cannot store any: %v, want ErrNoSpace", werr)
	}
	want := compressible(16*bs, 3)
	watchdog(t, "writes to another file", time.Minute, func() { mustWrite(t, other, want, 0) })
	if err := other.Sync(); err != nil {
		t.Fatalf("the other file's Sync: %v", err)
	}
	checkContent(t, other, want)
	if err := full.Sync(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("the full file's Sync: %v, want ErrNoSpace", err)
	}
	on.Store(false) // space is back
	v := compressible(8*bs, 5)
	mustWrite(t, full, v, 0)
	if err := full.Sync(); err != nil {
		t.Fatalf("Sync once space is back: %v", err)
	}
	got := make([]byte, len(v))
	if _, err := full.ReadAt(got, 0); err != nil || string(got) != string(v) {
		t.Fatalf("read back after space came back: %v", err)
	}
	full.Close()
	other.Close()
}

// A write beyond what the backing filesystem can store fails at once with
// ErrTooLarge (EFBIG), instead of being accepted and failing every commit
// later (issue 9 item 2). RLIMIT_FSIZE stands in for a filesystem's
// maximum file size; both are what the probe finds.
func TestFaultWriteBeyondBackingLimit(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 30
	if old.Cur < limit {
		t.Skipf("RLIMIT_FSIZE is %d already", old.Cur)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_FSIZE, &old) })
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "f")
	defer f.Close()
	if _, err := f.WriteAt([]byte{1}, limit); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write at the backing's limit: %v, want ErrTooLarge", err)
	}
	lim := storableSize(limit, bs)
	if _, err := f.WriteAt([]byte{1}, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write at %d (first byte the backing cannot hold): %v, want ErrTooLarge", lim, err)
	}
	mustWrite(t, f, []byte{2}, lim-1)
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync of a write just below the limit: %v", err)
	}
}

// storableSize keeps both slots of the last block below the backing's
// maximum file size.
func TestStorableSize(t *testing.T) {
	for _, bs := range []int{4096, 128 << 10, 1 << 20} {
		for _, maxB := range []int64{0, 8192, 1 << 30, 16 << 40, 1<<63 - 1} {
			got := storableSize(maxB, bs)
			if got < 0 || got > MaxFileSize || got%int64(bs) != 0 && got != min(int64(bs), MaxFileSize) {
				t.Fatalf("storableSize(%d, %d) = %d", maxB, bs, got)
			}
			if got > int64(bs) {
				last := got/int64(bs) - 1
				end, _ := locOffset(bs, last, locSlot1)
				if end+slotSize(bs) > maxB {
					t.Fatalf("storableSize(%d, %d) = %d: block %d's second slot ends at %d", maxB, bs, got, last, end+slotSize(bs))
				}
			}
		}
	}
	if got := storableSize(1<<63-1, 4096); got != MaxFileSize {
		t.Fatalf("no backing limit: %d, want MaxFileSize", got)
	}
}

// The last Close of a file unlinked while open never reports ErrClosed
// when a concurrent commit dropped the file's entries (and released it)
// first (issue 9 item 10).
func TestFaultUnlinkedCloseRacesCommit(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the interval commit at its shortest
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.backgroundCommit()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	n := 300
	if testing.Short() {
		n = 100
	}
	for i := range n {
		name := "u"
		f := createFile(t, s, name)
		mustWrite(t, f, compressible(bs+i, i), 0)
		other := mustOpenBacking(t, filepath.Join(dir, name))
		if err := unix.Unlink(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		if err := s.Unlinked(other); err != nil {
			t.Fatalf("iteration %d: Unlinked: %v", i, err)
		}
		other.Close()
		if err := f.Close(); err != nil {
			t.Fatalf("iteration %d: last Close of an unlinked file: %v", i, err)
		}
	}
	if s.commitErr.Load() != 0 {
		t.Fatalf("%d background commits failed", s.commitErr.Load())
	}
}

// An idle store with a 1ns commit interval does not spin: the interval is
// raised to MinCommitInterval (issue 9 item 12).
func TestCommitIntervalFloor(t *testing.T) {
	o := testOpts(t, 4096, codec.LZ4)
	o.CommitInterval = time.Nanosecond
	s := mustOpen(t, t.TempDir(), o)
	defer s.Close()
	time.Sleep(3 * MinCommitInterval)
	// A slow machine runs fewer groups, never more: 3 intervals give at
	// most 3 ticks (and one tick that was pending).
	if n := s.groups.Load(); n > 5 {
		t.Fatalf("%d commit groups in %v of idling with a 1ns interval", n, 3*MinCommitInterval)
	}
	if got := commitInterval(-1, 0); got >= 0 {
		t.Fatalf("a negative interval must still disable the timer, got %v", got)
	}
}

// mustOpenBacking opens a backing file read-only (a second fd, as fs keeps
// for Unlinked).
func mustOpenBacking(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Write-back failures are reported per handle (errseq): each handle that
// was open when a background commit failed reports it once, a cursor taken
// after it was reported does not, and one taken before anyone reported it
// does (issue 9 item 8: fs gives each FUSE handle its cursor).
func TestFaultErrorsPerHandle(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	a := createFile(t, s, "f")
	b := openFile(t, s, "f")
	c1 := a.NewErrCursor()
	mustWrite(t, a, compressible(2*bs, 1), 0)
	var on atomic.Bool
	on.Store(true)
	s.hooks = failPath("sync", filepath.Join(dir, "f"), syscall.EIO, &on)
	s.backgroundCommit()
	on.Store(false)
	unseen := b.NewErrCursor() // nobody reported the failure yet
	for name, report := range map[string]func() error{
		"handle a":             a.Flush,
		"handle b":             b.Flush,
		"cursor c1":            func() error { return a.FlushReport(c1) },
		"cursor after failure": func() error { return a.SyncReport(unseen) },
	} {
		if err := report(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: %v, want the background EIO", name, err)
		}
		if err := report(); err != nil {
			t.Errorf("%s, second report: %v, want nil (reported once)", name, err)
		}
	}
	late := a.NewErrCursor() // after it was reported
	if err := a.FlushReport(late); err != nil {
		t.Errorf("a cursor taken after the failure was reported: %v", err)
	}
	a.Close()
	b.Close()
}

// A background commit in which the only file's resync (the rewrite after a
// failed fdatasync) fails still records that failure for the file's
// handles: it used to return early, before the step that records it, when
// no other file was in the group.
func TestFaultResyncFailureAloneIsReported(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	f := createFile(t, s, "a")
	path := filepath.Join(dir, "a")
	var on atomic.Bool
	on.Store(true)
	s.hooks = failPath("sync", path, syscall.EIO, &on)
	mustWrite(t, f, compressible(bs, 1), 0)
	s.backgroundCommit() // fdatasync fails: the records must be rewritten (resync)
	if err := f.Flush(); err == nil {
		t.Fatal("the failed fdatasync was not reported")
	}
	s.hooks = failPath("write", path, syscall.EIO, &on)
	s.backgroundCommit() // the resync's rewrite fails; nothing else to commit
	if err := f.Flush(); err == nil {
		t.Error("the failed resync was not reported to the file's handle")
	}
	on.Store(false)
	if err := f.Close(); err != nil {
		t.Fatalf("close once the fault is gone: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
