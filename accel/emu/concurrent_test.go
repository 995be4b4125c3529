package emu

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
)

// TestConcurrentSubmitAndPoll: on every queue of two devices (two NUMA
// nodes), several goroutines submit while a separate poller goroutine reaps,
// as the session layer does; each request is delivered exactly once and
// decompresses to its input.
func TestConcurrentSubmitAndPoll(t *testing.T) {
	sys, err := NewSystem(t.TempDir(),
		Options{ID: 0, Node: 0, Depth: 32, Model: Model{Latency: 20 * time.Microsecond}},
		Options{ID: 1, Node: 1, Depth: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	devs, err := sys.Discover()
	if err != nil || len(devs) != 2 {
		t.Fatal(devs, err)
	}
	perQueue, submitters := 400, 3
	if raceEnabled {
		perQueue = 150
	}
	var wg sync.WaitGroup
	for _, dev := range devs {
		for _, dir := range []uacce.Direction{uacce.Compress, uacce.Decompress} {
			q, err := sys.Open(dev, dir)
			if err != nil {
				t.Fatal(err)
			}
			z, err := qm.NewZipQueue(q, qm.ZipOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer z.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				hammer(t, z, dir, perQueue, submitters)
			}()
		}
	}
	wg.Wait()
}

// hammer runs on its own goroutine: it reports with t.Errorf, never t.Fatal.
func hammer(t *testing.T, z *qm.ZipQueue, dir uacce.Direction, n, submitters int) {
	type job struct {
		raw []byte
		r   *qm.ZipRequest
	}
	rng := rand.New(rand.NewPCG(uint64(z.Info().QPID), uint64(dir)))
	jobs := make([]*job, n)
	for i := range jobs {
		raw := testData(rng, 1+rng.IntN(6000))
		a := algs[i%3]
		j := &job{raw: raw}
		if dir == uacce.Compress {
			j.r = &qm.ZipRequest{Alg: a.alg, Src: raw, Dst: make([]byte, 0, len(raw)+256)}
		} else {
			cc, err := compressCPU(a.id, raw)
			if err != nil {
				t.Error(err)
				return
			}
			j.r = &qm.ZipRequest{Alg: a.alg, Src: cc, Dst: make([]byte, 0, max(16, len(raw)))}
		}
		j.r.Priv = j
		jobs[i] = j
	}
	var delivered sync.Map
	var pollerWG, subWG sync.WaitGroup
	stop := make(chan struct{})
	pollerWG.Add(1)
	go func() { // the one poller
		defer pollerWG.Done()
		count := 0
		// stuck = no completion for noProgress (not a total time)
		const noProgress = 60 * time.Second
		deadline := time.Now().Add(noProgress)
		for count < n {
			k, err := z.Poll(0, func(r *qm.ZipRequest) {
				if _, dup := delivered.LoadOrStore(r, true); dup {
					t.Errorf("delivered twice")
				}
				count++
			})
			if err != nil {
				t.Errorf("poll: %v", err)
				return
			}
			if k > 0 {
				deadline = time.Now().Add(noProgress)
			} else {
				if time.Now().After(deadline) {
					t.Errorf("poller stuck at %d of %d", count, n)
					close(stop)
					return
				}
				z.Wait(time.Millisecond)
			}
		}
	}()
	for s := 0; s < submitters; s++ {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			for i := s; i < n; i += submitters {
				for {
					err := z.Submit(jobs[i].r)
					if err == nil {
						break
					}
					if !errors.Is(err, qm.ErrBusy) {
						t.Errorf("submit: %v", err)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Microsecond):
					}
				}
			}
		}()
	}
	subWG.Wait()
	pollerWG.Wait()
	if t.Failed() {
		return
	}
	for i, j := range jobs {
		r := j.r
		if r.Err != nil {
			t.Errorf("qp %d job %d: %v", z.Info().QPID, i, r.Err)
			return
		}
		if dir == uacce.Decompress && !bytes.Equal(r.Out, j.raw) {
			t.Errorf("job %d: wrong bytes", i)
			return
		}
		if dir == uacce.Compress {
			back, err := decompressCPU(algs[i%3].id, r.Out, len(j.raw))
			if err != nil || !bytes.Equal(back, j.raw) {
				t.Errorf("job %d: emu output does not decode: %v", i, err)
				return
			}
		}
	}
}
