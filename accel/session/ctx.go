package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/accel/uacce"
)

// hctx is one ctx: an engine queue plus its tag table, credits and
// estimates. Lock order: mu before reapMu.
type hctx struct {
	l     *Layer
	es    *engState
	id    int // index in l.ctxs
	node  int
	dir   Direction
	mode  Mode
	depth int
	pol   *poller // the poller that reaps this ctx, nil when none
	// polRef is pol for the queue's notify hook, which may run in the
	// device's goroutine while New is still assigning pollers (a late
	// wake-up from the self-test's completion).
	polRef atomic.Pointer[poller]
	notify func() // the completion hook its queues were opened with

	// qref is the current queue. It is replaced only by revive, holding
	// both mu and reapMu; submit (under mu) and reap (under reapMu) use it
	// under their lock, a poller's wait without one (Wait may race Close).
	qref atomic.Pointer[queueBox]

	credits chan struct{}                 // a send takes a credit, a receive returns it; cap depth
	deadCh  atomic.Pointer[chan struct{}] // closed when the ctx is taken out of service; new one per revival
	dead    atomic.Bool

	mu    sync.Mutex // protects tasks, free and gen; serialises queue submit and close
	tasks []*task    // tag table: tasks[tag] is the pending request, nil when free
	free  []uint16   // free tags
	gen   uint32     // queue generation: completions of an older queue are stale

	reapMu sync.Mutex // one consumer of the queue's completions at a time; held across reap and close

	failures atomic.Int32 // consecutive fail/revive-failure count (revival backoff)
	reviveAt atomic.Int64 // unix nanos before which revive does not try

	inflight      atomic.Int64
	inflightBytes atomic.Int64
	nsPerByte     atomic.Uint64 // float64 bits: EWMA of latency / (bytes ahead + own bytes)
	lastDone      atomic.Int64  // unix nanos of the last completion (timeout detection)
}

type queueBox struct{ q queue }

// queue returns the ctx's current queue.
func (c *hctx) queue() queue { return c.qref.Load().q }

func newCtx(l *Layer, es *engState, node int, dir Direction, mode Mode, q queue, notify func()) *hctx {
	d := q.depth()
	if d < 1 {
		d = 1
	}
	if d > math.MaxUint16 {
		d = math.MaxUint16
	}
	c := &hctx{l: l, es: es, node: node, dir: dir, mode: mode, depth: d, notify: notify,
		credits: make(chan struct{}, d), tasks: make([]*task, d)}
	c.qref.Store(&queueBox{q})
	ch := make(chan struct{})
	c.deadCh.Store(&ch)
	c.resetTags()
	// No revival is due until a fail has finished (closed the queue, taken
	// the pending requests) and scheduled one: with 0 here a reviver could
	// slip in between fail marking the ctx dead and fail closing its queue.
	c.reviveAt.Store(math.MaxInt64)
	return c
}

// resetTags makes every tag free; the table must be empty (mu held or not
// yet shared).
func (c *hctx) resetTags() {
	c.free = c.free[:0]
	for i := c.depth - 1; i >= 0; i-- {
		c.free = append(c.free, uint16(i))
	}
}

func (c *hctx) tryCredit() bool {
	select {
	case c.credits <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *hctx) releaseCredit() { <-c.credits }

// waitCredit blocks until a credit is free, ctx is done (ctx.Err()), the ctx
// dies (ErrCtxDead) or the layer closes (ErrClosed). The waiter also reaps
// the ctx now and then itself: every 50µs without a poller, every 1ms with
// one (so a poller blocked in a callback that submits cannot deadlock on
// credits only it would return).
func (c *hctx) waitCredit(ctx context.Context) error {
	every := time.Millisecond
	if c.pol == nil {
		every = 50 * time.Microsecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	tick := t.C
	deadCh := *c.deadCh.Load()
	if c.dead.Load() {
		return ErrCtxDead
	}
	for {
		select {
		case c.credits <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-deadCh:
			return ErrCtxDead
		case <-c.l.closingCh:
			return ErrClosed
		case <-tick:
			c.reap(64)
		}
	}
}

// submit sends t on c; the caller holds a credit, which submit releases on
// failure.
func (c *hctx) submit(t *task) error {
	c.mu.Lock()
	if c.dead.Load() {
		c.mu.Unlock()
		c.releaseCredit()
		return ErrCtxDead
	}
	tag := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.tasks[tag] = t
	t.ctx, t.tag = c, tag
	t.start = time.Now()
	t.ahead = c.inflightBytes.Add(t.size) - t.size
	c.inflight.Add(1)
	c.es.m.inflight.Add(1)
	err := c.queue().submit(tag, &t.op)
	if err != nil {
		c.tasks[tag] = nil
		c.free = append(c.free, tag)
		c.inflight.Add(-1)
		c.inflightBytes.Add(-t.size)
		c.es.m.inflight.Add(-1)
		t.ctx = nil
		c.mu.Unlock()
		c.releaseCredit()
		return err
	}
	c.mu.Unlock()
	if c.pol != nil {
		c.pol.kick()
	}
	return nil
}

// reap consumes up to max completions and finishes their requests outside
// the reap lock. It returns how many it consumed; 0 when another goroutine
// is reaping this ctx right now.
func (c *hctx) reap(max int) int {
	var local [64]completion
	if max > len(local) || max <= 0 {
		max = len(local)
	}
	if c.inflight.Load() == 0 || !c.reapMu.TryLock() {
		return 0
	}
	if c.dead.Load() {
		c.reapMu.Unlock()
		return 0
	}
	n, err := c.queue().reap(local[:max])
	gen := c.genLocked()
	c.reapMu.Unlock()
	for i := 0; i < n; i++ {
		c.finish(local[i], gen)
	}
	if err != nil {
		c.fail(causeOf(err), err)
	}
	return n
}

// genLocked reads the queue generation; the caller holds reapMu (revive
// changes gen holding both locks).
func (c *hctx) genLocked() uint32 { return atomic.LoadUint32(&c.gen) }

// finish completes the request behind one completion reaped from the queue
// of generation gen.
func (c *hctx) finish(cp completion, gen uint32) {
	c.mu.Lock()
	if gen != atomic.LoadUint32(&c.gen) {
		// Reaped from a queue that has since failed and been replaced: its
		// request was taken over by fail; the tag may already name a new
		// request of the new queue.
		c.mu.Unlock()
		return
	}
	var t *task
	if int(cp.tag) < len(c.tasks) {
		t = c.tasks[cp.tag]
		c.tasks[cp.tag] = nil
	}
	if t != nil {
		c.free = append(c.free, cp.tag)
	}
	c.mu.Unlock()
	if t == nil {
		// A tag with no pending request: a device bug, or a request taken
		// over by fail after this completion was reaped. Never complete
		// anything twice.
		if !c.dead.Load() {
			c.l.warnOnce("stray_tag", "completion for a tag with no pending request", "ctx", c.name(), "tag", cp.tag)
		}
		return
	}
	c.releaseCredit()
	c.inflight.Add(-1)
	c.inflightBytes.Add(-t.size)
	c.es.m.inflight.Add(-1)
	now := time.Now()
	c.lastDone.Store(now.UnixNano())
	lat := now.Sub(t.start)
	c.observe(lat, t.ahead+t.size)
	c.l.complete(t, c.es, cp.out, cp.err, lat)
}

// observe folds one latency sample into the ns-per-byte EWMA (weight 1/8).
func (c *hctx) observe(lat time.Duration, bytes int64) {
	if bytes <= 0 {
		bytes = 1
	}
	sample := float64(lat) / float64(bytes)
	for {
		old := c.nsPerByte.Load()
		o := math.Float64frombits(old)
		n := sample
		if old != 0 {
			n = o + (sample-o)/8
		}
		if c.nsPerByte.CompareAndSwap(old, math.Float64bits(n)) {
			return
		}
	}
}

// estimate is the expected time from submit to completion of t (submitted
// to c behind t.ahead queued bytes), from the ctx's current ns-per-byte.
func (c *hctx) estimate(t *task) time.Duration {
	npb := math.Float64frombits(c.nsPerByte.Load())
	return time.Duration(npb * float64(t.ahead+t.size))
}

// oldest returns the start time of the oldest pending request (zero if none).
func (c *hctx) oldest() time.Time {
	var o time.Time
	c.mu.Lock()
	for _, t := range c.tasks {
		if t != nil && (o.IsZero() || t.start.Before(o)) {
			o = t.start
		}
	}
	c.mu.Unlock()
	return o
}

// fail takes c out of service: stops its queue (so the device touches no
// buffer any more), redoes every pending request on the CPU and schedules a
// revival attempt (WithRevive).
func (c *hctx) fail(cause string, err error) {
	if !c.dead.CompareAndSwap(false, true) {
		return
	}
	close(*c.deadCh.Load())
	c.mu.Lock()
	c.reapMu.Lock()
	cerr := c.queue().close()
	pending := make([]*task, 0, c.inflight.Load())
	for tag, t := range c.tasks {
		if t != nil {
			pending = append(pending, t)
			c.tasks[tag] = nil
		}
	}
	c.resetTags()
	c.reapMu.Unlock()
	c.mu.Unlock()
	c.scheduleRevive()
	c.l.warnOnce("ctx_fail:"+cause, "ctx taken out of service; pending requests redone on the CPU",
		"ctx", c.name(), "cause", cause, "err", err, "close_err", cerr, "pending", len(pending))
	for _, t := range pending {
		c.releaseCredit()
		c.inflight.Add(-1)
		c.inflightBytes.Add(-t.size)
		c.es.m.inflight.Add(-1)
		c.es.m.record(t.op.dir, int(t.size), 0, err, time.Since(t.start))
		c.l.countFallback(cause, err)
		c.l.redoCPU(t)
	}
}

// scheduleRevive sets the next revival attempt: WithRevive's delay,
// doubled per consecutive failure up to 64 times it.
func (c *hctx) scheduleRevive() {
	n := c.failures.Add(1)
	if n > 7 {
		n = 7
	}
	c.reviveAt.Store(time.Now().Add(c.l.cfg.revive << (n - 1)).UnixNano())
}

// revive re-creates the queue of a dead ctx when its attempt is due (the
// kernel's advice after a reset: close and re-open the queue, uadk-spec
// §5.2). Called by pollers and by self-polling callers; a no-op otherwise.
func (c *hctx) revive() {
	if !c.dead.Load() || c.l.cfg.revive <= 0 || c.l.closing.Load() {
		return
	}
	// One attempt at a time: pollers and self-polling callers may all get
	// here at once; only the one that moves reviveAt to "never" proceeds.
	at := c.reviveAt.Load()
	if time.Now().UnixNano() < at || !c.reviveAt.CompareAndSwap(at, math.MaxInt64) {
		return
	}
	q, err := c.es.e.openQueue(c.node, c.dir, c.mode, c.notify)
	if err == nil && q.depth() < c.depth {
		_ = q.close()
		err = fmt.Errorf("re-opened queue has depth %d < %d", q.depth(), c.depth)
	}
	if err != nil {
		c.scheduleRevive()
		c.l.warnOnce("revive_fail:"+c.name(), "ctx revival failed; retrying later", "ctx", c.name(), "err", err)
		return
	}
	c.mu.Lock()
	c.reapMu.Lock()
	if c.l.closing.Load() || !c.dead.Load() {
		c.reapMu.Unlock()
		c.mu.Unlock()
		_ = q.close()
		return
	}
	c.qref.Store(&queueBox{q})
	atomic.AddUint32(&c.gen, 1)
	c.resetTags()
	c.nsPerByte.Store(0)
	ch := make(chan struct{})
	c.deadCh.Store(&ch)
	c.dead.Store(false)
	c.reapMu.Unlock()
	c.mu.Unlock()
	c.failures.Store(0)
	c.es.m.revived.Add(1)
	c.l.warnOnce("revived:"+c.name(), "ctx revived with a new queue (logged once per ctx)", "ctx", c.name())
}

// arm enables the completion interrupt of c's hardware queue before its
// poller parks and returns the uacce queue to wait on; false when c is dead
// or not a hardware queue. Under reapMu, so it never races the queue's
// close (fail and revive hold reapMu).
func (c *hctx) arm() (uacce.Queue, bool) {
	c.reapMu.Lock()
	defer c.reapMu.Unlock()
	if c.dead.Load() {
		return nil, false
	}
	hq, ok := c.queue().(*hwQueue)
	if !ok || hq.z.Arm() != nil {
		return nil, false
	}
	return hq.z.Queue(), true
}

func (c *hctx) name() string {
	return c.es.e.name() + "/" + c.dir.String() + "/" + c.mode.String() + "/node" + itoa(c.node) + "/" + itoa(c.id)
}

// causeOf maps a queue error to a fallback cause.
func causeOf(err error) string {
	switch {
	case errors.Is(err, ErrCtxDead):
		return CauseQueueDisabled
	case isDisabled(err):
		return CauseQueueDisabled
	case isTooSmall(err):
		return CauseOutputTooSmall
	}
	return CauseErrorStatus
}
