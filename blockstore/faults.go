package blockstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Fault containment (DESIGN §4 invariant 8): how a file's write-back
// failures reach its writers, why they never pin the dirty budget, and how
// far the backing filesystem lets a file grow. See doc.go ("Write-back
// error", "Stuck block", "Storable size").

// MinCommitInterval is the shortest interval the background commit runs
// at: a shorter Options.CommitInterval is raised to it, so a tiny value
// cannot make an idle server spin a core.
const MinCommitInterval = 100 * time.Millisecond

// commitInterval is the interval the flusher commits at for the option
// value d: 0 means the default, < 0 disables the timer, and positive
// values are at least MinCommitInterval (or floor, when > 0: tests).
func commitInterval(d, floor time.Duration) time.Duration {
	switch {
	case d == 0:
		return 5 * time.Second
	case d < 0:
		return d
	}
	if floor <= 0 {
		floor = MinCommitInterval
	}
	return max(d, floor)
}

// noteErr records a write-back failure of the file (errseq, as the kernel
// does for a page-cache mapping): every handle that has not reported a
// failure since it last looked reports the latest one at its next Flush,
// Sync or Close. Failures nobody has reported yet are joined, so none is
// lost. Caller holds mu exclusively.
func (e *inode) noteErr(err error) {
	if err == nil {
		return
	}
	if e.errReported {
		e.lastErr = nil
	}
	e.lastErr = errors.Join(e.lastErr, err)
	e.errReported = false
	e.errSeq++
}

// ErrCursor is one handle's position in its file's write-back failures
// (see File.FlushReport). The zero value is not useful: get one from
// File.NewErrCursor.
type ErrCursor struct{ seq uint64 }

// newErrCursor starts a cursor for a new handle: it reports only failures
// after now, except a failure nobody has reported yet (like errseq_sample:
// the first opener after an unwatched failure still learns of it). Caller
// holds mu.
func (e *inode) newErrCursor() ErrCursor {
	if e.errSeq > 0 && !e.errReported {
		return ErrCursor{seq: e.errSeq - 1}
	}
	return ErrCursor{seq: e.errSeq}
}

// reportErr returns the file's latest write-back failure if c has not
// reported it yet, and moves c past it. Caller holds mu exclusively.
func (e *inode) reportErr(c *ErrCursor) error {
	if c.seq == e.errSeq {
		return nil
	}
	c.seq = e.errSeq
	e.errReported = true
	return e.lastErr
}

// markStuck records that dirty block b could not be written (err): it stays
// dirty for a retry only until someone needs its budget (reclaimStuck).
// Caller holds mu exclusively.
func (e *inode) markStuck(b int64, err error) {
	if e.stuck == nil {
		e.stuck = make(map[int64]error)
	}
	e.stuck[b] = err
}

// retryStuck writes out the stuck dirty blocks of e again; it returns the
// failure when they still cannot be written (so the writers of a file
// whose blocks cannot be stored get the error, not a growing cache), nil
// when there are none left. Caller holds mu exclusively.
func (e *inode) retryStuck(ctx context.Context) error {
	var bl []int64
	for b := range e.stuck {
		if _, ok := e.dirty[b]; ok {
			bl = append(bl, b)
		} else {
			delete(e.stuck, b)
		}
	}
	if len(bl) == 0 {
		return nil
	}
	slices.Sort(bl)
	return e.writeOut(ctx, bl)
}

// dropStuck drops the stuck dirty blocks of e and reports the loss through
// the file's write-back failures. It returns the bytes given back to the
// budget. Caller holds mu exclusively.
func (e *inode) dropStuck() int64 {
	var freed int64
	var cause error
	for b, err := range e.stuck {
		if _, ok := e.dirty[b]; ok {
			delete(e.dirty, b)
			freed += int64(e.s.bs)
			cause = err
		}
	}
	clear(e.stuck)
	if freed > 0 {
		e.noteErr(fmt.Errorf("%s: %d bytes of unwritten changes dropped to free dirty-cache space: %w", e.path, freed, cause))
		e.s.log.Error("blockstore: dropped dirty blocks that could not be written", "file", e.path, "bytes", freed, "err", cause)
	}
	return freed
}

// reclaimStuck frees the budget of the stuck dirty blocks of every open
// file: each file's stuck blocks are written out once more, and dropped
// (the loss recorded, dropStuck) when that fails again. budget.reserve
// calls it for a writer that would otherwise wait for budget that only a
// write-out that keeps failing could free. It returns the bytes freed.
// Caller holds no inode lock.
func (s *Store) reclaimStuck() int64 {
	var freed int64
	for _, e := range s.snapshotInodes() {
		e.mu.Lock()
		if !e.closed && len(e.stuck) > 0 {
			before := e.dirtyBytes()
			// Not the waiter's context: an interrupted retry would
			// read as a failure below and drop the blocks.
			if err := e.retryStuck(context.Background()); err != nil {
				s.budget.release(e.dropStuck())
			}
			freed += before - e.dirtyBytes()
		}
		e.mu.Unlock()
	}
	return freed
}

// maxStorable returns the largest logical size whose blocks the backing
// filesystem can hold (both slots of the last block below its maximum file
// size), probed once per store; at most MaxFileSize.
func (s *Store) maxStorable() int64 {
	s.limitOnce.Do(func() {
		mb := probeMaxFileSize(s.dir)
		s.maxData = storableSize(mb, s.bs)
		if s.maxData < MaxFileSize {
			s.log.Info("blockstore: the backing filesystem limits file sizes", "store", s.dir, "max_backing", mb, "max_logical", s.maxData)
		}
	})
	return s.maxData
}

// storableSize is the logical size whose last block's second slot ends at
// or below maxBacking (a backing file's maximum size).
func storableSize(maxBacking int64, bs int) int64 {
	ss := slotSize(bs)
	if maxBacking < dataStart+2*ss {
		return min(int64(bs), MaxFileSize) // block 0 may still fit (inline); write-out reports the rest
	}
	blocks := (maxBacking - dataStart) / (2 * ss)
	if blocks >= MaxFileSize/int64(bs) {
		return MaxFileSize
	}
	return blocks * int64(bs)
}

// probeMaxFileSize finds the largest size a file in dir can have: the
// smaller of RLIMIT_FSIZE and the filesystem's own limit, found by a binary
// search with ftruncate on an unnamed temporary file (O_TMPFILE: nothing
// is left behind, no blocks are allocated). Where it cannot probe it
// returns math.MaxInt64 and the backing's EFBIG surfaces at write-out.
func probeMaxFileSize(dir string) int64 {
	hi := int64(math.MaxInt64)
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_FSIZE, &rl) == nil && rl.Cur < uint64(hi) {
		hi = int64(rl.Cur)
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return hi
	}
	defer unix.Close(fd)
	lo := int64(0) // known to be accepted
	for lo < hi {
		mid := lo + (hi-lo)/2 + 1
		switch err := unix.Ftruncate(fd, mid); err {
		case nil:
			lo = mid
		case unix.EFBIG, unix.EINVAL:
			hi = mid - 1
		default:
			return hi // cannot tell: no limit beyond the rlimit
		}
	}
	return lo
}
