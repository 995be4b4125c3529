package blockstore

import (
	"context"
	"errors"
	"testing"
)

func TestCtxMutex(t *testing.T) {
	var m ctxMutex
	if err := m.LockContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.LockContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("LockContext of a held mutex with an ended context: %v", err)
	}
	m.Unlock()
	if err := m.LockContext(ctx); err != nil {
		t.Fatalf("LockContext of a free mutex: %v (a free mutex is taken even with an ended context)", err)
	}
	m.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("Unlock of an unlocked mutex did not panic")
		}
	}()
	m.Unlock()
}
