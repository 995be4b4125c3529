package blockstore

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Several goroutines, each with its own file and model, share one store with
// a tiny dirty limit and 2 ms background commits: write-out under pressure,
// commits in flight and I/O interleave. Each file must match its model
// throughout and after a reopen.
func TestConcurrentModel(t *testing.T) {
	bs := 4096
	dir := t.TempDir()
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(6 * bs)
	o.CacheBytes = int64(8 * bs)
	o.CommitInterval = 2 * time.Millisecond
	o.commitFloor = time.Millisecond // commits racing the writers
	s := mustOpen(t, dir, o)
	const workers = 4
	ops := 300
	if testing.Short() || raceEnabled {
		ops = 120
	}
	models := make([][]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		f := createFile(t, s, fmt.Sprintf("c%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 77))
			var m []byte
			for i := range ops {
				switch r := rng.IntN(10); {
				case r < 5:
					n := 1 + rng.IntN(3*bs)
					off := rng.Int64N(int64(12 * bs))
					p := modelData(rng, n)
					if _, err := f.WriteAt(p, off); err != nil {
						t.Errorf("worker %d op %d: write: %v", w, i, err)
						return
					}
					if end := off + int64(n); end > int64(len(m)) {
						m = append(m, make([]byte, end-int64(len(m)))...)
					}
					copy(m[off:], p)
				case r < 6:
					size := rng.Int64N(int64(14 * bs))
					if err := f.Truncate(size); err != nil {
						t.Errorf("truncate: %v", err)
						return
					}
					if size < int64(len(m)) {
						m = m[:size]
					} else {
						m = append(m, make([]byte, size-int64(len(m)))...)
					}
				case r < 7:
					if err := f.Sync(); err != nil {
						t.Errorf("sync: %v", err)
						return
					}
				default:
					got := make([]byte, len(m)+1)
					n, err := f.ReadAt(got, 0)
					if err != io.EOF || !bytes.Equal(got[:n], m) {
						t.Errorf("worker %d op %d: read %d bytes (%v), model %d, equal %v", w, i, n, err, len(m), bytes.Equal(got[:n], m))
						return
					}
				}
			}
			models[w] = m
		}()
	}
	wg.Wait()
	if t.Failed() {
		s.Close()
		return
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	for w := range workers {
		f := openFile(t, s, fmt.Sprintf("c%d", w))
		checkContent(t, f, models[w])
		f.Close()
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}
