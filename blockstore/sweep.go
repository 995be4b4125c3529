package blockstore

import (
	"errors"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Reclaiming crash leftovers without an offline repair.
//
// The index's meta bucket holds keyOpen while a read-write Store is open:
// Open sets it (initIndex, in the transaction it runs anyway), a Close whose final commit succeeded deletes it. Finding it
// at Open means the previous run crashed (or failed its last commit), so
// backing files may hold records no entry references: superseded ones
// whose punch never ran, uncommitted ones. The mount would never serve
// them (a file with an index entry is not adopted), and fsck --repair would
// punch them; sweepFile does it at the first open of each file instead.
// Files with no index entry are adopted at open, never swept.

var keyOpen = []byte("open")

// markClosed removes the open mark (Close, after a successful final commit).
func (s *Store) markClosed() error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyOpen) })
}

// sweepFile punches the records of e's backing file that neither the
// committed index nor a pending change references. It holds commitMu (no
// commit in flight, so nothing is "committing") and e.mu exclusively (no
// record is being written), so every record it punches is one nothing can
// reach. Failures are logged: the leftovers then wait for fsck --repair.
// A file whose index entries did not all parse is not swept: a damaged
// entry references a record the sweep cannot recognise, and that record is
// what fsck --rebuild recovers the block from.
func (s *Store) sweepFile(e *inode) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if e.badIndex {
		s.log.Warn("blockstore: not reclaiming crash leftovers of a file with damaged index entries (fsck --rebuild recovers them)", "file", e.path)
		return
	}
	fi, err := e.f.Stat()
	if err != nil {
		return
	}
	used := func(block int64, l loc) bool {
		if en, ok := e.committed[block]; ok && en.Loc == l {
			return true
		}
		en, ok := e.pending[block]
		return ok && en.Loc == l
	}
	var reclaimed int64
	var failed error
	s.scanFile(e.f, fi.Size(), func(block int64, l loc, off int64, h *recordHeader, err error) {
		if failed != nil || block < 0 || used(block, l) {
			return
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return // not read: never punch what was not seen
		}
		n := int64(locCapacity(s.bs, l))
		if perr := unix.Fallocate(int(e.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); perr != nil {
			failed = perr
			return
		}
		reclaimed += n
	})
	if failed != nil {
		s.log.Warn("blockstore: reclaiming crash leftovers failed (fsck --repair reclaims them)", "file", e.path, "err", failed)
	}
	if reclaimed > 0 {
		s.log.Info("blockstore: reclaimed records left by an unclean shutdown", "file", e.path, "bytes", reclaimed)
	}
}
