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

// A failed fdatasync in a background commit: the kernel may have dropped the
// records' dirty pages without writing them, and a second fdatasync of the
// same fd reports success (errseq). The failure must reach the file's next
// Sync, and the commit after it must write the records again before it
// fdatasyncs, instead of trusting the retry.
func TestFaultBackgroundSyncFailure(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(map[bool]string{false: "pages-kept", true: "pages-lost"}[lost], func(t *testing.T) {
			dir := t.TempDir()
			bs := 4096
			s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
			f := createFile(t, s, "a")
			v1 := compressible(4*bs, 1)
			mustWrite(t, f, v1, 0)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			v2 := append([]byte(nil), v1...)
			copy(v2[bs:], compressible(2*bs, 9))
			mustWrite(t, f, v2[bs:3*bs], int64(bs))
			if err := f.Flush(); err != nil { // records written, not committed
				t.Fatal(err)
			}
			var failures atomic.Int32
			h := &testHooks{fail: func(o, path string) error {
				if o != "sync" || failures.Load() > 0 {
					return nil
				}
				failures.Add(1)
				if lost {
					// The pages never reached the disk and were evicted.
					for b, en := range f.e.committing {
						f.e.punch(b, en.Loc)
					}
				}
				return errInjected
			}}
			s.hooks = h
			s.backgroundCommit()
			if failures.Load() != 1 || s.commitErr.Load() != 1 {
				t.Fatalf("background commit: %d injected failures, %d commit errors", failures.Load(), s.commitErr.Load())
			}
			h.mu.Lock()
			h.events = nil
			h.mu.Unlock()
			err := f.Sync()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Sync after a failed background fdatasync: %v, want EIO", err)
			}
			if lost != errors.Is(err, ErrCorrupt) {
				t.Fatalf("Sync: %v (lost records: %v)", err, lost)
			}
			h.mu.Lock()
			ev := append([]string(nil), h.events...)
			h.mu.Unlock()
			writes := 0
			for _, e := range ev {
				if e == "sync "+f.e.path {
					break
				}
				if e == "write "+f.e.path {
					writes++
				}
			}
			if want := map[bool]int{false: 2, true: 0}[lost]; writes < want {
				t.Fatalf("%d records written again before the fdatasync, want %d (events %q)", writes, want, ev)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("second Sync: %v (reported once)", err)
			}
			want := v2
			if lost {
				want = v1 // old or new, never torn or garbage
			}
			checkContent(t, f, want)
			f.Close()
			s.abandon()
			s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
			defer s.Close()
			f = openFile(t, s, "a")
			checkContent(t, f, want)
			f.Close()
			if rep, err := s.Fsck(FsckOptions{}); err != nil || !rep.Clean() {
				t.Fatalf("fsck: %v %v", rep, err)
			}
		})
	}
}

// A background commit failure reaches the file's next Flush (or Close) once.
func TestFaultBackgroundErrorFlush(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(2*bs, 3), 0)
	var fail atomic.Bool
	fail.Store(true)
	s.hooks = &testHooks{fail: func(o, path string) error {
		if o == "sync" && fail.Load() {
			return syscall.ENOSPC
		}
		return nil
	}}
	s.backgroundCommit()
	fail.Store(false)
	if err := f.Flush(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Flush after a failed background commit: %v, want ErrNoSpace", err)
	}
	if err := f.Flush(); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	fail.Store(true)
	s.backgroundCommit()
	fail.Store(false)
	if err := f.Close(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Close after a failed background commit: %v, want ErrNoSpace", err)
	}
}
