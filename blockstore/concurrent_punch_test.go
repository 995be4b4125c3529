package blockstore

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Like TestConcurrentModel, with PunchHole, file reopen (the entry leaves
// the open-file table and comes back), all-zero writes, a live fsck verify
// running throughout (it must stay clean), and, in the "faults" run,
// injected fdatasync (EIO) failures: reads must match the model
// throughout, and after the faults stop the store must close, reopen and
// read back every model, with fsck clean and nothing left over. Record
// write failures are not injected here: a file whose blocks cannot be
// written fails its writers and may drop the blocks (stuck blocks, see
// doc.go), which no model of "every write lands" can follow; faults_test.go
// covers them.
func TestConcurrentModelPunchReopen(t *testing.T) {
	for _, faults := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "faults"}[faults], func(t *testing.T) {
			testConcurrentModelPunchReopen(t, faults)
		})
	}
}

func testConcurrentModelPunchReopen(t *testing.T, withFaults bool) {
	bs := 4096
	dir := t.TempDir()
	o := testOpts(t, bs, codec.LZ4)
	o.DirtyLimit = int64(6 * bs)
	o.CacheBytes = int64(16 * bs)
	o.CommitInterval = time.Millisecond
	o.commitFloor = time.Millisecond // commits racing the writers
	s := mustOpen(t, dir, o)
	var hmu sync.Mutex
	hrng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var faultsOn atomic.Bool
	faultsOn.Store(withFaults)
	faults := faultsOn.Load()
	s.hooks = &testHooks{fail: func(op, path string) error {
		if !faultsOn.Load() {
			return nil
		}
		hmu.Lock()
		defer hmu.Unlock()
		if op == "sync" && hrng.IntN(8) == 0 {
			return errInjected
		}
		return nil
	}}
	const workers = 3
	ops := 1000
	if testing.Short() || raceEnabled {
		ops = 400
	}
	models := make([][]byte, workers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fsckDone := make(chan struct{})
	go func() {
		defer close(fsckDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := s.Fsck(FsckOptions{})
			if faults && err != nil {
				continue
			}
			if err != nil || !rep.Clean() {
				t.Errorf("live fsck: %v %v", err, rep)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w := range workers {
		name := fmt.Sprintf("c%d", w)
		f := createFile(t, s, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var m []byte
			for i := range ops {
				switch r := rng.IntN(14); {
				case r < 5:
					n := 1 + rng.IntN(3*bs)
					off := rng.Int64N(int64(10 * bs))
					p := modelData(rng, n)
					if rng.IntN(3) == 0 {
						p = make([]byte, n)
					}
					if _, err := f.WriteAt(p, off); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					if end := off + int64(n); end > int64(len(m)) {
						m = append(m, make([]byte, end-int64(len(m)))...)
					}
					copy(m[off:], p)
				case r < 6:
					size := rng.Int64N(int64(12 * bs))
					if err := f.Truncate(size); err != nil {
						t.Errorf("truncate: %v", err)
						return
					}
					if size < int64(len(m)) {
						m = m[:size]
					} else {
						m = append(m, make([]byte, size-int64(len(m)))...)
					}
				case r < 8:
					off := rng.Int64N(int64(12 * bs))
					n := rng.Int64N(int64(4 * bs))
					if err := f.PunchHole(off, n); err != nil {
						t.Errorf("punch: %v", err)
						return
					}
					if off < int64(len(m)) {
						clear(m[off:min(off+n, int64(len(m)))])
					}
				case r < 9:
					if err := f.Sync(); err != nil && !faults {
						t.Errorf("sync: %v", err)
						return
					}
				case r < 10:
					f.Flush()
				case r < 11:
					if err := f.Close(); err != nil && !faults {
						t.Errorf("close: %v", err)
					}
					bf, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
					if err != nil {
						t.Error(err)
						return
					}
					f, err = s.OpenFile(bf)
					if err != nil {
						t.Errorf("reopen: %v", err)
						return
					}
				default:
					got := make([]byte, len(m)+1)
					n, err := f.ReadAt(got, 0)
					if err != io.EOF || !bytes.Equal(got[:n], m) {
						d := 0
						for d < n && d < len(m) && got[d] == m[d] {
							d++
						}
						t.Errorf("worker %d op %d: read %d bytes (%v), model %d, first diff %d", w, i, n, err, len(m), d)
						return
					}
				}
			}
			f.Close()
			models[w] = m
		}()
	}
	wg.Wait()
	close(stop)
	<-fsckDone
	faultsOn.Store(false)
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
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}
