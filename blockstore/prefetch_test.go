package blockstore

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// prefetchGate counts decompression jobs and, once armed, holds every
// Run with decompression jobs until the gate opens or its context ends.
type prefetchGate struct {
	inner   Compressor
	armed   atomic.Bool
	gate    chan struct{} // closed: armed Runs proceed
	open    sync.Once
	entered chan struct{} // one token per armed Run that started waiting
	held    atomic.Int64  // armed Runs waiting right now
	decomp  atomic.Int64
}

func newPrefetchGate() *prefetchGate {
	return &prefetchGate{inner: NewCPUCompressor(2), gate: make(chan struct{}), entered: make(chan struct{}, 64)}
}

func (c *prefetchGate) release() { c.open.Do(func() { close(c.gate) }) }

func (c *prefetchGate) Run(ctx context.Context, jobs []*Job) error {
	dec := false
	for _, j := range jobs {
		if j.Decompress {
			dec = true
			c.decomp.Add(1)
		}
	}
	if dec && c.armed.Load() {
		c.held.Add(1)
		c.entered <- struct{}{}
		select {
		case <-c.gate:
			c.held.Add(-1)
		case <-ctx.Done():
			c.held.Add(-1)
			for _, j := range jobs {
				j.Err = ctx.Err()
			}
			return ctx.Err()
		}
	}
	return c.inner.Run(ctx, jobs)
}

// prefetchStore writes nblocks compressible blocks and reopens the store
// (cold cache) with a gate compressor and a readahead of ra blocks.
func prefetchStore(t *testing.T, bs, nblocks, ra int) (*Store, *File, []byte, *prefetchGate) {
	t.Helper()
	dir := t.TempDir()
	o := testOpts(t, bs, codec.LZ4)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(nblocks*bs, 5)
	mustWrite(t, f, want, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gc := newPrefetchGate()
	o.Compressor = gc
	o.ReadaheadBytes = int64(ra * bs)
	o.CacheBytes = int64(4*nblocks*bs) + 1<<20
	s = mustOpen(t, dir, o)
	f = openFile(t, s, "a")
	t.Cleanup(func() { f.Close(); s.Close() })
	t.Cleanup(gc.release) // first (cleanups run last-in first-out): never leave a Run hanging
	return s, f, want, gc
}

// readWithin reads len(p) bytes at off, failing the test if the read does
// not return within d.
func readWithin(t *testing.T, f *File, p []byte, off int64, d time.Duration) {
	t.Helper()
	// A read that waits for the gated readahead waits forever: a long bound
	// loses nothing and a busy machine cannot trip it.
	d = max(d, time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(p, off)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	case <-time.After(d):
		t.Fatalf("read at %d did not return within %v: it waits for the readahead", off, d)
	}
}

// A sequential read returns its blocks while the readahead it started is
// still being fetched in the background; readers of the prefetched blocks
// wait for that fetch, and every block is decoded once.
func TestReadaheadAsync(t *testing.T) {
	const bs, nblocks, ra = 4096, 32, 4
	_, f, want, gc := prefetchStore(t, bs, nblocks, ra)
	buf := make([]byte, bs)
	readWithin(t, f, buf, 0, 5*time.Second) // first window (0..4) synchronously
	if !bytes.Equal(buf, want[:bs]) {
		t.Fatal("block 0: wrong data")
	}
	gc.armed.Store(true)
	// Block 1 is cached; its readahead (2..5) needs block 5, which the
	// prefetch fetches and the gate holds. The read must not wait for it.
	readWithin(t, f, buf, bs, 5*time.Second)
	if !bytes.Equal(buf, want[bs:2*bs]) {
		t.Fatal("block 1: wrong data")
	}
	select {
	case <-gc.entered:
	case <-time.After(time.Minute):
		t.Fatal("no prefetch started after a sequential read")
	}
	if gc.held.Load() == 0 {
		t.Fatal("the prefetch finished before the gate opened")
	}
	gc.armed.Store(false)
	gc.release()
	for b := 2; b < nblocks; b++ {
		readWithin(t, f, buf, int64(b*bs), 5*time.Second)
		if !bytes.Equal(buf, want[b*bs:(b+1)*bs]) {
			t.Fatalf("block %d: wrong data", b)
		}
	}
	if n := gc.decomp.Load(); n != nblocks {
		t.Fatalf("%d decompress jobs for %d blocks, want one per block", n, nblocks)
	}
}

// Random reads start no prefetch.
func TestReadaheadAsyncRandomNone(t *testing.T) {
	const bs, nblocks, ra = 4096, 64, 4
	_, f, _, gc := prefetchStore(t, bs, nblocks, ra)
	buf := make([]byte, bs)
	for _, b := range []int{40, 10, 55, 25, 3} {
		readWithin(t, f, buf, int64(b*bs), 5*time.Second)
	}
	if n := gc.decomp.Load(); n != 5 {
		t.Fatalf("%d decompress jobs for 5 random reads, want 5 (no readahead)", n)
	}
}

// Store.Close with a prefetch in flight cancels it, waits for it, returns,
// and leaves no goroutine behind.
func TestCloseWithPrefetchInFlight(t *testing.T) {
	const bs, nblocks, ra = 4096, 32, 4
	before := runtime.NumGoroutine()
	s, f, _, gc := prefetchStore(t, bs, nblocks, ra)
	buf := make([]byte, bs)
	readWithin(t, f, buf, 0, 5*time.Second)
	gc.armed.Store(true)
	readWithin(t, f, buf, bs, 5*time.Second)
	select {
	case <-gc.entered:
	case <-time.After(time.Minute):
		t.Fatal("no prefetch started after a sequential read")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Store.Close did not return with a prefetch in flight")
	}
	if n := gc.held.Load(); n != 0 {
		t.Fatalf("%d Runs still held after Close", n)
	}
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		b := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, b[:runtime.Stack(b, true)])
	}
}

// Truncating and writing the file while a prefetch holds blocks in flight
// wait for it; the data read afterwards is the new data (the flights of
// the old versions are gone).
func TestPrefetchThenWrite(t *testing.T) {
	const bs, nblocks, ra = 4096, 32, 4
	s, f, want, gc := prefetchStore(t, bs, nblocks, ra)
	buf := make([]byte, bs)
	readWithin(t, f, buf, 0, 5*time.Second)
	gc.armed.Store(true)
	readWithin(t, f, buf, bs, 5*time.Second)
	<-gc.entered
	gc.armed.Store(false)
	wrote := make(chan struct{})
	nb := bytes.Repeat([]byte{0xAB}, bs)
	go func() {
		defer close(wrote)
		if _, err := f.WriteAt(nb, 5*bs); err != nil {
			t.Error(err)
		}
		if err := f.Truncate(int64(20 * bs)); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	gc.release()
	<-wrote
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	copy(want[5*bs:], nb)
	want = want[:20*bs]
	got := make([]byte, len(want))
	if n, err := f.ReadAt(got, 0); n != len(want) || (err != nil && n != len(want)) {
		t.Fatalf("read %d, %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data after write/truncate during prefetch differs")
	}
	f.e.mu.Lock()
	n := len(f.e.flights)
	f.e.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d flights left with mu held exclusively", n)
	}
}
