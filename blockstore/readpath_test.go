package blockstore

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

func TestReadahead(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	o.ReadaheadBytes = 8 * int64(bs)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(32*bs, 1)
	mustWrite(t, f, want, 0)
	f.Close()
	s.Close()
	s = mustOpen(t, dir, o) // cold cache
	defer s.Close()
	f = openFile(t, s, "a")
	defer f.Close()
	buf := make([]byte, bs)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if got := s.cache.size(); got < int64(9*bs)/2 {
		t.Fatalf("after a sequential read of block 0 the cache holds %d bytes: no readahead", got)
	}
	before := s.Stats()
	for b := 1; b <= 8; b++ {
		if _, err := f.ReadAt(buf, int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	after := s.Stats()
	if after.CacheHits-before.CacheHits < 8 {
		t.Fatalf("blocks 1..8: %d cache hits, want 8 (readahead)", after.CacheHits-before.CacheHits)
	}
	// A random read does not trigger readahead.
	s.cache = newBlockCache(1 << 20)
	if _, err := f.ReadAt(buf, int64(20*bs)); err != nil {
		t.Fatal(err)
	}
	if s.cache.has(cacheKey{f.e.id, 21, f.e.committed[21].Gen}) {
		t.Fatal("random read prefetched the next block")
	}
}

// slowCompressor delays every Run until its context ends or a timeout.
type slowCompressor struct{ inner Compressor }

func (c slowCompressor) Run(ctx context.Context, jobs []*Job) error {
	select {
	case <-ctx.Done():
		for _, j := range jobs {
			j.Err = ctx.Err()
		}
		return ctx.Err()
	case <-time.After(50 * time.Millisecond):
	}
	return c.inner.Run(ctx, jobs)
}

func TestReadInterrupted(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.Zstd)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(4*bs, 1), 0)
	f.Close()
	s.Close()
	o.Compressor = slowCompressor{NewCPUCompressor(2)}
	s = mustOpen(t, dir, o)
	defer s.Close()
	f = openFile(t, s, "a")
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err := f.ReadAtContext(ctx, make([]byte, bs), 0)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v, want ErrInterrupted", err)
	}
	// Without a deadline it works.
	if _, err := f.ReadAt(make([]byte, bs), 0); err != nil {
		t.Fatal(err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	o.CommitInterval = time.Millisecond
	o.commitFloor = time.Millisecond
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(100000, 1), 0)
	time.Sleep(5 * time.Millisecond)
	readAll(t, f)
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// The commit interval makes writes durable without Sync.
func TestCommitInterval(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	o.CommitInterval = 10 * time.Millisecond
	o.commitFloor = time.Millisecond
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(10000, 3)
	mustWrite(t, f, want, 0)
	deadline := time.Now().Add(time.Minute)
	for s.Stats().LogicalBytes != int64(len(want)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.abandon()
	s = mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	f = openFile(t, s, "a")
	checkContent(t, f, want)
	f.Close()
}

// lyingCompressor wraps a Compressor and damages decompression results.
type lyingCompressor struct {
	inner Compressor
	mode  string // "wrong-bytes" or "engine-error"
}

func (c lyingCompressor) Run(ctx context.Context, jobs []*Job) error {
	err := c.inner.Run(ctx, jobs)
	for _, j := range jobs {
		if !j.Decompress || j.Err != nil {
			continue
		}
		switch c.mode {
		case "wrong-bytes":
			j.Out[len(j.Out)/2] ^= 1
		case "engine-error":
			j.Out, j.Err = nil, errors.New("engine down")
		}
	}
	return err
}

// Correctness never depends on the engine: wrong bytes from a Compressor
// are caught by the data checksum; an engine error is an I/O error, not
// corruption.
func TestEngineCannotCorrupt(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.Deflate)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(3*4096, 1), 0)
	f.Close()
	s.Close()
	for _, mode := range []string{"wrong-bytes", "engine-error"} {
		o.Compressor = lyingCompressor{NewCPUCompressor(1), mode}
		s := mustOpen(t, dir, o)
		f := openFile(t, s, "a")
		_, err := f.ReadAt(make([]byte, 4096), 4096)
		if err == nil || !strings.Contains(err.Error(), "block 1") {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := errors.Is(err, ErrCorrupt); got != (mode == "wrong-bytes") {
			t.Fatalf("%s: ErrCorrupt = %v (%v)", mode, got, err)
		}
		f.Close()
		s.Close()
	}
}

// badCompressor returns undecodable output for compression jobs.
type badCompressor struct{ inner Compressor }

func (c badCompressor) Run(ctx context.Context, jobs []*Job) error {
	err := c.inner.Run(ctx, jobs)
	for _, j := range jobs {
		if !j.Decompress && j.Err == nil && len(j.Out) > 8 {
			for i := range j.Out[:8] {
				j.Out[i] = 0xff
			}
		}
	}
	return err
}

// With VerifyCompression, a faulty engine's output is caught at write time
// and the block stored raw: the data survives.
func TestVerifyCompression(t *testing.T) {
	for _, verify := range []bool{true, false} {
		dir := t.TempDir()
		o := testOpts(t, 4096, codec.Zstd)
		o.VerifyCompression = verify
		o.Compressor = badCompressor{NewCPUCompressor(1)}
		s := mustOpen(t, dir, o)
		f := createFile(t, s, "a")
		want := compressible(3*4096, 1)
		mustWrite(t, f, want, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s.Close()
		s = mustOpen(t, dir, testOpts(t, 4096, codec.Zstd))
		f = openFile(t, s, "a")
		got := make([]byte, len(want))
		_, err := f.ReadAt(got, 0)
		if verify && (err != nil || !bytes.Equal(got, want)) {
			t.Fatalf("with verification: %v", err)
		}
		if !verify && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("without verification a bad engine must show as corruption: %v", err)
		}
		if verify && s.Stats().RawBlocks != 3 {
			t.Fatalf("stats %+v", s.Stats())
		}
		f.Close()
		s.Close()
	}
}

// A generation is reused after an uncommitted record is dropped and the
// file's entry leaves the open-file table (the next open takes NextGen from
// the index again): the decoded-block cache must not answer the new record
// with the old one's data.
func TestCacheGenerationReuse(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "a")
	if err := f.Truncate(8 * int64(bs)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, compressible(bs, 1), 5*int64(bs)) // a record, never committed
	if err := f.PunchHole(5*int64(bs), int64(bs)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // nothing to commit: the entry goes
		t.Fatal(err)
	}
	f = openFile(t, s, "a")
	defer f.Close()
	want := make([]byte, 8*bs)
	copy(want[5*bs:], compressible(bs, 7))
	mustWrite(t, f, want[5*bs:6*bs], 5*int64(bs))
	checkContent(t, f, want)
}
