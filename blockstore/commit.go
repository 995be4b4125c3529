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
// result (the interval commit, Store.Commit): a failure that concerns a
// file's data is then recorded as a write-back failure of that file
// (noteErr) for its handles' next Sync, Flush or Close.
//
// Faults stay with their file (DESIGN §4 invariant 8): a file whose
// write-out, size-hint write, fdatasync or resync fails is left out of the
// group (its changes stay pending for the next commit) and the others are
// committed; the error returned joins the files' failures. Only a failure
// of the index transaction itself fails the whole group.
//
// The stages, each a function below: gather (the group's files),
// writeOutGroup (compress and write dirty blocks, one file at a time),
// snapshotGroup (all inode locks: the rest of the dirty blocks, resync,
// pending -> committing), syncGroup (no locks: size hints and fdatasync),
// recordGroup (one bbolt transaction), applyGroup (all inode locks:
// committing -> committed, or given back to pending).
func (s *Store) commitGroup(ctx context.Context, only *inode, background bool) error {
	if err := s.commitMu.LockContext(ctx); err != nil {
		return fmt.Errorf("%s: waiting for the commit in progress: %w: %w", s.dir, ErrInterrupted, err)
	}
	defer s.commitMu.Unlock()
	s.groups.Add(1)
	group, err := s.gather(only)
	if err != nil || len(group) == 0 {
		return err
	}
	g := &commitRun{s: s, group: group, failed: map[*inode]error{}, noted: map[*inode]bool{}}
	g.writeOutGroup(ctx)
	g.lockAll()
	g.snapshotGroup(ctx)
	if len(g.work) == 0 && len(g.drops) == 0 {
		g.noteFailed(background) // e.g. a failed resync of the only file
		s.releaseIdle(group)
		g.unlockAll()
		return g.result(background)
	}
	g.unlockAll()
	g.syncGroup()
	txErr := g.recordGroup()
	g.lockAll()
	defer g.unlockAll()
	g.applyGroup(txErr, background)
	if txErr != nil {
		return errors.Join(txErr, g.result(background))
	}
	return g.result(background)
}

// gather returns the files of a commit group: only, or every open file
// when only is nil. A file the store has released meanwhile (its last
// handle went and another commit recorded everything it had, see
// releaseIdle) has nothing left to commit.
func (s *Store) gather(only *inode) ([]*inode, error) {
	if only == nil {
		return s.snapshotInodes(), nil
	}
	only.mu.RLock()
	closed := only.closed
	only.mu.RUnlock()
	if closed {
		if s.isClosed() {
			return nil, fmt.Errorf("%s: %w", only.path, ErrClosed)
		}
		return nil, nil
	}
	return []*inode{only}, nil
}

// commitRun is the state of one commit group while its stages run.
type commitRun struct {
	s      *Store
	group  []*inode
	work   []member         // files with changes, snapshotted
	drops  []*inode         // unlinked files without handles: entries go
	failed map[*inode]error // files left out of the group, with the cause
	noted  map[*inode]bool  // ... whose failure needs no noteErr (see fail)
	synced []*member        // work members whose records are durable
}

// member is one file of a commit group with what snapshotGroup took.
type member struct {
	e        *inode
	size     int64
	nextGen  uint64
	sizeHint bool  // size changed: rewrite the header's size hint
	sync     bool  // fdatasync needed
	syncErr  error // the size-hint write or fdatasync failed
}

func (g *commitRun) lockAll() {
	for _, e := range g.group {
		e.mu.Lock()
	}
}

func (g *commitRun) unlockAll() {
	for _, e := range g.group {
		e.mu.Unlock()
	}
}

// fail leaves e out of the group with err; noted says that err needs no
// record as a write-back failure of e: a write-out failure leaves stuck
// blocks, which the file's next Flush, Sync, Close or write tries again
// and reports (or whose loss dropStuck records).
func (g *commitRun) fail(e *inode, err error, noted bool) {
	g.failed[e] = err
	g.noted[e] = noted
}

// writeOutGroup writes out the dirty blocks one file at a time first
// (compression is the slow part), so the all-locks snapshot has little
// left to do. A file whose write-out fails is left out of the group.
func (g *commitRun) writeOutGroup(ctx context.Context) {
	for _, e := range g.group {
		e.mu.Lock()
		if !e.closed && !e.unlinked && len(e.dirty) > 0 {
			if err := e.writeOut(ctx, e.dirtyList()); err != nil {
				g.fail(e, err, true)
			}
		}
		e.mu.Unlock()
	}
}

// snapshotGroup picks the files that have something to commit and moves
// their pending records to committing. Caller holds every group lock.
func (g *commitRun) snapshotGroup(ctx context.Context) {
	s := g.s
	for _, e := range g.group {
		if e.closed || g.failed[e] != nil {
			continue
		}
		s.mu.Lock()
		refs := e.refs
		s.mu.Unlock()
		if e.unlinked {
			// An unlinked file needs no durability; its entries go at the last close.
			if refs == 0 {
				g.drops = append(g.drops, e)
			}
			continue
		}
		if !e.hasChanges() {
			continue
		}
		if len(e.dirty) > 0 {
			if err := e.writeOut(ctx, e.dirtyList()); err != nil {
				g.fail(e, err, true)
				continue
			}
		}
		if err := e.prepareCommit(); err != nil {
			g.fail(e, err, false)
			continue
		}
		m := member{e: e}
		m.size, m.nextGen, m.sizeHint, m.sync = e.beginCommit()
		g.work = append(g.work, m)
	}
}

// prepareCommit rewrites the pending records after an earlier failed
// fdatasync (resyncPending). Caller holds mu exclusively.
func (e *inode) prepareCommit() error {
	if e.resync {
		if err := e.resyncPending(); err != nil {
			return err
		}
		e.resync = false
	}
	return nil
}

// beginCommit moves the pending records to committing (pending ->
// committing) and returns what the commit records: the size, the next
// generation, whether the header's size hint changes and whether the
// backing file needs an fdatasync. Caller holds mu exclusively.
func (e *inode) beginCommit() (size int64, nextGen uint64, sizeHint, sync bool) {
	sizeHint = e.size != e.committedSize
	sync = e.touched || sizeHint || !e.known
	e.touched = false
	e.committing, e.pending = e.pending, make(map[int64]entry)
	return e.size, e.nextGen, sizeHint, sync
}

// syncGroup makes the members' records durable: the size hint, then
// fdatasync. A member that fails is left out of the transaction.
func (g *commitRun) syncGroup() {
	for i := range g.work {
		m := &g.work[i]
		if m.syncErr = g.s.syncMember(m); m.syncErr != nil {
			g.fail(m.e, m.syncErr, false)
			continue
		}
		g.synced = append(g.synced, m)
	}
}

// syncMember writes m's size hint and fdatasyncs its backing file, as
// snapshotGroup asked. No inode lock is held (the commit owns committing).
func (s *Store) syncMember(m *member) error {
	e := m.e
	if m.sizeHint {
		if err := s.hooks.inject("write", e.path); err != nil {
			return fmt.Errorf("%s: write size hint: %w", e.path, ioErr(err))
		}
		var werr error
		e.keepMtime(func() { _, werr = e.f.WriteAt(marshalSizeHint(m.size, m.nextGen), 40) })
		if werr != nil {
			return fmt.Errorf("%s: write size hint: %w", e.path, ioErr(werr))
		}
	}
	if m.sync {
		err := s.hooks.inject("sync", e.path)
		if err == nil {
			err = unix.Fdatasync(int(e.f.Fd()))
		}
		if err != nil {
			return fmt.Errorf("%s: fdatasync: %w", e.path, ioErr(err))
		}
		s.hooks.add("sync " + e.path) // recorded once durable
	}
	return nil
}

// recordGroup records the synced members and the drops in ONE bbolt
// transaction (durable when it returns) and updates the stats.
func (g *commitRun) recordGroup() error {
	s := g.s
	if len(g.synced) == 0 && len(g.drops) == 0 {
		return nil
	}
	var d statCounters
	s.hooks.add("tx")
	err := s.update(func(tx *bolt.Tx) error {
		d = statCounters{}
		for _, m := range g.synced {
			if err := m.e.recordTx(tx, m.size, m.nextGen, &d); err != nil {
				return err
			}
		}
		for _, e := range g.drops {
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
}

// recordTx puts e's file entry and its committing block entries into tx
// and accounts them in d. The commit owns committing (no lock needed).
func (e *inode) recordTx(tx *bolt.Tx, size int64, nextGen uint64, d *statCounters) error {
	files, blocks := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
	if !e.known {
		d.Files++
	}
	d.addSize(e.committedSize, size, e.s.bs)
	fv := fileVal{Size: size, NextGen: nextGen}
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
	return nil
}

// applyGroup applies the outcome under the group locks: committed members
// move committing to committed, the others give it back to pending; the
// drops are forgotten. Caller holds every group lock.
func (g *commitRun) applyGroup(txErr error, background bool) {
	s := g.s
	for i := range g.work {
		m := &g.work[i]
		switch {
		case m.syncErr != nil:
			m.e.abortCommit(m.sync, true)
		case txErr != nil:
			m.e.abortCommit(m.sync, false)
		default:
			m.e.finishCommit(m.size)
		}
	}
	if txErr == nil {
		for _, e := range g.drops {
			e.forgetDropped()
		}
	}
	g.noteFailed(background)
	s.releaseIdle(g.group)
	if !s.budget.below(s.budget.limit / 2) {
		s.kickPressure() // blocks that waited for a free slot can go out now
	}
}

// noteFailed records, for a background commit (no caller waits), each
// failure of a file left out of the group for that file's handles (noteErr),
// unless the stage that failed recorded it already. Caller holds all inode
// locks.
func (g *commitRun) noteFailed(background bool) {
	if !background {
		return
	}
	for e, err := range g.failed {
		if !g.noted[e] && !errors.Is(err, ErrInterrupted) {
			e.noteErr(err)
		}
	}
}

// result joins the failures of the files left out of the group.
func (g *commitRun) result(background bool) error {
	if len(g.failed) == 0 {
		return nil
	}
	errs := make([]error, 0, len(g.failed))
	for _, e := range g.group { // in file ID order
		if err := g.failed[e]; err != nil {
			errs = append(errs, err)
		}
	}
	if background {
		g.s.log.Warn("blockstore: files left out of the commit group", "files", len(errs))
	}
	return errors.Join(errs...)
}

// abortCommit gives the committing records back to pending after the
// commit failed (pending -> committing -> pending). syncFailed says that
// this file's own size-hint write or fdatasync failed: its next commit
// rewrites the pending records first (resync). Caller holds mu.
func (e *inode) abortCommit(synced, syncFailed bool) {
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
	if synced {
		e.touched = true
	}
	if syncFailed {
		e.resync = true
	}
}

// finishCommit makes the committing records the committed ones
// (committing -> committed) and punches the superseded records. Caller
// holds mu and Store.commitMu.
func (e *inode) finishCommit(size int64) {
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
	e.committedSize = size
	e.known = true
}

// forgetDropped clears the state of an unlinked file whose index entries
// the commit dropped. Caller holds mu and Store.commitMu.
func (e *inode) forgetDropped() {
	e.known = false
	e.committedSize, e.size = 0, 0
	clear(e.committed)
	clear(e.pending)
	for b := range e.dirty {
		e.dropDirty(b)
	}
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
