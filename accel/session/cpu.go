package session

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// cpuEngine runs ops on worker goroutines over package codec. Its queues are
// views on one bounded job channel; completions are posted per queue and
// reaped like a device's.
type cpuEngine struct {
	topo    Topology
	jobs    chan cpuJob    // bounded; capacity >= sum of queue depths
	wg      sync.WaitGroup // the workers
	once    sync.Once
	qd      int // depth of each queue
	workers int

	// Load model for engine choice (Layer.preferCPU): source bytes queued or
	// being worked on, and an EWMA (weight 1/8) of the pure compute ns per
	// source byte of the deflate family (what a device could also do), per
	// direction, as float64 bits.
	backlog atomic.Int64
	npb     [2]atomic.Uint64
}

type cpuJob struct {
	q   *cpuQueue
	tag uint16
	o   *op
}

func newCPUEngine(topo Topology, workers, depth, maxQueues int) *cpuEngine {
	e := &cpuEngine{topo: topo, jobs: make(chan cpuJob, depth*maxQueues), qd: depth, workers: workers}
	for i := 0; i < workers; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	return e
}

func (e *cpuEngine) worker() {
	defer e.wg.Done()
	for j := range e.jobs {
		start := time.Now()
		out, err := runCodec(j.o)
		e.learn(j.o, time.Since(start), err)
		e.backlog.Add(-int64(len(j.o.src)))
		j.q.post(completion{tag: j.tag, out: out, err: err})
	}
}

// learn folds one deflate-family request's compute time into npb.
func (e *cpuEngine) learn(o *op, d time.Duration, err error) {
	if err != nil || len(o.src) < 512 || (o.algo != codec.Deflate && o.algo != codec.Zlib && o.algo != codec.Gzip) {
		return
	}
	sample := float64(d) / float64(len(o.src))
	v := &e.npb[o.dir&1]
	for {
		old := v.Load()
		n := sample
		if old != 0 {
			n = math.Float64frombits(old) + (sample-math.Float64frombits(old))/8
		}
		if v.CompareAndSwap(old, math.Float64bits(n)) {
			return
		}
	}
}

// estimate is the expected time for the CPU to finish n more source bytes
// in direction d behind its backlog (0 when it has no deflate sample yet).
func (e *cpuEngine) estimate(d Direction, n int64) time.Duration {
	npb := math.Float64frombits(e.npb[d&1].Load())
	return time.Duration(npb * (float64(e.backlog.Load())/float64(e.workers) + float64(n)))
}

// runCodec runs o with package codec (the CPU engine and inline fallback).
func runCodec(o *op) ([]byte, error) {
	if o.dir == Compress {
		return codec.Compress(o.algo, o.level, o.dst[:0], o.src)
	}
	return codec.Decompress(o.algo, o.dst[:0], o.src, o.rawLen)
}

func (e *cpuEngine) name() string                          { return "cpu" }
func (e *cpuEngine) isCPU() bool                           { return true }
func (e *cpuEngine) supports(a codec.ID, _ Direction) bool { return a.Valid() }
func (e *cpuEngine) nodes() []int {
	var ids []int
	for _, n := range e.topo.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func (e *cpuEngine) openQueue(_ int, _ Direction, _ Mode, notify func()) (queue, error) {
	return &cpuQueue{e: e, notify: notify}, nil
}

// close stops the workers; every queue must be idle.
func (e *cpuEngine) close() error {
	e.once.Do(func() { close(e.jobs) })
	e.wg.Wait()
	return nil
}

type cpuQueue struct {
	e      *cpuEngine
	notify func()
	mu     sync.Mutex   // protects done
	done   []completion // posted, not yet reaped
}

func (q *cpuQueue) depth() int         { return q.e.qd }
func (q *cpuQueue) notifies() bool     { return q.notify != nil }
func (q *cpuQueue) wait(time.Duration) {}
func (q *cpuQueue) close() error       { return nil }

func (q *cpuQueue) submit(tag uint16, o *op) error {
	q.e.backlog.Add(int64(len(o.src)))
	select {
	case q.e.jobs <- cpuJob{q: q, tag: tag, o: o}:
		return nil
	default:
		q.e.backlog.Add(-int64(len(o.src)))
		return ErrQueueFull
	}
}

func (q *cpuQueue) post(c completion) {
	q.mu.Lock()
	q.done = append(q.done, c)
	q.mu.Unlock()
	if q.notify != nil {
		q.notify()
	}
}

func (q *cpuQueue) reap(out []completion) (int, error) {
	q.mu.Lock()
	n := copy(out, q.done)
	rest := copy(q.done, q.done[n:])
	for i := rest; i < len(q.done); i++ {
		q.done[i] = completion{}
	}
	q.done = q.done[:rest]
	q.mu.Unlock()
	return n, nil
}
