package session

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/accel/uacce"
)

// poller reaps the completions of a fixed set of ctxs of one node, running
// async callbacks and waking parked sync callers. It runs on an OS thread
// pinned to its node's CPUs. Owner: the Layer (started in New, stopped in
// Close after the drain).
type poller struct {
	l      *Layer
	node   *Node
	name   string
	ctxs   []*hctx       // fixed after New
	notify bool          // every ctx calls notify on completion: block on wake
	wake   chan struct{} // cap 1: a submit or a completion happened
	// pinned is the CPU mask the poller's thread ended up with (nil until
	// the poller has started, empty when pinning was not possible); for
	// tests and diagnostics.
	pinned atomic.Pointer[[]int]
}

func (p *poller) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *poller) inflight() int64 {
	var n int64
	for _, c := range p.ctxs {
		if !c.dead.Load() {
			n += c.inflight.Load()
		}
	}
	return n
}

func (p *poller) run() {
	defer p.l.wg.Done()
	// The thread is pinned and never unlocked: when run returns, the Go
	// runtime terminates the thread instead of handing a pinned thread to
	// other goroutines.
	runtime.LockOSThread()
	ok, err := pinThread(p.node, &p.l.allowed)
	if err != nil || !ok {
		p.l.warnOnce("pin:"+itoa(p.node.ID), "poller not pinned to its node's CPUs",
			"node", p.node.ID, "cpus", p.node.CPUs, "err", err)
	}
	var mask []int
	if ok {
		mask = threadCPUs()
	}
	p.pinned.Store(&mask)
	idle := 0
	lastScan := time.Now()
	hw := !p.ctxs[0].es.e.isCPU()
	// Hardware pollers look for timeouts and for dead ctxs due for revival
	// this often.
	scanEvery := p.l.cfg.timeout / 8
	if r := p.l.cfg.revive; r > 0 && r < scanEvery {
		scanEvery = r
	}
	timer := time.NewTimer(scanEvery)
	defer timer.Stop()
	// wait blocks until a wake, or the next scan is due when scan is set;
	// false when the layer stops.
	wait := func(scan bool) bool {
		var tc <-chan time.Time
		if scan {
			timer.Reset(scanEvery)
			tc = timer.C
		}
		select {
		case <-p.wake:
		case <-tc:
		case <-p.l.stopCh:
			return false
		}
		return true
	}
	for {
		n := 0
		for _, c := range p.ctxs {
			n += c.reap(64)
		}
		if n > 0 {
			idle = 0
			continue
		}
		if hw && time.Since(lastScan) > scanEvery {
			p.l.checkTimeouts(p.ctxs)
			for _, c := range p.ctxs {
				c.revive()
			}
			lastScan = time.Now()
		}
		if p.inflight() == 0 {
			// Nothing can complete without a wake: block. A submit kicks
			// after it raised inflight, so no wake-up is lost. A dead ctx
			// waiting for revival needs the periodic scan even when idle.
			if !wait(hw && p.anyDead()) {
				return
			}
			continue
		}
		if p.notify {
			// Completions kick us; hardware work in flight still needs the
			// periodic timeout scan.
			if !wait(hw) {
				return
			}
			continue
		}
		// Hardware work in flight, no notification and nothing ready: yield
		// a few times (completions are often microseconds away), then park
		// on every queue of this poller at once.
		idle++
		if idle < 32 {
			runtime.Gosched()
			continue
		}
		select {
		case <-p.l.stopCh:
			return
		case <-p.wake:
			continue
		default:
		}
		p.park(scanEvery)
	}
}

// park waits until any of the poller's queues may hold a completion, or
// up to d. Real device queues are armed (priority-1 CQ doorbell) and waited
// on together in one poll(2) (uacce.WaitAny); after arming they are checked
// once more, since a completion that landed before the arm raised no
// interrupt (poll() itself also reports a CQ that already holds one).
// Queues without descriptors (the tests' fake engines) fall back to a short
// wait on one queue.
func (p *poller) park(d time.Duration) {
	var uqs []uacce.Queue
	fds := true
	for _, c := range p.ctxs {
		q, ok := c.arm()
		if !ok {
			fds = fds && c.dead.Load()
			continue
		}
		uqs = append(uqs, q)
	}
	if fds && len(uqs) > 0 {
		for _, c := range p.ctxs {
			if c.reap(64) > 0 {
				return
			}
		}
		if _, err := uacce.WaitAny(uqs, d); err == nil {
			return
		}
		// closed or disabled under us: the reap and scan of the loop see
		// it; do not spin while they do.
		select {
		case <-p.wake:
		case <-time.After(time.Millisecond):
		}
		return
	}
	for _, c := range p.ctxs {
		if c.inflight.Load() > 0 && !c.dead.Load() {
			start := time.Now()
			c.queue().wait(200 * time.Microsecond)
			if time.Since(start) < 5*time.Microsecond {
				time.Sleep(time.Microsecond)
			}
			return
		}
	}
}

func (p *poller) anyDead() bool {
	for _, c := range p.ctxs {
		if c.dead.Load() {
			return true
		}
	}
	return false
}
