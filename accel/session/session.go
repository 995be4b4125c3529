package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Request is one buffer to (de)compress with a session.
type Request struct {
	Src    []byte
	Dst    []byte // output buffer; the result is appended to Dst[:0] when it fits
	RawLen int    // Decompress: exact expected output length
	Out    []byte // result (may alias Dst), set at completion
	Err    error  // per-request result error (codec.ErrCorrupt for bad data, ...)
	Engine string // engine that produced Out ("cpu", "hisi_zip-0", ...)
}

// SessionOptions describe a session.
type SessionOptions struct {
	Algo  codec.ID
	Level int // 0 = codec default
	Dir   Direction
	// Node is the NUMA node whose ctxs the session prefers; -1 = the node of
	// the CPU the caller runs on.
	Node int
}

// Session is (algorithm, level, direction) bound to one sync and one async
// ctx per engine that supports it. Safe for concurrent use; many sessions
// share a ctx.
type Session struct {
	l     *Layer
	algo  codec.ID
	level int
	dir   Direction
	node  int
	hw    *engState // hardware engine for this session, nil when none supports it
	bound [2][2]atomic.Pointer[hctx]
}

const (
	engHW  = 0
	engCPU = 1
)

// task is one admitted request on its way through a ctx.
type task struct {
	sess  *Session
	req   *Request
	op    op
	size  int64
	cb    func(*Request)
	done  chan struct{} // sync requests: closed at completion
	ctx   *hctx         // ctx it was submitted to
	tag   uint16
	start time.Time
	ahead int64 // bytes queued ahead on the ctx at submit
}

// NewSession creates a session. It fails with ErrUnsupported when no engine
// (not even the CPU) can run the algorithm.
func (l *Layer) NewSession(o SessionOptions) (*Session, error) {
	if l.closing.Load() {
		return nil, ErrClosed
	}
	if !o.Algo.Valid() {
		return nil, fmt.Errorf("%w: algorithm %v", ErrUnsupported, o.Algo)
	}
	if o.Dir != Compress && o.Dir != Decompress {
		return nil, fmt.Errorf("%w: direction %d", ErrBadRequest, o.Dir)
	}
	lvl, err := codec.NormalizeLevel(o.Algo, o.Level)
	if err != nil {
		return nil, fmt.Errorf("session %v level %d: %w", o.Algo, o.Level, err)
	}
	s := &Session{l: l, algo: o.Algo, level: lvl, dir: o.Dir, node: o.Node}
	if s.node < 0 {
		s.node = l.topo.NodeOfCPU(currentCPU())
	}
	// Hardware engine: the supporting ones with ctxs, preferring those on
	// the session's node, else those on the nearest node (NUMA distance),
	// round-robin over sessions among them.
	var cands []*engState
	best := -1
	for _, es := range l.engines[1:] {
		if !es.e.supports(o.Algo, o.Dir) || es.nctx == 0 {
			continue
		}
		d := math.MaxInt
		for k := range es.regions {
			d = min(d, l.topo.Distance(s.node, k.node))
		}
		switch {
		case best < 0 || d < best:
			cands, best = []*engState{es}, d
		case d == best:
			cands = append(cands, es)
		}
	}
	if len(cands) > 0 {
		s.hw = cands[int(l.nsess.Add(1)-1)%len(cands)]
		for m := Sync; m <= Async; m++ {
			s.bound[engHW][m].Store(s.hw.pick(l.topo, s.node, m, o.Dir))
		}
	}
	for m := Sync; m <= Async; m++ {
		s.bound[engCPU][m].Store(l.cpu.pick(l.topo, s.node, m, o.Dir))
	}
	return s, nil
}

// Dir returns the session's direction.
func (s *Session) Dir() Direction { return s.dir }

// ctxFor returns the session's live ctx of engine kind k for mode m,
// rebinding (round-robin) when the bound one died.
func (s *Session) ctxFor(k int, m Mode) *hctx {
	c := s.bound[k][m].Load()
	if c != nil && !c.dead.Load() {
		return c
	}
	es := s.l.cpu
	if k == engHW {
		es = s.hw
	}
	if es == nil {
		return nil
	}
	n := es.pick(s.l.topo, s.node, m, s.dir)
	s.bound[k][m].Store(n)
	return n
}

func (s *Session) newTask(r *Request, cb func(*Request)) (*task, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil request", ErrBadRequest)
	}
	if s.dir == Decompress && (r.RawLen < 0 || r.RawLen > maxRequest) {
		return nil, fmt.Errorf("%w: raw length %d", ErrBadRequest, r.RawLen)
	}
	if len(r.Src) > maxRequest {
		return nil, fmt.Errorf("%w: source of %d bytes exceeds %d", ErrBadRequest, len(r.Src), maxRequest)
	}
	r.Out, r.Err, r.Engine = nil, nil, ""
	t := &task{sess: s, req: r, cb: cb, size: int64(len(r.Src)),
		op: op{algo: s.algo, level: s.level, dir: s.dir, src: r.Src, dst: r.Dst, rawLen: r.RawLen}}
	if cb == nil {
		t.done = make(chan struct{})
	}
	return t, nil
}

// maxRequest is the largest request accepted (hisi_zip's per-request limit
// is 8 MiB, uadk-spec §3.5; the filesystem's blocks are <= 1 MiB).
const maxRequest = 8 << 20

// Do runs r synchronously: it returns when r is complete (r.Out/r.Err set)
// or, before submission, when ctx is done (returning ctx.Err()). The error
// returned is r.Err or a submission error. Once submitted, a request is
// always waited for (bounded by the hardware timeout), so r's buffers are
// never touched after Do returns.
func (s *Session) Do(ctx context.Context, r *Request) error {
	t, err := s.newTask(r, nil)
	if err != nil {
		return err
	}
	if err := s.dispatch(ctx, t, Sync); err != nil {
		return err
	}
	s.l.waitSync(t)
	return r.Err
}

// Submit starts r asynchronously and returns; cb(r) runs exactly once, in a
// poller's goroutine or in a Layer.Poll caller, when r is complete. cb must
// not block for long (it holds up the other completions of its poller); it
// may call Submit or Do. On a non-nil error cb is never called.
func (s *Session) Submit(ctx context.Context, r *Request, cb func(*Request)) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrBadRequest)
	}
	t, err := s.newTask(r, cb)
	if err != nil {
		return err
	}
	return s.dispatch(ctx, t, Async)
}

// dispatch admits t and submits it to a ctx chosen by capability, size and
// load, waiting for a credit (honouring ctx) when every candidate is full.
func (s *Session) dispatch(ctx context.Context, t *task, mode Mode) error {
	l := s.l
	if !l.admit() {
		return ErrClosed
	}
	work := len(t.op.src) // what the threshold compares: raw bytes in either direction
	if s.dir == Decompress {
		work = t.op.rawLen
	}
	useHW := s.hw != nil && work >= l.cfg.threshold[s.dir]
	for {
		if err := ctx.Err(); err != nil {
			l.release()
			return err
		}
		if useHW {
			c := s.ctxFor(engHW, mode)
			if c == nil {
				l.countFallback(CauseNoCtx, nil)
				useHW = false
				continue
			}
			if !l.cfg.noOffload && l.preferCPU(c, t) {
				// the device's queue would take longer than the CPU: balance
				if cc := s.ctxFor(engCPU, mode); cc.tryCredit() {
					if err := cc.submit(t); err == nil {
						l.countFallback(CauseLoad, nil)
						return nil
					}
				}
			}
			got := c
			if !c.tryCredit() {
				got = s.hw.otherWithCredit(c)
			}
			if got == nil {
				// hardware region full: the CPU if it has room now, else wait.
				if cc := s.ctxFor(engCPU, mode); !l.cfg.noOffload && cc.tryCredit() {
					if err := cc.submit(t); err == nil {
						l.countFallback(CauseQueueFull, nil)
						return nil
					}
				}
				if err := c.waitCredit(ctx); err != nil {
					if errors.Is(err, ErrCtxDead) {
						continue
					}
					l.release()
					return err
				}
				got = c
			}
			err := got.submit(t)
			if err == nil {
				return nil
			}
			if errors.Is(err, errRejected) {
				l.countFallback(CauseRejected, err)
				useHW = false
				continue
			}
			if errors.Is(err, ErrQueueFull) {
				// credits say there is room but the queue says no: do not spin,
				// run this one on the CPU.
				l.countFallback(CauseQueueFull, err)
				useHW = false
				continue
			}
			if !errors.Is(err, ErrCtxDead) {
				got.fail(causeOf(err), err)
			}
			continue
		}
		cc := s.ctxFor(engCPU, mode)
		if !cc.tryCredit() {
			if err := cc.waitCredit(ctx); err != nil {
				l.release()
				return err
			}
		}
		if err := cc.submit(t); err != nil {
			// the CPU queue's channel is sized for all credits; should not
			// happen, but never drop the request.
			l.redoCPU(t)
		}
		return nil
	}
}

// waitSync waits for a submitted sync task: it polls its ctx while the
// expected completion time is within the spin limit, then parks until a
// poller (or, with no pollers, its own slow polling) completes it.
func (l *Layer) waitSync(t *task) {
	c := t.ctx
	if c == nil { // completed inline
		<-t.done
		return
	}
	if est := c.estimate(t); est <= l.cfg.spinLimit && l.cfg.spinLimit > 0 {
		// twice the estimate plus an absolute allowance for scheduling
		// jitter, never more than the spin limit
		budget := 2*est + 20*time.Microsecond
		if budget > l.cfg.spinLimit {
			budget = l.cfg.spinLimit
		}
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-t.done:
				c.es.m.polled.Add(1)
				return
			default:
			}
			c.reap(64)
			if i&7 == 7 && time.Since(start) > budget {
				break
			}
			runtime.Gosched()
		}
	}
	// Park. A poller normally completes t; the caller still reaps itself
	// now and then (every 1ms, or 50µs with no poller) so that a Do called
	// from inside a callback — on the poller's own goroutine — cannot wait
	// forever for that poller.
	c.es.m.parked.Add(1)
	every := time.Millisecond
	if c.pol == nil {
		every = 50 * time.Microsecond
	}
	select {
	case <-t.done:
		return
	default:
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			c.reap(64)
			l.maybeCheckTimeouts()
		}
	}
}
