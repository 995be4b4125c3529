package session

import (
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// fakeHW is a test engine that behaves like a device: one goroutine per queue
// completes ops in order after a configurable latency, completions are only
// seen by reaping (no notify), and faults can be injected.
type fakeHW struct {
	nm       string
	nodeList []int
	budget   atomic.Int64 // queues left; open fails with errBusy at 0
	qdepth   int
	latency  func(q int) time.Duration // per-op latency of queue q
	errRate  float64                   // probability of an error status
	hang     atomic.Bool               // new ops never complete
	// gate, when set (before New), holds every op until it is closed, so a
	// test can have requests in flight for as long as it needs without
	// guessing a latency longer than the machine's worst stall.
	gate chan struct{}
	// instant: submit completes the op before it returns (no device
	// goroutine, no latency at all): a device as fast as it gets.
	instant bool
	mu      sync.Mutex
	queues  []*fakeQueue
	rnd     *rand.Rand
	errs    atomic.Int64
}

func newFakeHW(name string, nodes []int, budget, depth int) *fakeHW {
	f := &fakeHW{nm: name, nodeList: nodes, qdepth: depth, rnd: rand.New(rand.NewSource(1))}
	f.budget.Store(int64(budget))
	return f
}

func (f *fakeHW) name() string { return f.nm }
func (f *fakeHW) isCPU() bool  { return false }
func (f *fakeHW) supports(a codec.ID, _ Direction) bool {
	return a == codec.Deflate || a == codec.Zlib || a == codec.Gzip
}
func (f *fakeHW) nodes() []int { return f.nodeList }
func (f *fakeHW) close() error { return nil }

func (f *fakeHW) openQueue(node int, dir Direction, mode Mode, _ func()) (queue, error) {
	if f.budget.Add(-1) < 0 {
		f.budget.Add(1)
		return nil, fmt.Errorf("open %s: %w", f.nm, errBusy)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := &fakeQueue{f: f, idx: len(f.queues), in: make(chan fakeOp, f.qdepth), stop: make(chan struct{})}
	f.queues = append(f.queues, q)
	q.wg.Add(1)
	go q.run()
	return q, nil
}

func (f *fakeHW) shouldFail() bool {
	if f.errRate == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.Float64() < f.errRate
}

type fakeOp struct {
	tag uint16
	o   *op
}

type fakeQueue struct {
	f        *fakeHW
	idx      int
	in       chan fakeOp
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	done     []completion
	disabled atomic.Bool
	closed   atomic.Bool
	// cur is the op the device is working on: taken off the queue, not yet
	// posted as a completion, so its buffers may be read and written (for
	// the whole latency, as a device's DMA would). Cleared when close stops
	// the device.
	cur atomic.Pointer[op]
}

func (q *fakeQueue) run() {
	defer q.wg.Done()
	defer q.cur.Store(nil) // stopped by close: the device lets go of the op
	for {
		select {
		case <-q.stop:
			return
		case fo := <-q.in:
			q.cur.Store(fo.o)
			if q.f.hang.Load() {
				<-q.stop
				return
			}
			if g := q.f.gate; g != nil {
				select {
				case <-g:
				case <-q.stop:
					return
				}
			}
			if q.f.latency != nil {
				select {
				case <-time.After(q.f.latency(q.idx)):
				case <-q.stop:
					return
				}
			}
			var c completion
			c.tag = fo.tag
			if q.f.shouldFail() {
				q.f.errs.Add(1)
				// garbage in the output, as a broken device might leave
				c.out = append(fo.o.dst[:0], 0xde, 0xad)
				c.err = fmt.Errorf("status 0x10: %w", ErrDevice)
			} else {
				c.out, c.err = runCodec(fo.o)
			}
			q.cur.Store(nil) // done with the buffers before the completion is visible
			q.mu.Lock()
			q.done = append(q.done, c)
			q.mu.Unlock()
		}
	}
}

func (q *fakeQueue) depth() int     { return q.f.qdepth }
func (q *fakeQueue) notifies() bool { return false }
func (q *fakeQueue) wait(d time.Duration) {
	if d > 20*time.Microsecond {
		d = 20 * time.Microsecond
	}
	time.Sleep(d)
}

func (q *fakeQueue) submit(tag uint16, o *op) error {
	if q.disabled.Load() {
		return fmt.Errorf("submit: %w", errDisabled)
	}
	if q.f.instant {
		c := completion{tag: tag}
		c.out, c.err = runCodec(o)
		q.mu.Lock()
		q.done = append(q.done, c)
		q.mu.Unlock()
		return nil
	}
	select {
	case q.in <- fakeOp{tag, o}:
		return nil
	default:
		return ErrQueueFull
	}
}

func (q *fakeQueue) reap(out []completion) (int, error) {
	q.mu.Lock()
	n := copy(out, q.done)
	q.done = append(q.done[:0], q.done[n:]...)
	q.mu.Unlock()
	if n == 0 && q.disabled.Load() {
		return 0, fmt.Errorf("reap: %w", errDisabled)
	}
	return n, nil
}

func (q *fakeQueue) close() error {
	if q.closed.CompareAndSwap(false, true) {
		close(q.stop)
		q.wg.Wait()
		q.f.budget.Add(1)
	}
	return nil
}

// busyWith reports whether some queue's device is working on an op with
// src's buffer right now: a request handed back to its caller must never be
// (the device could still write its Dst).
func (f *fakeHW) busyWith(src []byte) bool {
	if len(src) == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.queues {
		if o := q.cur.Load(); o != nil && len(o.src) > 0 && &o.src[0] == &src[0] {
			return true
		}
	}
	return false
}
