package blockstore

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// While a commit is between its snapshot and its index transaction (blocked
// in fdatasync here), readers and writers proceed without waiting, new
// versions avoid both the committed and the in-flight slots, and everything
// ends up committed and correct.
func TestCommitDoesNotBlockIO(t *testing.T) {
	for _, failIt := range []bool{false, true} {
		dir := t.TempDir()
		bs := 4096
		s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
		f := createFile(t, s, "a")
		want := compressible(6*bs, 1)
		mustWrite(t, f, want, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		entered, release := make(chan struct{}), make(chan struct{})
		var first atomic.Bool
		s.hooks = &testHooks{fail: func(op, path string) error {
			if op == "sync" && first.CompareAndSwap(false, true) {
				entered <- struct{}{} // only the first fdatasync blocks
				<-release
				if failIt {
					return errInjected
				}
			}
			return nil
		}}
		v2 := compressible(2*bs, 2)
		mustWrite(t, f, v2, 0) // blocks 0,1: new versions in the other slot
		copy(want, v2)
		done := make(chan error)
		go func() { done <- s.commit(t.Context(), nil) }()
		<-entered
		// The commit is in flight: I/O must not block.
		ioDone := make(chan struct{})
		go func() {
			defer close(ioDone)
			checkContent(t, f, want)
			v3 := compressible(3*bs, 3) // blocks 0..2: 0,1 have both slots busy -> stay dirty
			mustWrite(t, f, v3, 0)
			copy(want, v3)
			if err := f.Flush(); err != nil {
				t.Error(err)
			}
			if err := f.Truncate(int64(5*bs + 10)); err != nil {
				t.Error(err)
			}
			want = want[:5*bs+10]
			if err := f.PunchHole(int64(3*bs), int64(bs)); err != nil {
				t.Error(err)
			}
			clear(want[3*bs : 4*bs])
			checkContent(t, f, want)
		}()
		select {
		case <-ioDone:
		case <-time.After(time.Minute): // the fdatasync is held until release
			t.Fatal("I/O blocked while a commit was in fdatasync")
		}
		close(release)
		err := <-done
		if failIt != (err != nil) {
			t.Fatalf("commit: %v (injected failure %v)", err, failIt)
		}
		s.hooks = nil
		checkContent(t, f, want)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		checkContent(t, f, want)
		f.Close()
		s.abandon()
		s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
		f = openFile(t, s, "a")
		checkContent(t, f, want)
		f.Close()
		rep, err := s.Fsck(FsckOptions{})
		if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
			t.Fatalf("fsck: %v %v", err, rep)
		}
		if !bytes.Equal(want[:10], compressible(3*bs, 3)[:10]) {
			t.Fatal("model bookkeeping")
		}
		s.Close()
	}
}
