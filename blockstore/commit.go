package blockstore

import (
	"context"
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
func (s *Store) commit(ctx context.Context, only *inode) error {
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
	for _, e := range group {
		e.mu.Lock()
	}
	defer func() {
		for _, e := range group {
			e.mu.Unlock()
		}
	}()
	var work, drops []*inode
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
				return err
			}
		}
		work = append(work, e)
	}
	if len(work) == 0 && len(drops) == 0 {
		s.releaseIdle(group)
		return nil
	}
	for _, e := range work {
		if e.size != e.committedSize {
			if _, err := e.f.WriteAt(marshalSizeHint(e.size, e.nextGen), 40); err != nil {
				return fmt.Errorf("%s: write size hint: %w", e.path, ioErr(err))
			}
			e.touched = true
		}
		if e.touched || !e.known {
			s.hooks.add("sync " + e.path)
			err := s.hooks.inject("sync", e.path)
			if err == nil {
				err = unix.Fdatasync(int(e.f.Fd()))
			}
			if err != nil {
				return fmt.Errorf("%s: fdatasync: %w", e.path, ioErr(err))
			}
			e.touched = false
		}
	}
	var d statCounters
	s.hooks.add("tx")
	err := s.update(func(tx *bolt.Tx) error {
		d = statCounters{}
		files, blocks := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
		for _, e := range work {
			if !e.known {
				d.Files++
			}
			d.addSize(e.committedSize, e.size, s.bs)
			fv := fileVal{Size: e.size, NextGen: e.nextGen}
			if err := files.Put(e.id[:], fv.marshal()); err != nil {
				return err
			}
			for b, pe := range e.pending {
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
	for _, e := range work {
		for b, pe := range e.pending {
			old, ok := e.committed[b]
			if ok && old.bad == nil && old.Loc != pe.Loc {
				e.punch(b, old.Loc)
			}
			if pe.Loc == locNone {
				delete(e.committed, b)
			} else {
				e.committed[b] = pe
			}
		}
		clear(e.pending)
		e.committedSize = e.size
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
		if e.closed || e.refs > 0 || (!e.unlinked && e.hasChanges()) || (e.unlinked && e.known) {
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
