package blockstore

import (
	"context"
	"fmt"
	"sync"
)

// budget is the global bound on dirty-cache bytes. Writers reserve before
// they take any inode lock and wait (honouring their context) while the
// bound is reached; the flusher writes dirty blocks out to free it.
type budget struct {
	mu    sync.Mutex // protects used, freed
	limit int64
	used  int64
	freed chan struct{} // closed (and replaced) whenever bytes are released
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, freed: make(chan struct{})}
}

// reserve takes n bytes, waiting while that would exceed the limit (a single
// reservation larger than the limit proceeds once nothing else is reserved).
// kick is called before each wait to ask for dirty blocks to be written out;
// then reclaim (when not nil) may free the bytes of dirty blocks that could
// not be written (stuck blocks, Store.reclaimStuck): a writer never waits
// for budget that only a write-out which keeps failing could free.
func (b *budget) reserve(ctx context.Context, n int64, kick func(), reclaim func() int64) error {
	for {
		b.mu.Lock()
		if b.used+n <= b.limit || b.used == 0 {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.freed
		b.mu.Unlock()
		kick()
		if reclaim != nil && reclaim() > 0 {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for dirty-cache space: %w", ErrInterrupted, ctx.Err())
		}
	}
}

// wake releases the waiters without giving back bytes, so that they look
// again (a write-out failed: its blocks became reclaimable, reserve).
func (b *budget) wake() {
	b.mu.Lock()
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// release gives back n bytes.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

func (b *budget) below(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used < n
}

func (b *budget) usedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
