package blockstore

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// ENOSPC while writing records or syncing: Sync reports ErrNoSpace, the
// data stays readable from the dirty cache or pending records, nothing
// partial is committed, and a later Sync (space back) makes it durable.
func TestFaultNoSpace(t *testing.T) {
	for _, op := range []string{"write", "sync"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			bs := 4096
			s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
			f := createFile(t, s, "a")
			v1 := compressible(4*bs, 1)
			mustWrite(t, f, v1, 0)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			var full atomic.Bool
			full.Store(true)
			s.hooks = &testHooks{fail: func(o, path string) error {
				if o == op && full.Load() {
					return syscall.ENOSPC
				}
				return nil
			}}
			v2 := append([]byte(nil), v1...)
			copy(v2[100:], compressible(2*bs, 9))
			mustWrite(t, f, v2[100:100+2*bs], 100) // accepted into the dirty cache
			if err := f.Sync(); !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Sync on a full disk: %v, want ErrNoSpace", err)
			}
			checkContent(t, f, v2) // still readable
			// The committed index still describes v1 completely.
			rep, err := s.Fsck(FsckOptions{})
			if err == nil && !rep.Clean() {
				t.Fatalf("fsck on a full disk: %v", rep)
			}
			full.Store(false)
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync after space came back: %v", err)
			}
			f.Close()
			s.abandon()
			s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
			defer s.Close()
			f = openFile(t, s, "a")
			checkContent(t, f, v2)
			f.Close()
		})
	}
}

var errInjected = syscall.EIO
