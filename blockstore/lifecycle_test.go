package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

func TestHardlinkSharesEntry(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	a := createFile(t, s, "a")
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	b := openFile(t, s, "b")
	if a.e != b.e {
		t.Fatal("hardlinks got different entries")
	}
	want := compressible(10000, 3)
	mustWrite(t, a, want, 0)
	checkContent(t, b, want) // visible through the other name before any commit
	a.Close()
	b.Close()
	if st := s.Stats(); st.Files > 1 {
		t.Fatalf("files %d", st.Files)
	}
}

func TestUnlinkDropsEntriesAtLastClose(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	keep := createFile(t, s, "keep")
	mustWrite(t, keep, compressible(5000, 1), 0)
	f := createFile(t, s, "gone")
	mustWrite(t, f, compressible(20000, 2), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := keep.Sync(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	path := filepath.Join(dir, "gone")
	held, err := os.OpenFile(path, os.O_RDWR, 0) // the fs keeps an fd across the unlink
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlinked(held); err != nil {
		t.Fatal(err)
	}
	// Still open: readable and writable, entries still there.
	mustWrite(t, f, []byte("more"), 20000)
	if got := readAll(t, f); len(got) != 20004 {
		t.Fatalf("size %d", len(got))
	}
	if s.Stats().Files != before.Files {
		t.Fatal("entries dropped while a handle is open")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Files != before.Files-1 || st.LogicalBytes != 5000 {
		t.Fatalf("after last close: %+v (before %+v)", st, before)
	}
	keep.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck: %v %v", err, rep)
	}
	// Unlinked while not open: dropped at once.
	g := createFile(t, s, "g")
	mustWrite(t, g, []byte("x"), 0)
	g.Close()
	if err := s.commit(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	gp := filepath.Join(dir, "g")
	gf, _ := os.Open(gp)
	os.Remove(gp)
	if err := s.Unlinked(gf); err != nil {
		t.Fatal(err)
	}
	gf.Close()
	if st := s.Stats(); st.Files != 1 || st.LogicalBytes != 5000 {
		t.Fatalf("after unlink of a closed file: %+v", st)
	}
	// The stats in the index changed with the entries (same transaction).
	rep, err = s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck after unlink of a closed file: %v %v", err, rep)
	}
}

// A crash between unlink and the last close leaves orphan entries; fsck
// reports them as a cleanup and repair drops them.
func TestUnlinkCrashOrphan(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	f := createFile(t, s, "gone")
	mustWrite(t, f, compressible(9000, 2), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "gone"))
	s.abandon()
	s = mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 1 || rep.Cleanups[0].Kind != CleanupOrphanFile {
		t.Fatalf("fsck: %v %v", err, rep)
	}
	if _, err := s.Fsck(FsckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Fsck(FsckOptions{})
	if err != nil || len(rep.Cleanups) != 0 || s.Stats().Files != 0 || s.Stats().LogicalBytes != 0 {
		t.Fatalf("after repair: %v %v %+v", err, rep, s.Stats())
	}
}

func TestStatFile(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(12345, 1), 0)
	bf, _ := os.Open(filepath.Join(dir, "a"))
	defer bf.Close()
	if sz, _, err := s.StatFile(bf); err != nil || sz != 12345 {
		t.Fatalf("StatFile open: %d %v", sz, err)
	}
	f.Close()
	if err := s.commit(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	sz, du, err := s.StatFile(bf)
	if err != nil || sz != 12345 || du <= 0 || du > 4*4096 {
		t.Fatalf("StatFile closed: %d %d %v", sz, du, err)
	}
}

func TestDirtyBound(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(8 * bs)
	s := mustOpen(t, dir, o)
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxSeen int64
	for w := range 4 {
		f := createFile(t, s, fmt.Sprintf("f%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			// Partial writes never complete a block: they stay dirty until pressure.
			for i := range 200 {
				mustWrite(t, f, []byte("abc"), int64(i*bs+100))
				d := s.budget.usedBytes()
				mu.Lock()
				maxSeen = max(maxSeen, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if maxSeen > o.DirtyLimit {
		t.Fatalf("dirty bytes reached %d, limit %d", maxSeen, o.DirtyLimit)
	}
	for w := range 4 {
		f := openFile(t, s, fmt.Sprintf("f%d", w))
		got := readAll(t, f)
		for i := range 200 {
			if !bytes.Equal(got[i*bs+100:i*bs+103], []byte("abc")) {
				t.Fatalf("file %d block %d lost", w, i)
			}
		}
		f.Close()
	}
}

func TestInterruptedWait(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(4 * bs)
	s := mustOpen(t, dir, o)
	defer s.Close()
	f := createFile(t, s, "a")
	defer f.Close()
	// Fill the budget by hand so the next write has to wait.
	if err := s.budget.reserve(context.Background(), o.DirtyLimit, func() {}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.WriteAtContext(ctx, []byte("x"), 0); !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context: %v", err)
	}
	s.budget.release(o.DirtyLimit)
	mustWrite(t, f, compressible(3*bs, 1), 0)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAtContext(ctx, make([]byte, bs), 0); err != nil && !errors.Is(err, ErrInterrupted) {
		t.Fatalf("read with a cancelled context: %v", err)
	}
}

// Many goroutines on one file: run with -race.
func TestConcurrentReadersWriters(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(16 * bs)
	o.CacheBytes = int64(8 * bs)
	o.CommitInterval = 0 // default timer
	s := mustOpen(t, dir, o)
	defer s.Close()
	f := createFile(t, s, "a")
	defer f.Close()
	const region = 16 * 1024
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			// Each writer owns a region; its bytes must read back exactly.
			base := int64(w * region)
			want := make([]byte, region)
			for i := range 150 {
				off := rng.IntN(region - 600)
				p := compressible(1+rng.IntN(500), i)
				copy(want[off:], p)
				mustWrite(t, f, p, base+int64(off))
				if i%25 == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
					}
				}
				got := make([]byte, region)
				if _, err := f.ReadAt(got, base); err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(got[:off+len(p)], want[:off+len(p)]) {
					t.Errorf("writer %d: region mismatch", w)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			s.Stats()
			if err := s.commit(context.Background(), nil); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
}

func TestClosedErrors(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	f := createFile(t, s, "a")
	mustWrite(t, f, []byte("x"), 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after store close: %v", err)
	}
	if _, err := f.WriteAt([]byte("y"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after store close: %v", err)
	}
	f.Close()
	s = mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	g := openFile(t, s, "a")
	checkContent(t, g, []byte("x"))
	g.Close()
}

// A backing file created but never initialized (crash between create and
// InitFile) reads as empty, is initialized on open, and is an fsck cleanup.
func TestUninitializedFile(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 1 || rep.Cleanups[0].Kind != CleanupUninitialized {
		t.Fatalf("fsck: %v %v", err, rep)
	}
	bf, _ := os.Open(filepath.Join(dir, "empty"))
	if sz, _, err := s.StatFile(bf); err != nil || sz != 0 {
		t.Fatalf("StatFile: %d %v", sz, err)
	}
	bf.Close()
	f := openFile(t, s, "empty")
	if f.Size() != 0 {
		t.Fatal("size")
	}
	mustWrite(t, f, []byte("now"), 0)
	checkContent(t, f, []byte("now"))
	f.Close()
	if err := s.InitFile(mustOpenRW(t, filepath.Join(dir, "empty"))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("InitFile of a non-empty file: %v", err)
	}
}

func mustOpenRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Many small files created and closed (an untar): no transaction per file;
// the data of every file is committed by a handful of group commits.
func TestGroupCommitManySmallFiles(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 128<<10, codec.LZ4))
	const n = 600
	for i := range n {
		f := createFile(t, s, fmt.Sprintf("f%03d", i))
		mustWrite(t, f, compressible(100+i, i), 0)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The >256-closed-files trigger commits in the background; wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Commits == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Grouped means a handful of commits, not one per file: on a busy
	// machine a trigger can fire while the previous group still runs, so
	// the bound leaves room for that (one commit per file would be 600).
	if c := s.Stats().Commits; c > n/50 {
		t.Fatalf("%d commits for %d files: not grouped", c, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, testOpts(t, 128<<10, codec.LZ4))
	defer s.Close()
	st := s.Stats()
	if st.Files != n {
		t.Fatalf("%d files in the index, want %d", st.Files, n)
	}
	for _, i := range []int{0, 299, n - 1} {
		f := openFile(t, s, fmt.Sprintf("f%03d", i))
		checkContent(t, f, compressible(100+i, i))
		f.Close()
	}
}

// Unlinked racing with the last Close of a file with nothing to commit: the
// Close releases the entry (closing it) after Unlinked found it in the
// open-file table. The index entries must still be dropped, without error.
func TestUnlinkRacesLastClose(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "gone")
	mustWrite(t, f, compressible(9000, 2), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gone")
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	os.Remove(path)
	e := f.e
	e.mu.Lock() // Unlinked finds e in the table, then waits for e.mu
	done := make(chan error, 1)
	go func() { done <- s.Unlinked(held) }()
	time.Sleep(100 * time.Millisecond)
	// Meanwhile the last Close: refs to 0, nothing to commit, released.
	f.closed.Store(true)
	s.mu.Lock()
	e.refs--
	s.mu.Unlock()
	s.releaseIdle([]*inode{e})
	e.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("Unlinked: %v", err)
	}
	if st := s.Stats(); st.Files != 0 || st.LogicalBytes != 0 {
		t.Fatalf("entries not dropped: %+v", st)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}

// Concurrent Store.Close calls: one closes, the others return nil (no
// double close of the flusher's stop channel).
func TestConcurrentStoreClose(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOpts(t, 4096, codec.LZ4))
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(3*4096, 1), 0)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- s.Close() }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
}

// PunchHole over a file with many blocks is linear in the blocks with state,
// not quadratic (it runs under the file's exclusive lock).
func TestPunchHoleManyBlocks(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.abandon() // the entries below are not real records
	f := createFile(t, s, "a")
	const n = 40000
	e := f.e
	e.mu.Lock()
	for b := int64(0); b < n; b++ {
		e.committed[b] = entry{Loc: locSlot0, Algo: codec.LZ4, RawLen: 10, StoredLen: 10, Gen: uint64(b)}
	}
	e.size, e.committedSize = n*4096, n*4096
	e.mu.Unlock()
	start := time.Now()
	if err := f.PunchHole(0, n*4096); err != nil {
		t.Fatal(err)
	}
	// 30 s: far above linear (ms) for a busy machine, still far below
	// quadratic (n² map operations, minutes).
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("PunchHole of %d blocks took %v", n, d)
	}
	e.mu.Lock()
	holes := 0
	for b := int64(0); b < n; b++ {
		if p, ok := e.pending[b]; ok && p.Loc == locNone {
			holes++
		}
	}
	e.mu.Unlock()
	if holes != n {
		t.Fatalf("%d blocks made holes, want %d", holes, n)
	}
}

// A copy of a backing file carries the same file ID. While the original is
// open, opening the copy must not hand out the original's entry (reads and
// writes through the copy would go to the original's backing file).
func TestDuplicateIDNotAliased(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	a := createFile(t, s, "a")
	v := compressible(3*4096, 1)
	mustWrite(t, a, v, 0)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	bf, err := os.OpenFile(filepath.Join(dir, "b"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.OpenFile(bf); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			mustWrite(t, b, []byte("through the copy"), 0)
			b.Close()
		}
		t.Fatalf("OpenFile of a copy while the original is open: %v, want ErrCorrupt", err)
	}
	checkContent(t, a, v)
	// Removing the copy leaves the original's entries alone.
	held, err := os.Open(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	os.Remove(filepath.Join(dir, "b"))
	if err := s.Unlinked(held); err != nil {
		t.Fatal(err)
	}
	a.e.mu.RLock()
	unlinked := a.e.unlinked
	a.e.mu.RUnlock()
	if unlinked {
		t.Fatal("unlinking the copy marked the original unlinked")
	}
	// A hardlink is the same file: shared.
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "a2")); err != nil {
		t.Fatal(err)
	}
	a2 := openFile(t, s, "a2")
	if a2.e != a.e {
		t.Fatal("hardlink not shared")
	}
	a2.Close()
	a.Close()
}

// TestUnlinkedConcurrentWithClose runs Unlinked and the last File.Close
// at the same time, many times: under -race this caught Close reading the
// unlinked flag outside the inode lock; every round must end with the
// entries dropped and fsck clean.
func TestUnlinkedConcurrentWithClose(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("f%d", i)
		f := createFile(t, s, name)
		mustWrite(t, f, compressible(9000, i), 0)
		path := filepath.Join(dir, name)
		held, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); f.Close() }()
		go func() {
			defer wg.Done()
			if err := s.Unlinked(held); err != nil {
				t.Errorf("Unlinked: %v", err)
			}
		}()
		wg.Wait()
		held.Close()
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Files != 0 || st.LogicalBytes != 0 {
		t.Fatalf("entries not dropped: %+v", st)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}
