package uacce

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// WaitAny blocks until any of qs reports a completion the driver may not
// have consumed, or until timeout: one poll(2) over all their descriptors
// when every queue is a real device queue of one kernel (a poller that owns
// several queues parks on all of them at once, instead of on one while the
// others wait). Otherwise (emulated queues, which notify their users
// directly and normally never get here) it waits on qs[0] alone for at
// most a millisecond. As
// with Queue.Wait, a queue only wakes if its driver armed the event with a
// priority-1 CQ doorbell, and a wake is only a hint: the caller checks the
// CQs. A queue closed or closing is left out; ErrClosed when all are.
// ErrQueueDisabled (wrapped) when a descriptor reports an error event.
func WaitAny(qs []Queue, timeout time.Duration) (bool, error) {
	if len(qs) == 0 {
		return false, nil
	}
	dqs := make([]*devQueue, 0, len(qs))
	for _, q := range qs {
		dq, ok := q.(*devQueue)
		if !ok || (len(dqs) > 0 && dq.k != dqs[0].k) {
			return qs[0].Wait(min(timeout, time.Millisecond))
		}
		dqs = append(dqs, dq)
	}
	// Hold a waiter reference on each open queue so Close cannot close a
	// descriptor while it is in the poll set (the protocol of Wait).
	var held []*devQueue
	for _, q := range dqs {
		if q.enterWait() {
			held = append(held, q)
		}
	}
	defer func() {
		for _, q := range held {
			q.leaveWait()
		}
	}()
	if len(held) == 0 {
		return false, ErrClosed
	}
	fds := make([]int, len(held))
	for i, q := range held {
		fds[i] = q.fd
	}
	deadline := time.Now().Add(timeout)
	for {
		ready, bad, err := held[0].k.PollMany(fds, timeout)
		if errors.Is(err, syscall.EINTR) {
			timeout = max(time.Until(deadline), 0)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("uacce: poll over %d queues: %w", len(fds), err)
		}
		any := false
		for i := range fds {
			if bad[i] {
				return false, fmt.Errorf("uacce: %s: poll error event: %w", held[i].info.Device, ErrQueueDisabled)
			}
			any = any || ready[i]
		}
		return any, nil
	}
}
