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

// FlushContext is Flush honouring ctx (see FlushReportContext).
func (f *File) FlushContext(ctx context.Context) error { return f.FlushReportContext(ctx, &f.errs) }

// FlushReport is Flush reporting the failures not yet reported through c
// instead of this handle's own cursor: a caller that serves several users
// through one File (fs: one FUSE handle each) gives each its cursor, so
// that a failure reaches every writer and no reader (NewErrCursor).
func (f *File) FlushReport(c *ErrCursor) error {
	return f.FlushReportContext(context.Background(), c)
}

// FlushReportContext is FlushReport whose write-out honours ctx: when ctx
// ends while the blocks are being compressed, it returns an error wrapping
// ErrInterrupted and ctx.Err(), and the blocks stay dirty, unchanged, for
// the next flush or commit (nothing is lost). The wait for the content
// lock is not interruptible (see File.TruncateContext).
func (f *File) FlushReportContext(ctx context.Context, c *ErrCursor) error {
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
		err = e.writeOut(ctx, e.dirtyList())
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
	return f.SyncReportContext(context.Background(), c)
}

// SyncReportContext is SyncReport whose commit honours ctx while it
// compresses the file's dirty blocks: it then returns an error wrapping
// ErrInterrupted and ctx.Err(), the blocks stay dirty and nothing of the
// file is committed by this call (the next commit takes it all). Once the
// blocks are written the commit runs to its end (fdatasync and the index
// transaction are not interrupted half-way). The wait for a commit
// already running (the store's commit lock) is interruptible too.
func (f *File) SyncReportContext(ctx context.Context, c *ErrCursor) error {
	if err := f.check(); err != nil {
		return err
	}
	e := f.e
	err := e.s.commit(ctx, e)
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
//
// Close takes no context: its caller (fs: FUSE RELEASE) has nobody to
// interrupt it. The kernel sends RELEASE after the last close(2) without
// waiting for the answer and never interrupts it; the close(2) a process
// waits on is FLUSH (FlushReportContext), which is interruptible. A
// release that stopped half-way would only leave the blocks dirty for the
// next commit.
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
	return f.TruncateContext(context.Background(), size)
}

// TruncateContext is Truncate honouring ctx while it waits for dirty-cache
// space and while it reads the new last block to zero its tail. When ctx
// ends it returns an error wrapping ErrInterrupted and ctx.Err().
//
// Contract: a truncate that fails (interrupted, or the tail block cannot
// be read) changes nothing: every step that can fail runs before the
// first change, so the size, the blocks and the dirty cache are as before.
// The wait for the content lock itself is not interruptible (sync.RWMutex):
// an interrupt that arrives meanwhile is seen once the lock is taken.
func (f *File) TruncateContext(ctx context.Context, size int64) error {
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
	if err := s.budget.reserve(ctx, bs, s.kickPressure, s.reclaimStuck); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := int64(0)
	defer func() { s.budget.release(bs - used) }()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if err := interrupted(ctx, e.path, "truncate"); err != nil {
		return err
	}
	if size < e.size {
		var tail zeroPart
		if in := size % bs; in != 0 {
			var err error
			if tail, err = e.loadZero(ctx, size/bs, int(in), s.bs-int(in)); err != nil {
				return err
			}
		}
		// Nothing below fails: the truncate applies whole.
		e.applyZero(tail, &used)
		e.dropBlocks(numBlocks(size, s.bs))
	}
	e.size = size
	return nil
}

// interrupted returns an ErrInterrupted error for op on path when ctx has
// ended, else nil.
func interrupted(ctx context.Context, path, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w: %w", path, op, ErrInterrupted, err)
	}
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

// zeroPart is the zeroing of bytes [in, in+n) of one block, prepared by
// loadZero and applied by applyZero. buf nil: nothing to zero (a hole, or
// the record's data ends before the range).
type zeroPart struct {
	b     int64
	in, n int
	buf   []byte
	fresh bool // buf is a copy of the record's data, not yet in the dirty cache
}

// loadZero prepares zeroing bytes [in, in+n) of block b: a read-modify-
// write in the dirty cache when the block holds data. It reads (and
// decodes, honouring ctx) a block that is not dirty, and changes nothing,
// so that a caller can load every block it needs before changing any.
// Caller holds mu.
func (e *inode) loadZero(ctx context.Context, b int64, in, n int) (zeroPart, error) {
	z := zeroPart{b: b, in: in, n: n}
	if buf, ok := e.dirty[b]; ok {
		z.buf = buf
		return z, nil
	}
	en, ok := e.current(b)
	if !ok || (en.bad == nil && int(en.RawLen) <= in) {
		return z, nil
	}
	got := map[int64][]byte{}
	need := e.fromCache([]*fetched{{block: b, en: en}}, got)
	if len(need) > 0 {
		if err := e.fetch(ctx, need); err != nil {
			return z, err
		}
		if need[0].err != nil {
			return z, need[0].err
		}
		got[b] = need[0].data
	}
	z.buf = make([]byte, e.s.bs)
	copy(z.buf, got[b])
	z.fresh = true
	return z, nil
}

// applyZero zeroes what loadZero prepared. used accounts a newly dirtied
// block against the caller's budget reservation (one block each). Caller
// holds mu exclusively, since loadZero.
func (e *inode) applyZero(z zeroPart, used *int64) {
	if z.buf == nil {
		return
	}
	clear(z.buf[z.in : z.in+z.n])
	if z.fresh {
		e.dirty[z.b] = z.buf
		*used += int64(e.s.bs)
	}
}

// PunchHole makes the logical range [off, off+n) read as zeros; the size does
// not change.
func (f *File) PunchHole(off, n int64) error {
	return f.PunchHoleContext(context.Background(), off, n)
}

// PunchHoleContext is PunchHole honouring ctx while it waits for
// dirty-cache space and while it reads the partial blocks at the ends of
// the range. Like TruncateContext, a punch that fails changes nothing:
// both partial blocks are loaded before any block changes.
func (f *File) PunchHoleContext(ctx context.Context, off, n int64) error {
	if err := f.check(); err != nil {
		return err
	}
	if off < 0 || n < 0 {
		return fmt.Errorf("%w: punch hole %d+%d", ErrInvalid, off, n)
	}
	e, s := f.e, f.e.s
	bs := int64(s.bs)
	if err := s.budget.reserve(ctx, 2*bs, s.kickPressure, s.reclaimStuck); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := int64(0)
	defer func() { s.budget.release(2*bs - used) }()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if err := interrupted(ctx, e.path, "punch hole"); err != nil {
		return err
	}
	end := min(off+n, e.size)
	if off >= end {
		return nil
	}
	// Only blocks with state need work (the others are holes already): one
	// pass over the maps, not one per block of the range.
	first, last := off/bs, (end-1)/bs
	var whole []int64
	var parts []zeroPart // at most two: the range's first and last block
	for _, b := range e.stateBlocks(first, last) {
		bStart := b * bs
		lo := max(off, bStart) - bStart
		hi := min(end, bStart+bs) - bStart
		if lo == 0 && hi == bs || bStart+hi == e.size && lo == 0 {
			// Whole block (or the whole used part of the last block).
			whole = append(whole, b)
			continue
		}
		z, err := e.loadZero(ctx, b, int(lo), int(hi-lo))
		if err != nil {
			return err
		}
		parts = append(parts, z)
	}
	// Nothing below fails: the punch applies whole.
	for _, z := range parts {
		e.applyZero(z, &used)
	}
	for _, b := range whole {
		e.dropDirty(b)
		e.makeHole(b)
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
	return f.AllocateContext(context.Background(), off, n, keepSize)
}

// AllocateContext is Allocate honouring ctx. Allocate waits for nothing
// but the content lock (which is not interruptible): an interrupt that
// arrived meanwhile is seen once the lock is taken, and then nothing
// changes.
func (f *File) AllocateContext(ctx context.Context, off, n int64, keepSize bool) error {
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
	if err := interrupted(ctx, e.path, "allocate"); err != nil {
		return err
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
