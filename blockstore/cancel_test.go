package blockstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Modes of cancelCompressor.
const (
	passAll         = iota // run every batch on the CPU
	blockCompress          // compress batches wait for their context to end
	blockDecompress        // decompress batches wait for their context to end
	failCompress           // compress batches fail at once
)

// cancelCompressor is a Compressor that, depending on its mode, holds a
// batch until the caller's context ends (an operation blocked in the
// compressor) or refuses it (a flusher that cannot free dirty-cache space).
// entered receives one value each time a batch is held or refused.
type cancelCompressor struct {
	inner   Compressor
	mode    chan int // holds the current mode (a one-slot mutex-free cell)
	entered chan struct{}
	stop    chan struct{} // closed on cleanup: nothing stays held
}

func newCancelCompressor(t *testing.T) *cancelCompressor {
	c := &cancelCompressor{inner: NewCPUCompressor(2), mode: make(chan int, 1), entered: make(chan struct{}, 64), stop: make(chan struct{})}
	c.mode <- passAll
	t.Cleanup(func() { close(c.stop) })
	return c
}

func (c *cancelCompressor) set(m int) { <-c.mode; c.mode <- m }

func (c *cancelCompressor) get() int { m := <-c.mode; c.mode <- m; return m }

func (c *cancelCompressor) Run(ctx context.Context, jobs []*Job) error {
	if len(jobs) == 0 {
		return c.inner.Run(ctx, jobs)
	}
	m, dec := c.get(), jobs[0].Decompress
	switch {
	case m == blockCompress && !dec, m == blockDecompress && dec:
		c.signal()
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		err := cmpErr(ctx.Err(), context.Canceled)
		for _, j := range jobs {
			j.Out, j.Err = nil, err
		}
		return err
	case m == failCompress && !dec:
		c.signal()
		err := errors.New("test: compressor refuses")
		for _, j := range jobs {
			j.Out, j.Err = nil, err
		}
		return err
	}
	return c.inner.Run(ctx, jobs)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (c *cancelCompressor) signal() {
	select {
	case c.entered <- struct{}{}:
	default:
	}
}

// waitEntered waits until the compressor held or refused a batch; the
// minute is a hang guard, not a timing assumption.
func (c *cancelCompressor) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-c.entered:
	case <-time.After(time.Minute):
		t.Fatal("the operation never reached the compressor")
	}
}

// cancelStore opens a zstd store in a temporary directory whose compressor
// is a cancelCompressor, with the smallest dirty-cache limit (4 blocks).
func cancelStore(t *testing.T, dir string) (*Store, *cancelCompressor) {
	c := newCancelCompressor(t)
	o := testOpts(t, 4096, codec.Zstd)
	o.Compressor = c
	o.DirtyLimit = 1 // raised to the minimum, 4 blocks
	return mustOpen(t, dir, o), c
}

// runCancelled runs op in a goroutine with a context, waits until
// blocked() says op is blocked, cancels the context and returns op's error.
// op must not return before the cancel: it would return nil (or another
// error), which the caller's check of context.Canceled then reports.
func runCancelled(t *testing.T, op func(ctx context.Context) error, blocked func()) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	blocked()
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the operation did not return after its context was cancelled")
		return nil
	}
}

func wantCanceled(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrInterrupted) {
		t.Fatalf("%s: got %v, want ErrInterrupted and context.Canceled", op, err)
	}
}

// checkStore checks that f holds want, commits it, runs fsck (verify),
// then reopens the store and checks the file again.
func checkStore(t *testing.T, s *Store, f *File, c *cancelCompressor, dir string, want []byte) {
	t.Helper()
	c.set(passAll)
	checkContent(t, f, want)
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync after the cancel: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("fsck after the cancel: %v", rep)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := cancelStore(t, dir)
	defer s2.Close()
	f2 := openFile(t, s2, "a")
	defer f2.Close()
	checkContent(t, f2, want)
}

// TestCancelFlushAndSync: a flush or fsync interrupted while its blocks
// are being compressed returns ErrInterrupted/context.Canceled, and the
// blocks stay dirty: the next flush writes them, nothing is lost.
func TestCancelFlushAndSync(t *testing.T) {
	for _, name := range []string{"flush", "sync"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, c := cancelStore(t, dir)
			f := createFile(t, s, "a")
			want := compressible(3*4096+100, 1)
			mustWrite(t, f, want, 0)
			c.set(blockCompress)
			err := runCancelled(t, func(ctx context.Context) error {
				if name == "flush" {
					return f.FlushReportContext(ctx, f.NewErrCursor())
				}
				return f.SyncReportContext(ctx, f.NewErrCursor())
			}, func() { c.waitEntered(t) })
			wantCanceled(t, name, err)
			if f.e.dirtyBytes() == 0 {
				t.Fatal("the interrupted write-out dropped the dirty blocks")
			}
			checkStore(t, s, f, c, dir, want)
		})
	}
}

// committedFile writes want as file "a", commits it and reopens the store
// (a cold decoded-block cache), so that the next partial-block change must
// read and decompress the block.
func committedFile(t *testing.T, dir string, want []byte) (*Store, *File, *cancelCompressor) {
	t.Helper()
	s, _ := cancelStore(t, dir)
	f := createFile(t, s, "a")
	mustWrite(t, f, want, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, c := cancelStore(t, dir)
	return s, openFile(t, s, "a"), c
}

// TestCancelPartialBlockRead: a truncate or punch that must decompress a
// block to zero part of it, interrupted there, changes nothing (size,
// data); afterwards the same operation succeeds.
func TestCancelPartialBlockRead(t *testing.T) {
	const bs = 4096
	for _, tc := range []struct {
		name string
		op   func(ctx context.Context, f *File) error
		// after is want after the operation succeeded.
		after func(want []byte) []byte
	}{
		{"truncate", func(ctx context.Context, f *File) error { return f.TruncateContext(ctx, bs+100) },
			func(w []byte) []byte { return w[:bs+100] }},
		{"punch", func(ctx context.Context, f *File) error { return f.PunchHoleContext(ctx, 100, 2*bs) },
			func(w []byte) []byte {
				w = bytes.Clone(w)
				clear(w[100 : 100+2*bs])
				return w
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := compressible(4*bs, 2)
			s, f, c := committedFile(t, dir, want)
			// Block 0 dirty: a punch changes it without reading, then
			// must read block 2, which the interrupt stops.
			copy(want, "0123456789")
			mustWrite(t, f, want[:10], 0)
			c.set(blockDecompress)
			err := runCancelled(t, func(ctx context.Context) error { return tc.op(ctx, f) }, func() { c.waitEntered(t) })
			wantCanceled(t, tc.name, err)
			c.set(passAll)
			checkContent(t, f, want) // nothing half-applied
			if err := tc.op(context.Background(), f); err != nil {
				t.Fatal(err)
			}
			checkStore(t, s, f, c, dir, tc.after(want))
		})
	}
}

// TestCancelBudgetWait: truncate and punch reserve dirty-cache space
// first; with the cache full and the flusher unable to free it, an
// interrupt ends the wait with ErrInterrupted/context.Canceled and the
// dirty data stays.
func TestCancelBudgetWait(t *testing.T) {
	const bs = 4096
	for _, tc := range []struct {
		name string
		op   func(ctx context.Context, f *File) error
	}{
		{"truncate", func(ctx context.Context, f *File) error { return f.TruncateContext(ctx, bs+100) }},
		{"punch", func(ctx context.Context, f *File) error { return f.PunchHoleContext(ctx, 100, bs) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, c := cancelStore(t, dir)
			f := createFile(t, s, "a")
			c.set(failCompress) // the flusher cannot write anything out
			want := compressible(4*bs, 3)
			mustWrite(t, f, want, 0) // the whole dirty-cache limit
			err := runCancelled(t, func(ctx context.Context) error { return tc.op(ctx, f) }, func() { c.waitEntered(t) })
			wantCanceled(t, tc.name, err)
			checkStore(t, s, f, c, dir, want)
		})
	}
}

// TestCancelAllocate: allocate waits only for the content lock; an
// interrupt that arrived while it waited (here: behind a flush blocked in
// the compressor) is seen once it has the lock, and the size stays.
func TestCancelAllocate(t *testing.T) {
	dir := t.TempDir()
	s, c := cancelStore(t, dir)
	f := createFile(t, s, "a")
	want := compressible(5000, 4)
	mustWrite(t, f, want, 0)
	c.set(blockCompress)
	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- f.FlushReportContext(flushCtx, f.NewErrCursor()) }()
	c.waitEntered(t) // the flush holds the content lock
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	allocated := make(chan error, 1)
	go func() { allocated <- f.AllocateContext(ctx, 0, 1<<20, false) }()
	stopFlush()
	wantCanceled(t, "flush", <-flushed)
	wantCanceled(t, "allocate", <-allocated)
	checkStore(t, s, f, c, dir, want)
}

// TestCancelSyncQueued: a Sync waiting for the commit lock, held by
// another file's Sync blocked in the compressor, returns on interrupt
// without waiting for that commit, and commits nothing of its file.
func TestCancelSyncQueued(t *testing.T) {
	dir := t.TempDir()
	s, c := cancelStore(t, dir)
	a, b := createFile(t, s, "a"), createFile(t, s, "b")
	wantA, wantB := compressible(5000, 5), compressible(7000, 6)
	mustWrite(t, a, wantA, 0)
	mustWrite(t, b, wantB, 0)
	c.set(blockCompress)
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	syncedA := make(chan error, 1)
	go func() { syncedA <- a.SyncReportContext(ctxA, a.NewErrCursor()) }()
	c.waitEntered(t) // a's Sync holds the commit lock
	err := runCancelled(t, func(ctx context.Context) error { return b.SyncReportContext(ctx, b.NewErrCursor()) }, func() {})
	wantCanceled(t, "queued sync", err)
	if b.e.dirtyBytes() == 0 {
		t.Fatal("the interrupted Sync wrote b's blocks out")
	}
	stopA()
	wantCanceled(t, "sync", <-syncedA)
	c.set(passAll)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, s, a, c, dir, wantA)
	s2, _ := cancelStore(t, dir)
	defer s2.Close()
	f := openFile(t, s2, "b")
	defer f.Close()
	checkContent(t, f, wantB)
}
