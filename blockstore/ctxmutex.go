package blockstore

import (
	"context"
	"sync"
)

// ctxMutex is a mutex whose Lock can also be waited for with a context
// (LockContext): a Sync queued behind a long commit group can be
// interrupted. The zero value is an unlocked mutex.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{} // holds one token while locked
}

func (m *ctxMutex) init() { m.once.Do(func() { m.ch = make(chan struct{}, 1) }) }

// Lock waits for the mutex.
func (m *ctxMutex) Lock() {
	m.init()
	m.ch <- struct{}{}
}

// LockContext waits for the mutex or for ctx to end, whichever comes
// first; it returns ctx.Err() without the mutex in the second case.
func (m *ctxMutex) LockContext(ctx context.Context) error {
	m.init()
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the mutex; unlocking an unlocked mutex is a fatal bug,
// as with sync.Mutex.
func (m *ctxMutex) Unlock() {
	m.init()
	select {
	case <-m.ch:
	default:
		panic("blockstore: unlock of unlocked ctxMutex")
	}
}
