package blockstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// countingCompressor counts the decompression jobs it is given and delays
// each Run a little, so that concurrent readers overlap.
type countingCompressor struct {
	inner  Compressor
	delay  time.Duration
	decomp atomic.Int64
}

func (c *countingCompressor) Run(ctx context.Context, jobs []*Job) error {
	for _, j := range jobs {
		if j.Decompress {
			c.decomp.Add(1)
		}
	}
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return c.inner.Run(ctx, jobs)
}

// flightStore writes a compressible file of nblocks blocks and reopens the
// store (cold decoded-block cache) with a counting compressor.
func flightStore(t *testing.T, bs, nblocks int, readahead int64, delay time.Duration) (*Store, *File, []byte, *countingCompressor) {
	t.Helper()
	dir := t.TempDir()
	o := testOpts(t, bs, codec.Zstd)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(nblocks*bs, 3)
	mustWrite(t, f, want, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cc := &countingCompressor{inner: NewCPUCompressor(4), delay: delay}
	o.Compressor = cc
	o.ReadaheadBytes = readahead
	o.CacheBytes = int64(4*nblocks*bs) + 1<<20
	s = mustOpen(t, dir, o)
	t.Cleanup(func() { s.Close() })
	f = openFile(t, s, "a")
	t.Cleanup(func() { f.Close() })
	return s, f, want, cc
}

// N readers of the same blocks at the same time: each block is read,
// verified and decompressed once; the others wait for that fetch.
func TestReadConcurrentSameBlocksFetchOnce(t *testing.T) {
	const bs, nblocks, readers = 4096, 16, 8
	_, f, want, cc := flightStore(t, bs, nblocks, -1, 5*time.Millisecond)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got := make([]byte, len(want))
			if _, err := f.ReadAt(got, 0); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, want) {
				errs <- errors.New("wrong data")
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cc.decomp.Load(); n != nblocks {
		t.Fatalf("%d readers of %d blocks: %d decompress jobs, want %d", readers, nblocks, n, nblocks)
	}
}

// A sequential read by several concurrent readers in out-of-order chunks
// that straddle blocks (like the kernel's async FUSE reads), with
// readahead: about one decompression per block.
func TestReadConcurrentSequentialFetchOnce(t *testing.T) {
	const bs, nblocks, readers = 8192, 96, 6
	chunk := 3 * bs / 2
	s, f, want, cc := flightStore(t, bs, nblocks, 8*bs, 2*time.Millisecond)
	var offs []int64
	for off := 0; off < len(want); off += chunk {
		offs = append(offs, int64(off))
	}
	// Swap neighbours so that requests arrive out of order.
	for i := 0; i+1 < len(offs); i += 3 {
		offs[i], offs[i+1] = offs[i+1], offs[i]
	}
	ch := make(chan int64)
	got := make([]byte, len(want))
	var wg sync.WaitGroup
	var failed atomic.Value
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := range ch {
				end := min(off+int64(chunk), int64(len(want)))
				if _, err := f.ReadAt(got[off:end], off); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for _, off := range offs {
		ch <- off
	}
	close(ch)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("wrong data")
	}
	const slack = 4
	if n := cc.decomp.Load(); n > nblocks+slack {
		t.Fatalf("sequential read of %d blocks by %d concurrent readers: %d decompress jobs, want <= %d", nblocks, readers, n, nblocks+slack)
	}
	t.Logf("%d blocks: %d decompress jobs, cache hits %d misses %d", nblocks, cc.decomp.Load(), s.Stats().CacheHits, s.Stats().CacheMisses)
}

// BenchmarkStoreReadConcurrent reads a 32 MiB file sequentially in 128 KiB
// chunks handed out in order to 8 concurrent readers (like the kernel's
// async FUSE reads), cold decoded-block cache each time; it reports the
// decompression jobs per block (read amplification).
func BenchmarkStoreReadConcurrent(b *testing.B) {
	const size, readers = 32 << 20, 8
	dir := b.TempDir()
	o := testOpts(b, benchBS, codec.Zstd)
	s := mustOpen(b, dir, o)
	f := createFile(b, s, "f")
	mustWrite(b, f, compressible(size, 1), 0)
	f.Close()
	s.Close()
	cc := &countingCompressor{inner: NewCPUCompressor(4)}
	o.Compressor = cc
	o.CacheBytes = 64 << 20
	s = mustOpen(b, dir, o)
	defer s.Close()
	f = openFile(b, s, "f")
	defer f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s.cache = newBlockCache(o.CacheBytes)
		b.StartTimer()
		ch := make(chan int64)
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 128<<10)
				for off := range ch {
					if _, err := f.ReadAt(buf, off); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for off := int64(0); off < size; off += 128 << 10 {
			ch <- off
		}
		close(ch)
		wg.Wait()
	}
	b.ReportMetric(float64(cc.decomp.Load())/float64(b.N)/float64(size/benchBS), "decomp/block")
}

// gateCompressor holds every Run until gate is closed or its context ends.
type gateCompressor struct {
	inner Compressor
	gate  chan struct{}
}

func (c gateCompressor) Run(ctx context.Context, jobs []*Job) error {
	select {
	case <-ctx.Done():
		for _, j := range jobs {
			j.Err = ctx.Err()
		}
		return ctx.Err()
	case <-c.gate:
	}
	return c.inner.Run(ctx, jobs)
}

// waitFlight waits until block b of f is being fetched.
func waitFlight(t *testing.T, f *File, b int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // hang guard
	for time.Now().Before(deadline) {
		f.e.flightMu.Lock()
		n := 0
		for k := range f.e.flights {
			if k.block == b {
				n++
			}
		}
		f.e.flightMu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
	t.Fatalf("block %d never fetched", b)
}

// flightStoreWith is flightStore without readahead, with comp around the
// counting compressor.
func flightStoreWith(t *testing.T, wrap func(Compressor) Compressor) (*File, []byte, *countingCompressor) {
	t.Helper()
	const bs = 4096
	dir := t.TempDir()
	o := testOpts(t, bs, codec.Zstd)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(4*bs, 5)
	mustWrite(t, f, want, 0)
	f.Close()
	s.Close()
	cc := &countingCompressor{inner: wrap(NewCPUCompressor(2))}
	o.Compressor = cc
	o.ReadaheadBytes = -1
	s = mustOpen(t, dir, o)
	t.Cleanup(func() { s.Close() })
	f = openFile(t, s, "a")
	t.Cleanup(func() { f.Close() })
	return f, want, cc
}

// A reader waiting for another reader's fetch honours its own context; the
// fetch goes on for its owner.
func TestReadWaiterInterrupted(t *testing.T) {
	gate := make(chan struct{})
	f, want, cc := flightStoreWith(t, func(c Compressor) Compressor { return gateCompressor{c, gate} })
	bs := 4096
	done := make(chan error, 1)
	got := make([]byte, bs)
	go func() {
		_, err := f.ReadAt(got, 0)
		done <- err
	}()
	waitFlight(t, f, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err := f.ReadAtContext(ctx, make([]byte, bs), 0)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting read: %v, want ErrInterrupted", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:bs]) {
		t.Fatal("wrong data")
	}
	if n := cc.decomp.Load(); n != 1 {
		t.Fatalf("%d decompress jobs, want 1", n)
	}
}

// When the reader fetching a block is interrupted, a reader waiting for
// that block fetches it itself: another reader's context never fails it.
func TestReadFetcherInterrupted(t *testing.T) {
	gate := make(chan struct{})
	f, want, _ := flightStoreWith(t, func(c Compressor) Compressor { return gateCompressor{c, gate} })
	bs := 4096
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.ReadAtContext(ctx, make([]byte, bs), int64(bs))
		done <- err
	}()
	waitFlight(t, f, 1)
	res := make(chan error, 1)
	got := make([]byte, 2*bs)
	go func() {
		_, err := f.ReadAt(got, 0) // blocks 0 (its own) and 1 (waits)
		res <- err
	}()
	waitFlight(t, f, 0)
	cancel()
	if err := <-done; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("cancelled read: %v, want ErrInterrupted", err)
	}
	close(gate)
	if err := <-res; err != nil {
		t.Fatalf("waiting read: %v", err)
	}
	if !bytes.Equal(got, want[:2*bs]) {
		t.Fatal("wrong data")
	}
}

// A corrupt block fetched once fails every reader waiting for it, and is
// not cached: the next read fetches (and fails) again.
func TestReadWaiterSeesCorruption(t *testing.T) {
	gate := make(chan struct{})
	f, _, cc := flightStoreWith(t, func(c Compressor) Compressor {
		return gateCompressor{lyingCompressor{c, "wrong-bytes"}, gate}
	})
	bs := 4096
	const readers = 4
	errs := make(chan error, readers)
	go func() {
		_, err := f.ReadAt(make([]byte, bs), 2*int64(bs))
		errs <- err
	}()
	waitFlight(t, f, 2)
	for range readers - 1 {
		go func() {
			_, err := f.ReadAt(make([]byte, bs/2), 2*int64(bs)+100)
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them join the fetch
	close(gate)
	for range readers {
		if err := <-errs; !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "block 2") {
			t.Fatalf("read: %v, want ErrCorrupt for block 2", err)
		}
	}
	before := cc.decomp.Load()
	if _, err := f.ReadAt(make([]byte, bs), 2*int64(bs)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read again: %v, want ErrCorrupt", err)
	}
	if cc.decomp.Load() == before {
		t.Fatal("a corrupt block was served without a fetch (cached?)")
	}
}
