package blockstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// commit runs one commit group: it writes out the dirty blocks of the group,
// fdatasyncs every touched backing file, then records the whole group in ONE
// bbolt transaction (which is itself durable when it returns), then punches
// the superseded records. only == nil means every open file.
//
// Ordering (invariant 1): no index transaction refers to a record before the
// record's backing file has been fdatasync'ed.
//
// The inode locks are held only to take the snapshot (phase A) and to apply
// the result (phase C), not across fdatasync and the transaction (phase B):
// meanwhile readers and writers go on; a new record for a block avoids both
// the committed location and the one in the commit in flight (two slots + the
// inline one for block 0, so a block whose two slots are both busy stays dirty
// until the commit ends).
func (s *Store) commit(ctx context.Context, only *inode) error {
	return s.commitGroup(ctx, only, false)
}

// commitGroup is commit; background says that no caller waits for the
// result (the interval commit): a failure that concerns a file's data is
// then kept in the file's wbErr for its next Sync, Flush or Close.
func (s *Store) commitGroup(ctx context.Context, only *inode, background bool) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var group []*inode
	if only != nil {
		only.mu.RLock()
		closed := only.closed
		only.mu.RUnlock()
		if closed {
			return fmt.Errorf("%s: %w", only.path, ErrClosed)
		}
		group = []*inode{only}
	} else {
		group = s.snapshotInodes()
	}
	// Phase A: snapshot under the inode locks.
	type snap struct {
		e        *inode
		size     int64
		nextGen  uint64
		sizeHint bool // size changed: rewrite the header's size hint
		sync     bool // fdatasync needed
	}
	var work []snap
	var drops []*inode
	lockAll := func() {
		for _, e := range group {
			e.mu.Lock()
		}
	}
	unlockAll := func() {
		for _, e := range group {
			e.mu.Unlock()
		}
	}
	// Write out the dirty blocks one file at a time first (compression is
	// the slow part), so the all-locks snapshot below has little left to do.
	for _, e := range group {
		e.mu.Lock()
		if !e.closed && !e.unlinked && len(e.dirty) > 0 {
			if err := e.writeOut(ctx, e.dirtyList()); err != nil {
				e.mu.Unlock()
				return err
			}
		}
		e.mu.Unlock()
	}
	lockAll()
	for _, e := range group {
		if e.closed {
			continue
		}
		s.mu.Lock()
		refs := e.refs
		s.mu.Unlock()
		if e.unlinked {
			// An unlinked file needs no durability; its entries go at the last close.
			if refs == 0 {
				drops = append(drops, e)
			}
			continue
		}
		if !e.hasChanges() {
			continue
		}
		if len(e.dirty) > 0 {
			if err := e.writeOut(ctx, e.dirtyList()); err != nil {
				unlockAll()
				return err
			}
		}
		if e.resync {
			if err := e.resyncPending(); err != nil {
				unlockAll()
				return err
			}
			e.resync = false
		}
		work = append(work, snap{e: e})
	}
	for i := range work {
		sn := &work[i]
		e := sn.e
		sn.size, sn.nextGen, sn.sizeHint = e.size, e.nextGen, e.size != e.committedSize
		sn.sync = e.touched || sn.sizeHint || !e.known
		e.touched = false
		e.committing, e.pending = e.pending, make(map[int64]entry)
	}
	if len(work) == 0 && len(drops) == 0 {
		s.releaseIdle(group)
		unlockAll()
		return nil
	}
	unlockAll()
	// Phase B: durability of the records, then the index transaction.
	var failed *inode // the file whose size-hint write or fdatasync failed
	err := func() error {
		for _, sn := range work {
			e := sn.e
			failed = e
			if sn.sizeHint {
				if err := s.hooks.inject("write", e.path); err != nil {
					return fmt.Errorf("%s: write size hint: %w", e.path, ioErr(err))
				}
				var werr error
				e.keepMtime(func() { _, werr = e.f.WriteAt(marshalSizeHint(sn.size, sn.nextGen), 40) })
				if werr != nil {
					return fmt.Errorf("%s: write size hint: %w", e.path, ioErr(werr))
				}
			}
			if sn.sync {
				err := s.hooks.inject("sync", e.path)
				if err == nil {
					err = unix.Fdatasync(int(e.f.Fd()))
				}
				if err != nil {
					return fmt.Errorf("%s: fdatasync: %w", e.path, ioErr(err))
				}
				s.hooks.add("sync " + e.path) // recorded once durable
			}
		}
		failed = nil
		var d statCounters
		s.hooks.add("tx")
		err := s.update(func(tx *bolt.Tx) error {
			d = statCounters{}
			files, blocks := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
			for _, sn := range work {
				e := sn.e
				if !e.known {
					d.Files++
				}
				d.addSize(e.committedSize, sn.size, s.bs)
				fv := fileVal{Size: sn.size, NextGen: sn.nextGen}
				if err := files.Put(e.id[:], fv.marshal()); err != nil {
					return err
				}
				for b, pe := range e.committing {
					if old, ok := e.committed[b]; ok {
						d.addEntry(&old, -1)
					}
					k := blockKey(e.id, b)
					if pe.Loc == locNone {
						if err := blocks.Delete(k); err != nil {
							return err
						}
						continue
					}
					d.addEntry(&pe, 1)
					if err := blocks.Put(k, pe.marshal()); err != nil {
						return err
					}
				}
			}
			for _, e := range drops {
				if err := dropFileTx(tx, e.id, s.bs, &d); err != nil {
					return err
				}
			}
			st := s.committedStats()
			st.add(&d)
			return tx.Bucket(bucketMeta).Put(keyStats, st.marshal())
		})
		if err != nil {
			return fmt.Errorf("commit index: %w", ioErr(err))
		}
		s.hooks.add("committed")
		s.addStats(&d)
		s.commits.Add(1)
		return nil
	}()
	// Phase C: apply (or give back) under the inode locks.
	lockAll()
	defer unlockAll()
	if err != nil {
		for _, sn := range work {
			e := sn.e
			e.keepMtime(func() {
				for b, c := range e.committing {
					if p, ok := e.pending[b]; ok {
						// A newer version was written meanwhile; the one
						// that failed to commit is garbage unless it sits
						// where the committed or the newer record is.
						com, _ := e.busy(b)
						if c.Loc != locNone && c.Loc != p.Loc && c.Loc != com {
							e.punch(b, c.Loc)
						}
						continue
					}
					e.pending[b] = c
				}
			})
			e.committing = nil
			if sn.sync {
				e.touched = true
			}
			if e == failed {
				e.resync = true
				if background {
					// Nobody waits for this commit: the file's next
					// Sync/Flush/Close reports it.
					e.wbErr = errors.Join(e.wbErr, err)
				}
			}
		}
		return err
	}
	for _, sn := range work {
		e := sn.e
		e.keepMtime(func() {
			for b, c := range e.committing {
				old, ok := e.committed[b]
				if ok && old.bad == nil && old.Loc != c.Loc {
					e.punch(b, old.Loc)
				}
				if c.Loc == locNone {
					delete(e.committed, b)
				} else {
					e.committed[b] = c
				}
			}
		})
		e.committing = nil
		e.committedSize = sn.size
		e.known = true
	}
	for _, e := range drops {
		e.known = false
		e.committedSize, e.size = 0, 0
		clear(e.committed)
		clear(e.pending)
		for b := range e.dirty {
			e.dropDirty(b)
		}
	}
	s.releaseIdle(group)
	if !s.budget.below(s.budget.limit / 2) {
		s.kickPressure() // blocks that waited for a free slot can go out now
	}
	return nil
}

func (s *Store) committedStats() statCounters {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// releaseIdle removes from the open-file table (and closes the backing file
// of) every inode of group that has no handle and nothing left to commit.
// Caller holds the mu of every inode in group.
func (s *Store) releaseIdle(group []*inode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range group {
		if e.closed || e.refs > 0 || e.committing != nil || (!e.unlinked && e.hasChanges()) || (e.unlinked && e.known) {
			continue
		}
		if s.files[e.id] == e {
			delete(s.files, e.id)
		}
		e.closed = true
		e.f.Close()
	}
}

// closedPending counts inodes without handles that wait for a commit.
func (s *Store) closedPending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.files {
		if e.refs == 0 {
			n++
		}
	}
	return n
}
