package blockstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/accelfs/accelfs/codec"
	"golang.org/x/sys/unix"
)

// inode is the open-file table entry of one backing file (one file ID),
// shared by every File handle on it, hardlinks included.
type inode struct {
	s    *Store
	id   FileID
	path string // backing path as opened (for messages)
	// fi identifies the backing file (os.SameFile): another file carrying
	// the same ID is refused, not served through this entry. Set before
	// the inode is published; immutable.
	fi os.FileInfo

	// refs is the number of open File handles; guarded by Store.mu.
	refs int

	// flightMu protects flights: the blocks readers are fetching right now
	// (read, verify, decode), so that concurrent readers and readahead fetch
	// a block once and the others wait for that fetch (see ReadAtContext).
	// An entry is added and removed by its fetcher while it holds mu shared,
	// so the table is empty whenever mu is held exclusively: an entry always
	// stands for the block's current version, and a generation used again
	// later (see blockCache.put) never meets an old entry. flightMu is taken
	// inside mu and before blockCache.mu.
	flightMu sync.Mutex
	flights  map[flightKey]*flight

	// mu is the content lock. Readers (ReadAt, Size, SeekData/Hole) hold it
	// shared; everything that changes the fields below holds it exclusively
	// (writes, truncate, write-out, commit, close). It protects all fields
	// from here to the end of the struct, and the backing file's contents
	// (f is written only under the exclusive lock; reads use pread under the
	// shared lock).
	mu            sync.RWMutex
	f             *os.File
	closed        bool  // the store closed f; every operation fails with ErrClosed
	size          int64 // logical size, including uncommitted changes
	committedSize int64
	nextGen       uint64 // generation of the next record written
	known         bool   // the index has a files entry for id
	badIndex      bool   // some of id's index keys or entries did not parse (never swept: sweepFile)
	unlinked      bool   // the last name is gone: drop the index entries at the last Close
	touched       bool   // records written since the last fdatasync
	// resync is set when a write of the size hint or an fdatasync of f
	// failed. After a failed fdatasync the kernel may have dropped the dirty
	// pages of the records written since the last successful one without
	// writing them, and a second fdatasync does not report that again
	// (errseq). So the next commit reads every pending record back,
	// verifies it and writes it again before it fdatasyncs (resyncPending).
	resync bool
	// errSeq counts the file's write-back failures and lastErr holds the
	// ones since the last time a handle reported one (errReported): a
	// failed write-out or size-hint write or fdatasync, a record
	// resyncPending found lost, stuck blocks dropped. Each handle reports
	// the failures it has not seen at its next Flush, Sync or Close
	// (noteErr, reportErr; errseq as for a kernel mapping).
	errSeq      uint64
	lastErr     error
	errReported bool
	// stuck holds the dirty blocks whose last write-out failed (with the
	// error): they stay dirty for a retry until someone needs their
	// budget (Store.reclaimStuck). Entries may name blocks that are no
	// longer dirty; only dirty ones count.
	stuck map[int64]error
	// committed is the block map as in the committed index. It changes only
	// in commit, which also holds Store.commitMu (so commit may read it
	// without mu).
	committed map[int64]entry
	// committing holds the pending changes of the commit in flight (nil when
	// none): set and cleared by commit under mu (with Store.commitMu held),
	// read by commit without mu in between.
	committing map[int64]entry
	// pending holds records written but not yet committed, and (Loc ==
	// locNone) blocks to delete from the index at the next commit.
	pending map[int64]entry
	// dirty holds blocks modified in memory (block-size buffers, bytes past
	// the logical size are zero), not yet written to the backing file.
	dirty map[int64][]byte

	// prefetching is set while a prefetch goroutine of this inode is
	// started or running (at most one per inode; see startPrefetch).
	prefetching atomic.Bool

	// lastEnd is where the current sequential stream of reads has got to
	// (the furthest end of its reads; sequential detection for readahead).
	// Atomic: readers share mu.
	lastEnd atomic.Int64
}

// flightKey names the version of a block being fetched (the inode is
// implied).
type flightKey struct {
	block int64
	gen   uint64
}

// flight is one fetch of one block in progress. data and err are set
// before done is closed and never change afterwards; data is shared with
// the cache, nobody modifies it.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

func (e *inode) dirtyBytes() int64 { return int64(len(e.dirty)) * int64(e.s.bs) }

// dirtyList returns the dirty blocks in ascending order.
func (e *inode) dirtyList() []int64 {
	l := make([]int64, 0, len(e.dirty))
	for b := range e.dirty {
		l = append(l, b)
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l
}

// hasChanges reports whether the inode has anything a commit must record.
func (e *inode) hasChanges() bool {
	return len(e.dirty) > 0 || len(e.pending) > 0 || e.size != e.committedSize || !e.known
}

// current returns the entry a read of block b must use (pending before
// committing before committed).
func (e *inode) current(b int64) (entry, bool) {
	if p, ok := e.pending[b]; ok {
		return p, p.Loc != locNone
	}
	if c, ok := e.committing[b]; ok {
		return c, c.Loc != locNone
	}
	c, ok := e.committed[b]
	return c, ok
}

// busy returns the locations of block b a new record must not overwrite:
// the committed record's and the in-flight commit's.
func (e *inode) busy(b int64) (committed, committing loc) {
	if c, ok := e.committed[b]; ok && c.bad == nil {
		committed = c.Loc
	}
	if c, ok := e.committing[b]; ok {
		committing = c.Loc
	}
	return committed, committing
}

// corrupt builds the error for a bad block and logs it once per occurrence.
func (e *inode) corrupt(b int64, err error) error {
	err = fmt.Errorf("%s: block %d (offset %d): %w", e.path, b, b*int64(e.s.bs), err)
	if !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	e.s.log.Error("blockstore: corrupt block", "file", e.path, "block", b, "err", err)
	return err
}

// punch deallocates location l of block b (never the committed record).
func (e *inode) punch(b int64, l loc) {
	off, ok := locOffset(e.s.bs, b, l)
	if !ok {
		return
	}
	n := int64(locCapacity(e.s.bs, l))
	if err := unix.Fallocate(int(e.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		e.s.log.Warn("blockstore: punching a superseded record failed (space is reclaimed by fsck --repair)", "file", e.path, "block", b, "err", err)
	}
}

// keepMtime runs op, a commit's own write to the backing file (the size
// hint, punching superseded records), and puts the backing mtime back as it
// was. Those writes change nothing a reader sees, and the backing file's
// mtime is the file's mtime (DESIGN §3): without this, `tar -x` or `cp -p`
// set a time that the next commit replaced with its own. Data records still
// move the mtime when they are written, as the fs layer expects. A utimes
// landing between the fstat and the restore (two syscalls apart) would be
// undone: accepted, the window is microseconds and only on commit.
func (e *inode) keepMtime(op func()) {
	var st unix.Stat_t
	fd := int(e.f.Fd())
	if err := unix.Fstat(fd, &st); err != nil {
		op()
		return
	}
	op()
	var after unix.Stat_t
	if unix.Fstat(fd, &after) == nil && after.Mtim == st.Mtim {
		return // nothing was written (e.g. no punch needed)
	}
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, st.Mtim}
	// utimensat(fd, NULL, ...) is futimens(3): it sets the times of fd itself.
	if _, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0,
		uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); errno != 0 {
		e.s.log.Warn("blockstore: restoring the backing mtime after a commit failed", "file", e.path, "err", errno)
	}
}

// fetched is one block read from the backing file.
type fetched struct {
	block int64
	en    entry
	data  []byte // decoded, len = en.RawLen
	err   error
}

// fetch reads, verifies and decodes the given blocks, all in one Compressor
// batch. Caller holds mu (shared or exclusive).
func (e *inode) fetch(ctx context.Context, fs []*fetched) error {
	bs := e.s.bs
	var jobs []*Job
	var jobOf []*fetched
	for _, fe := range fs {
		if fe.en.bad != nil {
			fe.err = e.corrupt(fe.block, fe.en.bad)
			continue
		}
		off, _ := locOffset(bs, fe.block, fe.en.Loc) // entries are validated
		var rec []byte
		if fe.en.Algo != 0 {
			// Decoded into a fresh buffer below: the record buffer is scratch.
			rec = e.s.getBuf()[:fe.en.recordLen()]
			defer e.s.putBuf(rec)
		} else {
			rec = make([]byte, fe.en.recordLen()) // raw: the payload is the data
		}
		n, err := e.f.ReadAt(rec, off)
		if n < len(rec) {
			if err == nil || errors.Is(err, io.EOF) {
				fe.err = e.corrupt(fe.block, fmt.Errorf("%w: record truncated (%d of %d bytes at offset %d)", ErrCorrupt, n, len(rec), off))
			} else {
				fe.err = fmt.Errorf("%s: block %d: read: %w", e.path, fe.block, err)
			}
			continue
		}
		h, err := parseRecordHeader(rec, bs)
		if err == nil {
			err = e.matches(&h, fe.block, &fe.en)
		}
		if err == nil {
			err = verifyRecordPayload(&h, rec[RecordHeaderSize:])
		}
		if err != nil {
			fe.err = e.corrupt(fe.block, fmt.Errorf("record at offset %d: %w", off, err))
			continue
		}
		payload := rec[RecordHeaderSize:]
		if h.Algo == 0 {
			fe.data = payload
			continue
		}
		jobs = append(jobs, &Job{Decompress: true, Algo: h.Algo, Src: payload, Dst: make([]byte, 0, h.RawLen), RawLen: int(h.RawLen)})
		jobOf = append(jobOf, fe)
	}
	if len(jobs) > 0 {
		if err := e.s.comp.Run(ctx, jobs); err != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		for i, j := range jobs {
			fe := jobOf[i]
			if j.Err != nil {
				if errors.Is(j.Err, codec.ErrCorrupt) || errors.Is(j.Err, codec.ErrTooLarge) || errors.Is(j.Err, codec.ErrUnknownAlgo) {
					fe.err = e.corrupt(fe.block, fmt.Errorf("%w: decode: %w", ErrCorrupt, j.Err))
				} else {
					// Not the data's fault (e.g. an engine failure the
					// Compressor could not recover from): an I/O error.
					fe.err = fmt.Errorf("%s: block %d: decompress: %w", e.path, fe.block, j.Err)
				}
				continue
			}
			if len(j.Out) != j.RawLen {
				fe.err = e.corrupt(fe.block, fmt.Errorf("%w: decoded %d bytes, want %d", ErrCorrupt, len(j.Out), j.RawLen))
				continue
			}
			fe.data = j.Out
		}
	}
	for _, fe := range fs {
		if fe.err == nil && fe.data != nil {
			if got := crc32c(fe.data); got != fe.en.RawCRC {
				fe.err = e.corrupt(fe.block, fmt.Errorf("%w: data checksum %08x, want %08x", ErrCorrupt, got, fe.en.RawCRC))
				fe.data = nil
			}
		}
	}
	return nil
}

// matches checks a record header against the index entry that points at it.
func (e *inode) matches(h *recordHeader, b int64, en *entry) error {
	switch {
	case h.ID != e.id:
		return fmt.Errorf("%w: record belongs to file %s, not %s", ErrCorrupt, h.ID, e.id)
	case h.Block != b:
		return fmt.Errorf("%w: record is for block %d", ErrCorrupt, h.Block)
	case h.Gen != en.Gen:
		return fmt.Errorf("%w: record generation %d, index says %d", ErrCorrupt, h.Gen, en.Gen)
	case h.Algo != en.Algo || h.RawLen != en.RawLen || h.StoredLen != en.StoredLen ||
		h.RawCRC != en.RawCRC || h.StoredCRC != en.StoredCRC:
		return fmt.Errorf("%w: record header does not match the index entry", ErrCorrupt)
	}
	return nil
}

// fromCache moves the blocks found in the decoded-block cache from fs into
// got and returns the rest.
func (e *inode) fromCache(fs []*fetched, got map[int64][]byte) []*fetched {
	rest := fs[:0]
	for _, fe := range fs {
		if fe.en.bad == nil {
			if data := e.s.cache.get(cacheKey{e.id, fe.block, fe.en.Gen}); data != nil {
				got[fe.block] = data
				continue
			}
		}
		rest = append(rest, fe)
	}
	return rest
}

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// usedLen is the length of b without trailing zeros.
func usedLen(b []byte) int {
	n := len(b)
	for n >= 8 && b[n-1]|b[n-2]|b[n-3]|b[n-4]|b[n-5]|b[n-6]|b[n-7]|b[n-8] == 0 {
		n -= 8
	}
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return n
}

// writeOut compresses and writes the given dirty blocks as new records
// (copy-on-write), moving them from dirty to pending. Caller holds mu
// exclusively. A block whose write fails stays dirty and becomes stuck
// (the other blocks are still written) and the first failure is returned.
// It is not recorded as a write-back failure (noteErr): while the block is
// dirty, every Flush, Sync, Close and write of the file tries it again and
// reports the failure itself; dropping it records the loss.
func (e *inode) writeOut(ctx context.Context, blocks []int64) error {
	s, bs := e.s, e.s.bs
	type out struct {
		block int64
		buf   []byte // dirty buffer
		raw   int    // bytes to store (trailing zeros dropped)
		job   *Job
	}
	var outs []*out
	var jobs []*Job
	for _, b := range blocks {
		buf, ok := e.dirty[b]
		if !ok {
			continue
		}
		limit := min(int64(bs), e.size-b*int64(bs))
		raw := 0
		if limit > 0 {
			raw = usedLen(buf[:limit])
		}
		if raw == 0 {
			e.makeHole(b)
			delete(e.dirty, b)
			s.budget.release(int64(bs))
			continue
		}
		o := &out{block: b, buf: buf, raw: raw}
		if s.algo != 0 {
			o.job = &Job{Algo: s.algo, Level: s.level, Src: buf[:raw], Dst: s.getBuf()}
			jobs = append(jobs, o.job)
		}
		outs = append(outs, o)
	}
	if len(jobs) > 0 {
		if err := s.comp.Run(ctx, jobs); err != nil {
			// The blocks stay dirty, unchanged: nothing was written.
			for _, j := range jobs {
				s.putBuf(j.Dst)
			}
			return fmt.Errorf("%s: write-out: %w: %w", e.path, ErrInterrupted, err)
		}
	}
	var failed error // the first block write that failed
	rec := s.getBuf()[:RecordHeaderSize+bs]
	defer func() {
		s.putBuf(rec)
		for _, o := range outs {
			if o.job != nil {
				s.putBuf(o.job.Dst)
			}
		}
	}()
	for _, o := range outs {
		h, n := e.encodeRecord(o.block, o.buf[:o.raw], o.job, rec)
		comLoc, cingLoc := e.busy(o.block)
		l, ok := chooseLoc(o.block, n, comLoc, cingLoc)
		if !ok {
			continue // both slots busy until the commit in flight ends: stays dirty
		}
		if err := e.writeRecord(o.block, l, rec[:n]); err != nil {
			failed = cmp.Or(failed, err)
			continue // the block stays dirty (stuck); the others still go
		}
		e.written(o.block, l, &h, o.buf[:o.raw])
	}
	if failed != nil {
		s.budget.wake() // budget waiters may reclaim the stuck blocks
	}
	return failed
}

// encodeRecord assembles in rec the record of block b holding data: the
// payload is j's output when compression saves at least 1/8 (and decodes,
// with VerifyCompression), else data raw. It returns the record's header
// and length. Caller holds mu exclusively.
func (e *inode) encodeRecord(b int64, data []byte, j *Job, rec []byte) (recordHeader, int) {
	s, raw := e.s, len(data)
	h := recordHeader{Algo: 0, ID: e.id, Block: b, Gen: e.nextGen, RawLen: uint32(raw), RawCRC: crc32c(data)}
	payload := data
	if j != nil {
		if j.Err != nil {
			s.log.Warn("blockstore: compression failed, storing the block raw", "file", e.path, "block", b, "algo", s.algo, "err", j.Err)
		} else if len(j.Out) > 0 && (raw-len(j.Out))*8 >= raw {
			// Compression saves at least 1/8: keep it (after checking it
			// decodes, when asked to).
			if err := s.verifyCompressed(j.Out, h.RawCRC, raw); err != nil {
				s.log.Error("blockstore: compressed block does not decode to its data, storing it raw", "file", e.path, "block", b, "algo", s.algo, "err", err)
			} else {
				payload = j.Out
				h.Algo, h.Level = s.algo, int8(s.level)
			}
		}
	}
	h.StoredLen = uint32(len(payload))
	h.StoredCRC = crc32c(payload)
	n := RecordHeaderSize + len(payload)
	h.marshalTo(rec[:RecordHeaderSize])
	copy(rec[RecordHeaderSize:], payload)
	return h, n
}

// written moves dirty block b, whose record (header h, data) is now at l,
// to pending (dirty -> pending): the pending record it supersedes is
// punched, the data goes to the decoded-block cache, the budget is given
// back. Caller holds mu exclusively.
func (e *inode) written(b int64, l loc, h *recordHeader, data []byte) {
	s, bs := e.s, e.s.bs
	e.touched = true
	comLoc, cingLoc := e.busy(b)
	if p, ok := e.pending[b]; ok && p.Loc != locNone && p.Loc != l && p.Loc != comLoc && p.Loc != cingLoc {
		e.punch(b, p.Loc)
	}
	en := entry{Loc: l, Algo: h.Algo, Level: h.Level, RawLen: h.RawLen, StoredLen: h.StoredLen, RawCRC: h.RawCRC, StoredCRC: h.StoredCRC, Gen: h.Gen}
	e.pending[b] = en
	e.nextGen++
	if len(data) < bs/2 {
		data = append([]byte(nil), data...)
	}
	s.cache.put(cacheKey{e.id, b, en.Gen}, data)
	delete(e.dirty, b)
	delete(e.stuck, b)
	s.budget.release(int64(bs))
}

// writeRecord writes the record rec of block b at location l. A failure
// marks the block stuck and frees what the failed write may have
// allocated at l (a pending record that was there is gone: the dirty
// block is the block's newest version). Caller holds mu exclusively.
func (e *inode) writeRecord(b int64, l loc, rec []byte) error {
	s := e.s
	off, ok := locOffset(s.bs, b, l)
	if !ok {
		err := fmt.Errorf("%s: block %d: %w", e.path, b, ErrTooLarge)
		e.markStuck(b, err)
		return err
	}
	err := s.hooks.inject("write", e.path)
	if err == nil {
		_, err = e.f.WriteAt(rec, off)
	}
	if err != nil {
		err = fmt.Errorf("%s: write block %d: %w", e.path, b, ioErr(err))
		e.markStuck(b, err)
		e.punch(b, l)
		if p, ok := e.pending[b]; ok && p.Loc == l {
			delete(e.pending, b)
		}
		return err
	}
	s.hooks.add("write " + e.path)
	return nil
}

// verifyCompressed decodes a compressed payload on the CPU and checks it
// against the raw data's checksum (only with Options.VerifyCompression).
func (s *Store) verifyCompressed(payload []byte, rawCRC uint32, rawLen int) error {
	if !s.verifyComp {
		return nil
	}
	buf := s.getBuf()
	defer s.putBuf(buf)
	out, err := codec.Decompress(s.algo, buf[:0], payload, rawLen)
	if err != nil {
		return err
	}
	if crc32c(out) != rawCRC {
		return fmt.Errorf("%w: decoded data checksum mismatch", ErrCorrupt)
	}
	return nil
}

// makeHole makes block b read as zeros from the next commit on (no record).
// Caller holds mu exclusively; b must not be dirty afterwards.
func (e *inode) makeHole(b int64) {
	_, hasCom := e.committed[b]
	_, hasCing := e.committing[b]
	comLoc, cingLoc := e.busy(b)
	if p, ok := e.pending[b]; ok && p.Loc != locNone && p.Loc != comLoc && p.Loc != cingLoc {
		e.punch(b, p.Loc)
	}
	if hasCom || hasCing {
		e.pending[b] = entry{Loc: locNone}
	} else {
		delete(e.pending, b)
	}
}

// resyncPending writes every pending record of e again, after reading it
// back and verifying it, so that the next fdatasync really writes it (see
// inode.resync). A record that no longer reads back intact is lost: its
// pending entry is dropped (the block reads as its committed version again)
// and the loss is recorded (noteErr). Caller holds mu exclusively; no commit
// is in flight (Store.commitMu held, committing nil).
func (e *inode) resyncPending() error {
	s := e.s
	blocks := make([]int64, 0, len(e.pending))
	for b, p := range e.pending {
		if p.Loc != locNone {
			blocks = append(blocks, b)
		}
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	rec := s.getBuf()
	defer s.putBuf(rec)
	for _, b := range blocks {
		p := e.pending[b]
		off, _ := locOffset(s.bs, b, p.Loc) // written by us: valid
		rec = rec[:p.recordLen()]
		n, err := e.f.ReadAt(rec, off)
		if n < len(rec) && err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: block %d: read back after a failed fdatasync: %w", e.path, b, ioErr(err))
		}
		if n == len(rec) {
			var h recordHeader
			h, err = parseRecordHeader(rec, s.bs)
			if err == nil {
				err = e.matches(&h, b, &p)
			}
			if err == nil {
				err = verifyRecordPayload(&h, rec[RecordHeaderSize:])
			}
		} else {
			err = fmt.Errorf("%w: record truncated (%d of %d bytes)", ErrCorrupt, n, len(rec))
		}
		if err != nil {
			lost := e.corrupt(b, fmt.Errorf("record written before a failed fdatasync is lost: %w", err))
			e.noteErr(lost)
			if com, _ := e.busy(b); p.Loc != com {
				e.punch(b, p.Loc)
			}
			delete(e.pending, b)
			continue
		}
		if err := s.hooks.inject("write", e.path); err != nil {
			return fmt.Errorf("%s: rewrite block %d: %w", e.path, b, ioErr(err))
		}
		if _, err := e.f.WriteAt(rec, off); err != nil {
			return fmt.Errorf("%s: rewrite block %d: %w", e.path, b, ioErr(err))
		}
		s.hooks.add("write " + e.path)
	}
	e.touched = true
	return nil
}

// dropDirty forgets dirty block b (if any).
func (e *inode) dropDirty(b int64) {
	if _, ok := e.dirty[b]; ok {
		delete(e.dirty, b)
		e.s.budget.release(int64(e.s.bs))
	}
}

// File is an open handle on a backing file's contents (like an *os.File on
// the logical data). Safe for concurrent use.
type File struct {
	e      *inode
	closed atomic.Bool
	errs   ErrCursor // this handle's write-back failures seen; guarded by e.mu
}

// newFile returns a new handle on e (which the caller has acquired).
func newFile(e *inode) *File {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &File{e: e, errs: e.newErrCursor()}
}

// ReadAt reads len(p) bytes at off; io.EOF at or after the end, like os.File.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.ReadAtContext(context.Background(), p, off)
}

// WriteAt writes p at off, extending the file as needed.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	return f.WriteAtContext(context.Background(), p, off)
}

func (f *File) check() error {
	if f.closed.Load() {
		return fmt.Errorf("%s: %w", f.e.path, ErrClosed)
	}
	return nil
}

// ReadAtContext is ReadAt with a context: cancellation while waiting for
// (de)compression returns an error wrapping ErrInterrupted.
//
// Concurrent reads of one file fetch each block once: a read that needs a
// block another read (or its readahead) is fetching waits for that fetch
// instead of reading and decoding the block again (inode.flights).
func (f *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, off)
	}
	e := f.e
	bs := e.s.bs
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if off >= e.size {
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > e.size-off {
		n = int(e.size - off)
		eof = io.EOF
	}
	spans := explodeRange(off, n, bs)
	var todo []wanted
	for _, sp := range spans {
		dst := p[sp.Pos : sp.Pos+sp.Len]
		if buf, ok := e.dirty[sp.Block]; ok {
			copy(dst, buf[sp.InBlock:])
			continue
		}
		en, ok := e.current(sp.Block)
		if !ok {
			clear(dst)
			continue
		}
		todo = append(todo, wanted{sp, en})
	}
	var raFrom, raTo int64
	if e.s.readahead > 0 && len(spans) > 0 && e.sequential(off, off+int64(n)) {
		raFrom = spans[len(spans)-1].Block + 1
		raTo = min(numBlocks(e.size, bs), raFrom+int64(e.s.readahead))
		if off > 0 && raFrom < raTo {
			// Asynchronous readahead: the read fetches only its own
			// blocks, a background prefetch fetches the next ones
			// (started first, so that both run at once).
			e.startPrefetch(raFrom, raTo)
			raFrom, raTo = 0, 0
		}
		// A stream starting at offset 0 reads its first window
		// synchronously (like the kernel's initial readahead): the
		// readahead is then in the cache when the read returns.
	}
	for len(todo) > 0 || raFrom < raTo {
		var err error
		todo, err = e.readBlocks(ctx, p, todo, raFrom, raTo)
		if err != nil {
			return 0, err
		}
		raFrom, raTo = 0, 0
	}
	return n, eof
}

// wanted is a span of a read whose block has a record.
type wanted struct {
	sp blockSpan
	en entry // the block's current entry
}

// sequential reports whether a read of [off, end) continues the stream of
// reads that has got to lastEnd, and records the read. Concurrent reads of
// one stream (the kernel's async reads and readahead) arrive out of order,
// so a read starting within the readahead distance of lastEnd, before or
// after it, is sequential, and lastEnd only moves forward then. Any other
// read is random access (no readahead) and starts a new stream at its end.
func (e *inode) sequential(off, end int64) bool {
	w := int64(e.s.readahead) * int64(e.s.bs)
	for {
		last := e.lastEnd.Load()
		if off < last-w || off > last+w {
			e.lastEnd.Store(end)
			return false
		}
		if end <= last || e.lastEnd.CompareAndSwap(last, end) {
			return true
		}
	}
}

// errFetchAbandoned is what waiters see of a fetch that ended without a
// result (a panic in it); they fetch the block themselves.
var errFetchAbandoned = errors.New("blockstore: block fetch abandoned")

// readBlocks fills the spans of todo in p. Blocks in the decoded-block
// cache are copied from it; blocks another reader is fetching are waited
// for; the rest are fetched here in one batch, together with the readahead
// blocks raFrom..raTo-1 that are neither cached nor being fetched (their
// errors are ignored: they surface to a reader that needs the block). A
// fetch of this reader is finished (and its waiters released) before it
// waits for anyone else's, so waits never form a cycle. It returns the
// spans whose fetch by another reader failed for a reason not the block's
// (that reader's context ended, an I/O error): the caller tries them again.
// Caller holds mu shared.
func (e *inode) readBlocks(ctx context.Context, p []byte, todo []wanted, raFrom, raTo int64) ([]wanted, error) {
	type waiter struct {
		w  wanted
		fl *flight
	}
	var (
		hits  []wanted
		hitD  [][]byte
		waits []waiter
		mine  []*fetched // the spans' blocks first (len(mineW)), then readahead
		mineW []wanted
		fls   []*flight // parallel to mine; nil for an entry known bad
	)
	e.flightMu.Lock()
	if e.flights == nil {
		e.flights = make(map[flightKey]*flight)
	}
	for _, w := range todo {
		if w.en.bad == nil {
			k := flightKey{w.sp.Block, w.en.Gen}
			if fl := e.flights[k]; fl != nil {
				waits = append(waits, waiter{w, fl})
				continue
			}
			if data := e.s.cache.get(cacheKey{e.id, w.sp.Block, w.en.Gen}); data != nil {
				hits = append(hits, w)
				hitD = append(hitD, data)
				continue
			}
		}
		mine = append(mine, &fetched{block: w.sp.Block, en: w.en})
		mineW = append(mineW, w)
		fls = append(fls, e.takeOff(w.sp.Block, w.en))
	}
	for b := raFrom; b < raTo; b++ {
		if _, ok := e.dirty[b]; ok {
			continue
		}
		en, ok := e.current(b)
		if !ok || en.bad != nil || e.flights[flightKey{b, en.Gen}] != nil || e.s.cache.has(cacheKey{e.id, b, en.Gen}) {
			continue
		}
		mine = append(mine, &fetched{block: b, en: en})
		fls = append(fls, e.takeOff(b, en))
	}
	e.flightMu.Unlock()

	for i, w := range hits {
		copyBlock(p[w.sp.Pos:w.sp.Pos+w.sp.Len], hitD[i], w.sp.InBlock)
	}
	if len(mine) > 0 {
		if err := e.fetchFlights(ctx, e.s.cache, mine, fls); err != nil {
			return nil, err
		}
		for i, w := range mineW {
			fe := mine[i]
			if fe.err != nil {
				return nil, fe.err
			}
			copyBlock(p[w.sp.Pos:w.sp.Pos+w.sp.Len], fe.data, w.sp.InBlock)
		}
	}
	var retry []wanted
	for _, wt := range waits {
		select {
		case <-wt.fl.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: block %d: %w: waiting for its fetch: %w", e.path, wt.w.sp.Block, ErrInterrupted, ctx.Err())
		}
		if err := wt.fl.err; err != nil {
			if errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			retry = append(retry, wt.w)
			continue
		}
		copyBlock(p[wt.w.sp.Pos:wt.w.sp.Pos+wt.w.sp.Len], wt.fl.data, wt.w.sp.InBlock)
	}
	return retry, nil
}

// takeOff registers a fetch of block b (entry en) and returns it, or nil
// for an entry known bad (fetch fails it at once). Caller holds flightMu
// and mu shared.
func (e *inode) takeOff(b int64, en entry) *flight {
	if en.bad != nil {
		return nil
	}
	fl := &flight{done: make(chan struct{})}
	e.flights[flightKey{b, en.Gen}] = fl
	return fl
}

// fetchFlights fetches fs (see fetch) for the flights fls registered for
// them, caches the blocks fetched (in c, the store's cache) and lands the flights: each gets its
// block's data or error (the whole fetch's error if it failed), is removed
// from the table and released. Caller holds mu shared.
func (e *inode) fetchFlights(ctx context.Context, c *blockCache, fs []*fetched, fls []*flight) (err error) {
	err = errFetchAbandoned
	defer func() {
		if err == nil {
			// Cached before the flight goes: a reader that no longer
			// finds the flight finds the block in the cache.
			for _, fe := range fs {
				if fe.err == nil {
					c.put(cacheKey{e.id, fe.block, fe.en.Gen}, fe.data)
				}
			}
		}
		e.flightMu.Lock()
		defer e.flightMu.Unlock()
		for i, fe := range fs {
			fl := fls[i]
			if fl == nil {
				continue
			}
			delete(e.flights, flightKey{fe.block, fe.en.Gen})
			if err != nil {
				fl.err = err
			} else {
				fl.data, fl.err = fe.data, fe.err
			}
			close(fl.done)
		}
	}()
	err = e.fetch(ctx, fs)
	return err
}

// startPrefetch starts the asynchronous readahead of blocks from..to-1: a
// goroutine that fetches those of them that are neither cached nor being
// fetched, registered in flights like any fetch (readers that need one of
// them wait for it). It does nothing when this inode already has a prefetch
// running, the store-wide limit (Store.pfSlots) is reached or the store is
// closing. The goroutine is owned by the store (Store.pfWG, cancelled and
// waited for by Close). Its errors are dropped: a reader that needs the
// block fetches it again and sees the error. Caller holds mu shared.
func (e *inode) startPrefetch(from, to int64) {
	s := e.s
	if !e.prefetching.CompareAndSwap(false, true) {
		return
	}
	select {
	case s.pfSlots <- struct{}{}:
	default:
		e.prefetching.Store(false)
		return
	}
	s.mu.Lock() // inode.mu -> Store.mu (lock order)
	if s.closed || s.closing {
		s.mu.Unlock()
		<-s.pfSlots
		e.prefetching.Store(false)
		return
	}
	s.pfWG.Add(1) // before closing is set: Close's Wait sees it
	s.mu.Unlock()
	c := s.cache
	go e.prefetch(c, from, to)
}

// prefetch is the goroutine of startPrefetch. It holds mu shared for its
// whole fetch (so flights stay empty whenever mu is held exclusively; a
// writer waits for one bounded batch) and looks at the inode afresh under
// it: the range is clipped to the current size, and a closed inode or a
// cancelled store context stops it.
func (e *inode) prefetch(c *blockCache, from, to int64) {
	s := e.s
	defer s.pfWG.Done()
	defer func() { <-s.pfSlots }()
	defer e.prefetching.Store(false)
	ctx := s.pfCtx
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed || ctx.Err() != nil {
		return
	}
	to = min(to, numBlocks(e.size, s.bs))
	var (
		fs  []*fetched
		fls []*flight
	)
	e.flightMu.Lock()
	if e.flights == nil {
		e.flights = make(map[flightKey]*flight)
	}
	for b := from; b < to; b++ {
		if _, ok := e.dirty[b]; ok {
			continue
		}
		en, ok := e.current(b)
		if !ok || en.bad != nil || e.flights[flightKey{b, en.Gen}] != nil || c.has(cacheKey{e.id, b, en.Gen}) {
			continue
		}
		fs = append(fs, &fetched{block: b, en: en})
		fls = append(fls, e.takeOff(b, en))
	}
	e.flightMu.Unlock()
	// In small batches, each landed as soon as it is done: a reader
	// waiting for the first prefetched block does not wait for the whole
	// window. Errors are dropped (see startPrefetch).
	for len(fs) > 0 {
		k := min(len(fs), prefetchBatch)
		_ = e.fetchFlights(ctx, c, fs[:k], fls[:k])
		fs, fls = fs[k:], fls[k:]
	}
}

// prefetchBatch is the number of blocks a prefetch fetches per Compressor
// batch.
const prefetchBatch = 2

// copyBlock fills dst from a decoded block's data starting at in; bytes past
// the data's end are zeros.
func copyBlock(dst, data []byte, in int) {
	c := 0
	if in < len(data) {
		c = copy(dst, data[in:])
	}
	clear(dst[c:])
}

// maxWriteChunk bounds the bytes one step of a write makes dirty.
func (e *inode) maxWriteChunk() int {
	c := e.s.budget.limit / 4
	c = min(c, 8<<20)
	c -= c % int64(e.s.bs)
	return int(max(c, int64(e.s.bs)))
}

// WriteAtContext is WriteAt with a context: cancellation while waiting for
// dirty-cache space or a read-modify-write returns ErrInterrupted (with the
// bytes written so far). A write larger than a step (DirtyLimit/4, at most
// 8 MiB) is applied in block-aligned steps: a crash may keep a prefix of it,
// in whole blocks, never part of a block's update.
func (f *File) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, off)
	}
	if off > MaxFileSize || int64(len(p)) > MaxFileSize-off {
		return 0, fmt.Errorf("%s: write at %d+%d: %w (max file size %d)", f.e.path, off, len(p), ErrTooLarge, MaxFileSize)
	}
	if lim := f.e.s.maxStorable(); len(p) > 0 && off+int64(len(p)) > lim {
		// Its records could not be written: fail now, not at write-out.
		return 0, fmt.Errorf("%s: write at %d+%d: %w (the backing filesystem stores at most %d bytes of a file)", f.e.path, off, len(p), ErrTooLarge, lim)
	}
	done := 0
	for _, n := range writeSteps(off, len(p), f.e.s.bs, f.e.maxWriteChunk()) {
		if err := f.e.writeChunk(ctx, p[done:done+n], off+int64(done)); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// writeChunk merges p into the dirty cache and writes out the blocks it completes.
func (e *inode) writeChunk(ctx context.Context, p []byte, off int64) error {
	s, bs := e.s, e.s.bs
	spans := explodeRange(off, len(p), bs)
	reserved := int64(len(spans)) * int64(bs)
	if err := s.budget.reserve(ctx, reserved, s.kickPressure, s.reclaimStuck); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	used := int64(0)
	defer func() { s.budget.release(reserved - used) }()
	if e.closed {
		return fmt.Errorf("%s: %w", e.path, ErrClosed)
	}
	if err := e.retryStuck(ctx); err != nil {
		return err // the file cannot store what it has: this write fails too
	}
	// Read-modify-write: partially overwritten blocks that are not dirty
	// but have a record are loaded first, all in one batch.
	var loads []*fetched
	for _, sp := range spans {
		if sp.Len == bs {
			continue
		}
		if _, ok := e.dirty[sp.Block]; ok {
			continue
		}
		if en, ok := e.current(sp.Block); ok {
			loads = append(loads, &fetched{block: sp.Block, en: en})
		}
	}
	loaded := make(map[int64][]byte, len(loads))
	loads = e.fromCache(loads, loaded)
	if len(loads) > 0 {
		if err := e.fetch(ctx, loads); err != nil {
			return err
		}
		for _, fe := range loads {
			if fe.err != nil {
				return fe.err
			}
			loaded[fe.block] = fe.data
		}
	}
	var full []int64
	for _, sp := range spans {
		buf, ok := e.dirty[sp.Block]
		if !ok {
			buf = make([]byte, bs)
			if data, ok := loaded[sp.Block]; ok {
				copy(buf, data)
			}
			e.dirty[sp.Block] = buf
			used += int64(bs)
		}
		copy(buf[sp.InBlock:], p[sp.Pos:sp.Pos+sp.Len])
		if sp.InBlock+sp.Len == bs {
			full = append(full, sp.Block)
		}
	}
	if end := off + int64(len(p)); end > e.size {
		e.size = end
	}
	if len(full) > 0 {
		// The data is in the dirty cache already; a failure here leaves the
		// blocks dirty (stuck): the next write of this file tries them
		// again and fails while they cannot be written, and the next
		// flush, sync or close reports the failure.
		if err := e.writeOut(context.Background(), full); err != nil {
			s.log.Warn("blockstore: write-out failed, blocks stay dirty", "file", e.path, "err", err)
		}
	}
	return nil
}
