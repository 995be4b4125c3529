package blockstore

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
)

// Size returns the logical size.
func (f *File) Size() int64 {
	e := f.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.size
}

// DiskUsage returns the bytes the backing file occupies (st_blocks*512).
func (f *File) DiskUsage() int64 {
	e := f.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0
	}
	du, err := diskUsage(e.f)
	if err != nil {
		return 0
	}
	return du
}

// ID returns the file ID.
func (f *File) ID() FileID { return f.e.id }

// Flush writes the dirty blocks of the file to its backing file. It does
// not commit: the records become part of the index at the next commit
// (commit interval, Sync, Store.Close), which a crash before it loses. It
// reports the file's write-back failures this handle has not reported yet
// (a failed background commit or write-out of this file's data).
func (f *File) Flush() error { return f.FlushReport(&f.errs) }

// FlushReport is Flush reporting the failures not yet reported through c
// instead of this handle's own cursor: a caller that serves several users
// through one File (fs: one FUSE handle each) gives each its cursor, so
// that a failure reaches every writer and no reader (NewErrCursor).
func (f *File) FlushReport(c *ErrCursor) error {
	if err := f.check(); err != nil {
		return err
	}
	e := f.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	var err error
	if len(e.dirty) > 0 {
		err = e.writeOut(context.Background(), e.dirtyList())
	}
	if werr := e.reportErr(c); werr != nil && err == nil {
		err = werr
	}
	return err
}

// Sync returns when the file's data and its index entries are durable. It
// also reports the file's write-back failures this handle has not reported
// yet, even when this commit succeeded.
func (f *File) Sync() error { return f.SyncReport(&f.errs) }

// SyncReport is Sync reporting through cursor c (see FlushReport).
func (f *File) SyncReport(c *ErrCursor) error {
	if err := f.check(); err != nil {
		return err
	}
	e := f.e
	err := e.s.commit(context.Background(), e)
	e.mu.Lock()
	if werr := e.reportErr(c); werr != nil && err == nil {
		err = werr
	}
	e.mu.Unlock()
	return err
}

// NewErrCursor returns a cursor that reports the file's write-back
// failures from now on (and one nobody has reported yet), for
// FlushReport and SyncReport.
func (f *File) NewErrCursor() *ErrCursor {
	e := f.e
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.newErrCursor()
	return &c
}

// Close drops this handle's reference. The dirty blocks are written out; the
// last close of an unlinked file drops its index entries. Like Flush, it
// reports the write-back failures this handle has not reported yet.
func (f *File) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return nil
	}
	e, s := f.e, f.e.s
	e.mu.Lock()
	var err error
	if !e.closed && len(e.dirty) > 0 && !e.unlinked {
		err = e.writeOut(context.Background(), e.dirtyList())
	}
	if werr := e.reportErr(&f.errs); werr != nil && err == nil && !e.unlinked {
		err = werr
	}
	e.mu.Unlock()
	s.mu.Lock()
	e.refs--
	last := e.refs == 0
	s.mu.Unlock()
	if !last {
		return err
	}
	e.mu.Lock()
	// unlinked is read under mu: Unlinked sets it concurrently. If it is set
	// after this point, Unlinked sees refs == 0 and commits the drop itself.
	unlinked := e.unlinked
	needCommit := !e.closed && (unlinked || e.hasChanges())
	if !needCommit {
		s.releaseIdle([]*inode{e})
	}
	e.mu.Unlock()
	if needCommit && unlinked {
		if cerr := s.commit(context.Background(), e); err == nil {
			err = cerr
		}
	} else if needCommit && s.closedPending() > maxClosedPending {
		s.kickCommit()
	}
	return err
}

// Truncate sets the logical size. Shrinking drops the blocks past the end
// (at the next commit) and zeroes the tail of the new last block.
func (f *File) Truncate(size int64) error {
	if err := f.check(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrInvalid, size)
	}
	if size > MaxFileSize {
		return fmt.Errorf("%s: truncate to %d: %w", f.e.path, size, ErrTooLarge)
	}
	e, s := f.e, f.e.s
	bs := int64(s.bs)
	if err := s.budget.reserve(context.Background(), bs, s.kickPressure, s.reclaimStuck); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := int64(0)
	defer func() { s.budget.release(bs - used) }()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if size < e.size {
		first := numBlocks(size, s.bs)
		e.dropBlocks(first)
		if in := size % bs; in != 0 {
			if err := e.zeroRange(size/bs, int(in), s.bs-int(in), &used); err != nil {
				return err
			}
		}
	}
	e.size = size
	return nil
}

// dropBlocks makes every block >= first a hole. Caller holds mu.
func (e *inode) dropBlocks(first int64) {
	var bl []int64
	for b := range e.dirty {
		if b >= first {
			bl = append(bl, b)
		}
	}
	for b := range e.pending {
		if b >= first {
			bl = append(bl, b)
		}
	}
	for b := range e.committed {
		if b >= first {
			bl = append(bl, b)
		}
	}
	for b := range e.committing {
		if b >= first {
			bl = append(bl, b)
		}
	}
	for _, b := range bl {
		e.dropDirty(b)
		e.makeHole(b)
	}
}

// zeroRange zeroes bytes [in, in+n) of block b, as a read-modify-write in
// the dirty cache, when the block holds data. used accounts a newly dirtied
// block against the caller's budget reservation (one block). Caller holds mu.
func (e *inode) zeroRange(b int64, in, n int, used *int64) error {
	bs := e.s.bs
	if buf, ok := e.dirty[b]; ok {
		clear(buf[in : in+n])
		return nil
	}
	en, ok := e.current(b)
	if !ok || (en.bad == nil && int(en.RawLen) <= in) {
		return nil // a hole, or the record's data ends before the range
	}
	got := map[int64][]byte{}
	need := e.fromCache([]*fetched{{block: b, en: en}}, got)
	if len(need) > 0 {
		if err := e.fetch(context.Background(), need); err != nil {
			return err
		}
		if need[0].err != nil {
			return need[0].err
		}
		got[b] = need[0].data
	}
	buf := make([]byte, bs)
	copy(buf, got[b])
	clear(buf[in : in+n])
	e.dirty[b] = buf
	*used += int64(bs)
	return nil
}

// PunchHole makes the logical range [off, off+n) read as zeros; the size does
// not change.
func (f *File) PunchHole(off, n int64) error {
	if err := f.check(); err != nil {
		return err
	}
	if off < 0 || n < 0 {
		return fmt.Errorf("%w: punch hole %d+%d", ErrInvalid, off, n)
	}
	e, s := f.e, f.e.s
	bs := int64(s.bs)
	if err := s.budget.reserve(context.Background(), 2*bs, s.kickPressure, s.reclaimStuck); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := int64(0)
	defer func() { s.budget.release(2*bs - used) }()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	end := min(off+n, e.size)
	if off >= end {
		return nil
	}
	// Only blocks with state need work (the others are holes already): one
	// pass over the maps, not one per block of the range.
	first, last := off/bs, (end-1)/bs
	for _, b := range e.stateBlocks(first, last) {
		bStart := b * bs
		lo := max(off, bStart) - bStart
		hi := min(end, bStart+bs) - bStart
		if lo == 0 && hi == bs || bStart+hi == e.size && lo == 0 {
			// Whole block (or the whole used part of the last block).
			e.dropDirty(b)
			e.makeHole(b)
		} else if err := e.zeroRange(b, int(lo), int(hi-lo), &used); err != nil {
			return err
		}
	}
	return nil
}

// stateBlocks returns, sorted, the blocks in [first, last] that have dirty,
// pending, committing or committed state. Caller holds mu.
func (e *inode) stateBlocks(first, last int64) []int64 {
	set := map[int64]struct{}{}
	for _, keys := range []iter.Seq[int64]{maps.Keys(e.dirty), maps.Keys(e.pending), maps.Keys(e.committing), maps.Keys(e.committed)} {
		for b := range keys {
			if b >= first && b <= last {
				set[b] = struct{}{}
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Allocate applies fallocate mode 0 (keepSize false: the size grows to at
// least off+n) or FALLOC_FL_KEEP_SIZE (no logical change) semantics. The
// store does not reserve backing space ahead of writes.
func (f *File) Allocate(off, n int64, keepSize bool) error {
	if err := f.check(); err != nil {
		return err
	}
	if off < 0 || n <= 0 {
		return fmt.Errorf("%w: allocate %d+%d", ErrInvalid, off, n)
	}
	if off > MaxFileSize || n > MaxFileSize-off {
		return fmt.Errorf("%s: allocate %d+%d: %w", f.e.path, off, n, ErrTooLarge)
	}
	e := f.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if !keepSize && off+n > e.size {
		e.size = off + n
	}
	return nil
}

// dataBlocks returns the sorted blocks >= from that hold data (dirty or with
// a record). Caller holds mu.
func (e *inode) dataBlocks(from int64) []int64 {
	set := map[int64]bool{}
	for b := range e.dirty {
		if b >= from {
			set[b] = true
		}
	}
	for _, keys := range []iter.Seq[int64]{maps.Keys(e.committed), maps.Keys(e.committing)} {
		for b := range keys {
			if b >= from {
				if _, ok := e.current(b); ok {
					set[b] = true
				}
			}
		}
	}
	for b, p := range e.pending {
		if b >= from && p.Loc != locNone {
			set[b] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// SeekData returns the first offset >= off that is in a block holding data
// (SEEK_DATA); ErrNoData at or past the end or when only holes follow.
func (f *File) SeekData(off int64) (int64, error) {
	return f.seek(off, func(e *inode, bs int64) (int64, error) {
		if l := e.dataBlocks(off / bs); len(l) > 0 && l[0]*bs < e.size {
			return max(off, l[0]*bs), nil
		}
		return 0, ErrNoData
	})
}

// SeekHole returns the first offset >= off in a hole (SEEK_HOLE); the end of
// the file counts as a hole. ErrNoData at or past the end.
func (f *File) SeekHole(off int64) (int64, error) {
	return f.seek(off, func(e *inode, bs int64) (int64, error) {
		b := off / bs
		for _, d := range e.dataBlocks(b) {
			if d != b {
				break
			}
			b++
		}
		return min(max(off, b*bs), e.size), nil
	})
}

// seek is the common part of SeekData and SeekHole: it checks the handle
// and off (ErrInvalid when negative, ErrNoData at or past the end), then
// calls find with the content lock held for reading and the block size.
func (f *File) seek(off int64, find func(e *inode, bs int64) (int64, error)) (int64, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	e := f.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	if off >= e.size {
		return 0, ErrNoData
	}
	return find(e, int64(e.s.bs))
}
