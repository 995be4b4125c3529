package session

import (
	"runtime"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

func (f *fakeHW) opened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queues)
}

// TestReviveWaitsForFail: a ctx whose fail is still in progress (marked
// dead, queue not yet closed, pending requests not yet taken) must not be
// revived: the reviver would install a new queue that fail then closes,
// leaving the old queue open (its device still writing buffers fail hands
// to the CPU) and the ctx "alive" on a closed queue.
func TestReviveWaitsForFail(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 4)
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithPollers(0), WithRevive(time.Nanosecond))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	c := s.ctxFor(engHW, Async)
	old := c.queue().(*fakeQueue)
	n0 := f.opened()

	c.mu.Lock() // fail stops here, after marking the ctx dead
	failed := make(chan struct{})
	go func() { defer close(failed); c.fail(CauseQueueDisabled, errDisabled) }()
	for !c.dead.Load() {
		runtime.Gosched()
	}
	revived := make(chan struct{})
	go func() { defer close(revived); c.revive() }()
	// Either revive returns (right: nothing to do yet) or it opens a new
	// queue and then blocks on mu (wrong).
	for waiting := true; waiting; {
		select {
		case <-revived:
			waiting = false
		default:
			if f.opened() != n0 {
				c.mu.Unlock()
				<-failed
				<-revived
				t.Fatalf("revive opened a queue while fail was in progress (old queue closed: %v, ctx dead: %v)",
					old.closed.Load(), c.dead.Load())
			}
			runtime.Gosched()
		}
	}
	c.mu.Unlock()
	<-failed
	if !old.closed.Load() || !c.dead.Load() || f.opened() != n0 {
		t.Fatalf("after fail: old queue closed %v, dead %v, queues opened %d (was %d)", old.closed.Load(), c.dead.Load(), f.opened(), n0)
	}
	// Once fail has finished, revival proceeds.
	time.Sleep(time.Millisecond) // past the 1ns revive delay, by any clock
	c.revive()
	if c.dead.Load() || f.opened() != n0+1 || c.queue() == queue(old) {
		t.Fatalf("not revived after fail finished: dead %v, queues opened %d", c.dead.Load(), f.opened())
	}
}
