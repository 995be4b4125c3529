package blockstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/accelfs/accelfs/codec"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// Names inside the backing directory.
const (
	// MetaDir is the store's own directory inside the backing directory; the
	// mount hides it.
	MetaDir     = ".accelfs"
	formatName  = "format"
	indexName   = "index.db"
	pidFileName = "lock.pid"
)

// Options configure Open. The zero value (or nil) means the defaults.
type Options struct {
	// BlockSize is used when Open creates a new store: a power of two in
	// 4 KiB..1 MiB. Default 128 KiB. An existing store keeps its own (a
	// different non-zero value is logged and ignored).
	BlockSize int
	// Algo and Level choose the compression of newly written blocks. When
	// Algo is zero (codec.None) and AlgoSet is false, the store's default
	// from its format file applies (a new store records lz4 unless told).
	// Level 0 means the algorithm's default.
	Algo  codec.ID
	Level int
	// AlgoSet makes Algo count even when it is codec.None (the zero value).
	AlgoSet bool
	// Compressor runs (de)compression jobs. Default: NewCPUCompressor(GOMAXPROCS).
	Compressor Compressor
	// DirtyLimit bounds the bytes of all dirty-cache blocks. Default 64 MiB;
	// at least 4 blocks.
	DirtyLimit int64
	// CacheBytes bounds the decoded-block cache. Default 32 MiB; <0 disables it.
	CacheBytes int64
	// CommitInterval is how often dirty data is written and committed in
	// the background. Default 5s; <0 disables the timer; a positive value
	// below MinCommitInterval (100ms) is raised to it.
	CommitInterval time.Duration
	// VerifyCompression decodes every compressed block on the CPU (codec/)
	// before storing it and stores the block raw when the result does not
	// match: a faulty engine then costs space, never data. It costs one
	// decompression per block written. Default off.
	VerifyCompression bool
	// LockTimeout is how long Open waits for the store lock. Default 200ms.
	LockTimeout time.Duration
	// ReadaheadBytes is how far ahead sequential reads prefetch. Default
	// 1 MiB (at least one block); <0 disables readahead.
	ReadaheadBytes int64
	// Logger receives corruption reports and background errors. Default slog.Default().
	Logger *slog.Logger
	// RebuildProgress receives the progress of an index rebuild that Open
	// (or RebuildIndex) runs.
	RebuildProgress func(FsckProgress)
	// NoCreate makes Open fail with ErrNotStore instead of creating a store
	// in an empty directory (fsck, stats, set, get never create one).
	NoCreate bool
	// ReadOnly opens the store without writing anything: the index read-only
	// (bbolt ReadOnly), no pid file, no interval commits, no adoption or
	// header initialization on open, InitFile fails with ErrReadOnly. For a
	// read-only backing (mount -o ro, fsck on EROFS). File writes are not
	// refused here (the kernel refuses them on a read-only mount); a commit
	// of one fails.
	ReadOnly bool

	// commitFloor replaces MinCommitInterval when > 0: package tests that
	// race commits against everything else at millisecond intervals.
	commitFloor time.Duration
}

// maxClosedPending is how many closed files with uncommitted changes the
// store keeps (each holds its backing fd) before it commits early.
const maxClosedPending = 256

// Store is one opened backing directory. Its methods are safe for
// concurrent use.
//
// Lock order (outermost first), written once for the whole package:
//
//	Store.commitMu -> inode.mu (several: in ascending file ID order) -> Store.mu -> blockCache.mu, budget.mu
//	inode.mu -> inode.flightMu -> blockCache.mu
//
// Store.statsMu and testHooks.mu are leaves (nothing is taken while they are
// held); statsMu is read inside index transactions. No lock is held while
// waiting for dirty budget.
type Store struct {
	dir        string   // backing directory
	meta       string   // dir/.accelfs
	root       *os.File // the backing directory, flocked: the store lock
	metaDir    *os.File // .accelfs, checked (storedir.go); meta files are opened through it
	readOnly   bool     // Options.ReadOnly
	bs         int      // block size
	algo       codec.ID
	level      int
	comp       Compressor
	log        *slog.Logger
	db         *bolt.DB
	cache      *blockCache
	budget     *budget
	readahead  int  // blocks
	verifyComp bool // Options.VerifyCompression

	// commitMu serializes commit groups, fsck and Close: it protects the
	// committed state in the index and the committed maps of inodes (which
	// change only while it is held, together with the inode's mu). A
	// ctxMutex: a Sync waits for it with its context.
	commitMu ctxMutex
	// stats is the committed aggregate (as in the index); guarded by commitMu
	// for writes, statsMu for reads.
	statsMu sync.Mutex
	stats   statCounters

	// mu protects files, closed, closing.
	mu      sync.Mutex
	files   map[FileID]*inode
	closed  bool
	closing bool // Close has begun (it sets closed when done)

	commits   atomic.Int64
	commitErr atomic.Int64 // background commit failures
	groups    atomic.Int64 // commit groups started (ran or found nothing to do)

	// limitOnce guards maxData, the largest logical size the backing
	// filesystem can store (maxStorable, probed at the first write).
	limitOnce sync.Once
	maxData   int64

	// flusher goroutine
	stop     chan struct{}
	pressure chan struct{} // kick: write out dirty blocks (memory pressure)
	kick     chan struct{} // kick: commit everything now
	wg       sync.WaitGroup

	// Prefetch goroutines (asynchronous readahead, inode.startPrefetch):
	// at most one per inode and cap(pfSlots) in all. pfWG.Add happens
	// under mu while neither closing nor closed; Close and abandon cancel
	// pfCtx and wait for pfWG.
	pfCtx    context.Context
	pfCancel context.CancelFunc
	pfSlots  chan struct{}
	pfWG     sync.WaitGroup

	// bufs recycles block-sized scratch buffers (compression output,
	// record assembly, record reads); each has capacity bufCap().
	bufs sync.Pool

	// rebuiltAtOpen is the report of the index rebuild Open ran because
	// the index was missing (nil otherwise).
	rebuiltAtOpen *FsckReport

	// sweepOnOpen: the previous run did not close the store cleanly, so
	// backing files may hold records no index entry references (a crash
	// between a commit and its punch, or before a commit). Each file is
	// swept the first time it is opened (sweep.go). Immutable after Open.
	sweepOnOpen bool

	hooks *testHooks // nil outside tests
}

// bufCap is the capacity of scratch buffers: a record header plus the
// worst-case compressed size of a block (lz4/zstd/flate bounds are a little
// above the input), so codecs never reallocate.
func (s *Store) bufCap() int { return RecordHeaderSize + s.bs + s.bs/64 + 1024 }

// getBuf returns an empty scratch buffer with capacity bufCap().
func (s *Store) getBuf() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, s.bufCap())
}

// putBuf recycles a buffer from getBuf; others (wrong capacity) are dropped.
func (s *Store) putBuf(b []byte) {
	if cap(b) != s.bufCap() {
		return
	}
	b = b[:0]
	s.bufs.Put(&b)
}

// testHooks let tests observe the commit pipeline order.
type testHooks struct {
	mu     sync.Mutex
	events []string
	// fail, when set, is consulted before each backing-file write ("write")
	// and fdatasync ("sync"), and after each record-header read of the fsck
	// scan ("read"); a non-nil error is returned as if the system call had
	// failed (fault injection).
	fail func(op, path string) error
}

// inject returns the injected error for op on path, if any.
func (h *testHooks) inject(op, path string) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	fail := h.fail
	h.mu.Unlock()
	if fail == nil {
		return nil
	}
	return fail(op, path)
}

func (h *testHooks) add(ev string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
}

// Open opens the store in backingDir. An empty directory (nothing but
// lost+found, or a .accelfs without a format file) becomes a new store
// unless opts.NoCreate or opts.ReadOnly; a directory that is neither empty
// nor a store gives ErrNotStore (nothing is created). It fails with
// ErrLocked when another opener holds the store, and with ErrUnsafe when
// .accelfs is not safe to use.
func Open(backingDir string, opts *Options) (*Store, error) {
	o := openDefaults(opts)
	sd, err := lockStoreDir(backingDir, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	created := false
	if sd.state != stateStore {
		if sd.state == stateNotStore || o.NoCreate || o.ReadOnly {
			sd.close()
			return nil, notStoreError(backingDir, sd.state)
		}
		if err := createStore(sd, &o); err != nil {
			sd.close()
			return nil, err
		}
		created = true
	}
	s, err := openStoreDir(backingDir, sd, &o, !created)
	if err != nil {
		sd.close()
		return nil, err
	}
	return s, nil
}

// Init creates a new store in backingDir, which must be empty (nothing but
// lost+found or a .accelfs without a format file): ErrExists when a store is
// there, ErrNotStore when the directory holds other files. Only BlockSize,
// Algo/AlgoSet, Level, LockTimeout of opts count.
func Init(backingDir string, opts *Options) error {
	o := openDefaults(opts)
	sd, err := lockStoreDir(backingDir, o.LockTimeout)
	if err != nil {
		return err
	}
	defer sd.close()
	switch sd.state {
	case stateStore:
		return fmt.Errorf("%w in %s; nothing changed (`accelfs set` changes its settings)", ErrExists, backingDir)
	case stateNotStore:
		return notStoreError(backingDir, sd.state)
	}
	if err := createStore(sd, &o); err != nil {
		return err
	}
	db, err := openIndex(sd.meta, o.LockTimeout, false)
	if err != nil {
		return err
	}
	err = guardIndex(db.Path(), func() error {
		if _, _, _, ierr := initIndex(db); ierr != nil {
			return ierr
		}
		// A new store has not been opened yet: no open mark.
		return db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyOpen) })
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func openDefaults(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 200 * time.Millisecond
	}
	return o
}

// createStore makes .accelfs and writes the format file of a new store
// from the options (the index is created by its first open).
func createStore(sd *storeDir, o *Options) error {
	bs := o.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if !validBlockSize(bs) {
		return fmt.Errorf("%w: block size %d (want a power of two in %d..%d)", ErrInvalid, bs, MinBlockSize, MaxBlockSize)
	}
	algo, level := codec.LZ4, 0
	if o.Algo != codec.None || o.AlgoSet {
		algo, level = o.Algo, o.Level
	}
	level, err := codec.NormalizeLevel(algo, level)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	meta, err := openMetaDir(sd.root, true)
	if err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	sd.meta = meta
	ff := formatFile{Magic: formatMagic, Version: FormatVersion, BlockSize: bs, Algo: algo.String(), Level: level}
	if err := writeFormatFile(meta, ff); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	// A leftover index of an earlier store whose format file is gone
	// belongs to nothing here (the directory was empty).
	if err := unix.Unlinkat(int(meta.Fd()), indexName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("create store: remove stale index: %w", err)
	}
	sd.state = stateStore
	return nil
}

// openStoreDir opens the index of the locked store sd and starts the store.
// existing is false for a store this Open just created.
func openStoreDir(dir string, sd *storeDir, o *Options, existing bool) (*Store, error) {
	if sd.meta == nil {
		meta, err := openMetaDir(sd.root, false)
		if err != nil {
			return nil, err
		}
		sd.meta = meta
	}
	db, err := openIndex(sd.meta, o.LockTimeout, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(dir, sd, db, o, existing)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openIndex opens the bbolt index inside meta (O_NOFOLLOW), taking its
// flock as well (a second line behind the root lock).
//
// The freelist is synced (bbolt's default): with NoFreelistSync, Open
// rebuilds the freelist by walking every page in a goroutine of its own,
// where a damaged page panics beyond any recover and kills the process.
// Panics (and memory faults) of bbolt in this goroutine become ErrCorrupt.
func openIndex(meta *os.File, timeout time.Duration, readOnly bool) (db *bolt.DB, err error) {
	path := filepath.Join(meta.Name(), indexName)
	bo := &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType, ReadOnly: readOnly,
		OpenFile: func(_ string, flag int, perm os.FileMode) (*os.File, error) {
			return openAt(meta, indexName, flag, perm)
		}}
	if readOnly {
		var st unix.Stat_t
		if serr := unix.Fstatat(int(meta.Fd()), indexName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(serr, unix.ENOENT) {
			return nil, fmt.Errorf("%w: %s is missing and a read-only store cannot rebuild it", ErrCorrupt, path)
		}
	}
	err = guardIndex(path, func() error {
		var oerr error
		db, oerr = bolt.Open(path, 0o600, bo)
		return oerr
	})
	if errors.Is(err, ErrCorrupt) {
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("%w; rebuild it with fsck --rebuild", err)
	}
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is in use by another process (lock on %s)", ErrLocked, filepath.Dir(meta.Name()), path)
	case errors.Is(err, ErrUnsafe):
		return nil, err
	case isAccessErr(err):
		// Not damage: the index cannot be opened this way (a read-only
		// backing, permissions). Rebuilding would not help.
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return nil, fmt.Errorf("%w: index %s cannot be opened (%v); rebuild it with fsck --rebuild", ErrCorrupt, path, err)
}

// isAccessErr reports errors of the backing filesystem that are not data
// damage: read-only, permission, no space.
func isAccessErr(err error) bool {
	for _, e := range []error{unix.EROFS, unix.EACCES, unix.EPERM, unix.ENOSPC, unix.EDQUOT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func openLocked(dir string, sd *storeDir, db *bolt.DB, o *Options, existing bool) (*Store, error) {
	ff, err := readFormatFile(sd.meta)
	if err != nil {
		return nil, err
	}
	if o.BlockSize != 0 && o.BlockSize != ff.BlockSize {
		o.Logger.Warn("blockstore: ignoring block size option for an existing store", "store", dir, "asked", o.BlockSize, "store_block_size", ff.BlockSize)
	}
	algo, _ := codec.Parse(ff.Algo) // validated by readFormatFile
	level := ff.Level
	source := "store settings"
	if o.Algo != codec.None || o.AlgoSet {
		algo, level, source = o.Algo, o.Level, "options (this open only)"
	}
	if level, err = codec.NormalizeLevel(algo, level); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	stats, fresh, unclean, err := loadIndexMeta(db, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	if !o.ReadOnly {
		if err := writePidFile(sd.meta); err != nil {
			return nil, fmt.Errorf("write pid file: %w", err)
		}
	}
	s := newStore(dir, sd, db, o, ff.BlockSize, algo, level, stats)
	s.sweepOnOpen = unclean
	o.Logger.Info("blockstore: store open", "store", dir, "block_size", ff.BlockSize, "algo", algo.String(), "level", level,
		"compression_from", source, "read_only", o.ReadOnly)
	interval := commitInterval(o.CommitInterval, o.commitFloor)
	if fresh && existing {
		// The store existed but its index did not (deleted, or moved aside
		// by RebuildIndex): serving files from an empty index would show
		// them empty and let new records overwrite the only copy of the
		// data. Rebuild it from the backing files first.
		s.log.Warn("blockstore: the store has no index, rebuilding it from the backing files", "store", dir)
		rep, err := s.Fsck(FsckOptions{Rebuild: true, Progress: o.RebuildProgress})
		if err != nil {
			s.pfCancel()
			return nil, fmt.Errorf("rebuild missing index: %w", err) // Open closes db
		}
		s.rebuiltAtOpen = rep
	}
	if o.ReadOnly {
		interval = -1 // nothing to commit
	}
	s.wg.Add(1)
	go s.flusher(interval)
	return s, nil
}

// loadIndexMeta checks (and for a new index, creates) the index's buckets
// and returns its stats; read-write, it also sets the open mark and says
// whether the previous run left it (sweep.go).
func loadIndexMeta(db *bolt.DB, readOnly bool) (stats statCounters, fresh, unclean bool, err error) {
	err = guardIndex(db.Path(), func() error {
		var ierr error
		if readOnly {
			stats, ierr = readIndexMeta(db)
		} else {
			stats, fresh, unclean, ierr = initIndex(db)
		}
		return ierr
	})
	if err != nil {
		return stats, fresh, unclean, fmt.Errorf("index %s: %w", db.Path(), err)
	}
	return stats, fresh, unclean, nil
}

// newStore builds the Store value (no goroutine started yet).
func newStore(dir string, sd *storeDir, db *bolt.DB, o *Options, bs int, algo codec.ID, level int, stats statCounters) *Store {
	s := &Store{
		dir: dir, meta: filepath.Join(dir, MetaDir), root: sd.root, metaDir: sd.meta, readOnly: o.ReadOnly,
		bs: bs, algo: algo, level: level,
		comp: o.Compressor, log: o.Logger, db: db, stats: stats, verifyComp: o.VerifyCompression,
		files:    make(map[FileID]*inode),
		stop:     make(chan struct{}),
		pressure: make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		pfSlots:  make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
	}
	s.pfCtx, s.pfCancel = context.WithCancel(context.Background())
	if s.comp == nil {
		s.comp = NewCPUCompressor(runtime.GOMAXPROCS(0))
	}
	dl := o.DirtyLimit
	if dl == 0 {
		dl = 64 << 20
	}
	dl = max(dl, 4*int64(bs))
	s.budget = newBudget(dl)
	cb := o.CacheBytes
	if cb == 0 {
		cb = 32 << 20
	}
	s.cache = newBlockCache(cb)
	ra := o.ReadaheadBytes
	if ra == 0 {
		ra = 1 << 20
	}
	if ra > 0 {
		s.readahead = int(max(1, ra/int64(bs)))
	}
	return s
}

// BlockSize returns the store's block size.
func (s *Store) BlockSize() int { return s.bs }

// Dir returns the backing directory.
func (s *Store) Dir() string { return s.dir }

// Close flushes all dirty data, commits, closes every backing file the store
// owns and the index, and releases the lock. It is idempotent (a second
// call, even a concurrent one, returns nil at once); File methods return
// ErrClosed afterwards. The caller must have stopped using the store's
// files: a write that races with Close may be dropped after the final
// commit.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed || s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	close(s.stop)
	s.pfCancel()
	s.pfWG.Wait()
	s.wg.Wait()
	err := s.commit(context.Background(), nil)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	s.closed = true
	inodes := make([]*inode, 0, len(s.files))
	for _, e := range s.files {
		inodes = append(inodes, e)
	}
	s.files = nil
	s.mu.Unlock()
	for _, e := range inodes {
		e.mu.Lock()
		e.closed = true
		if e.dirtyBytes() > 0 {
			s.budget.release(e.dirtyBytes())
		}
		e.dirty = nil
		if cerr := e.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		e.mu.Unlock()
	}
	if !s.readOnly {
		if err == nil {
			// A clean close: the next Open need not sweep (sweep.go).
			err = s.markClosed()
		}
		unix.Unlinkat(int(s.metaDir.Fd()), pidFileName, 0)
	}
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.metaDir.Close()
	s.root.Close() // releases the store lock, after the index is closed
	return err
}

// abandon simulates a crash for tests: it stops the flusher and closes
// everything without writing or committing anything.
func (s *Store) abandon() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.pfCancel()
	s.pfWG.Wait()
	s.wg.Wait()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	inodes := make([]*inode, 0, len(s.files))
	for _, e := range s.files {
		inodes = append(inodes, e)
	}
	s.files = nil
	s.mu.Unlock()
	for _, e := range inodes { // inode.mu after Store.mu is released (lock order)
		e.mu.Lock()
		e.closed = true
		e.f.Close()
		e.mu.Unlock()
	}
	s.db.Close()
	s.metaDir.Close()
	s.root.Close()
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// flusher is the store's one background goroutine (owned by the Store,
// stopped and waited for in Close): it commits on the interval and writes
// out dirty blocks under memory pressure.
func (s *Store) flusher(interval time.Duration) {
	defer s.wg.Done()
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
			s.backgroundCommit()
		case <-s.kick:
			s.backgroundCommit()
		case <-s.pressure:
			s.relievePressure()
		}
	}
}

func (s *Store) backgroundCommit() {
	if err := s.commitGroup(context.Background(), nil, true); err != nil {
		s.commitErr.Add(1)
		s.log.Error("blockstore: background commit failed", "store", s.dir, "err", err)
	}
}

// relievePressure writes out the dirty blocks of every open file (no commit).
func (s *Store) relievePressure() {
	for _, e := range s.snapshotInodes() {
		e.mu.Lock()
		if !e.closed && len(e.dirty) > 0 {
			if err := e.writeOut(context.Background(), e.dirtyList()); err != nil {
				s.log.Error("blockstore: writing dirty blocks failed", "file", e.path, "err", err)
			}
		}
		e.mu.Unlock()
		if s.budget.below(s.budget.limit / 2) {
			return
		}
	}
}

func (s *Store) kickPressure() {
	select {
	case s.pressure <- struct{}{}:
	default:
	}
}

func (s *Store) kickCommit() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// snapshotInodes returns the open-file table's inodes in file ID order.
func (s *Store) snapshotInodes() []*inode {
	s.mu.Lock()
	l := make([]*inode, 0, len(s.files))
	for _, e := range s.files {
		l = append(l, e)
	}
	s.mu.Unlock()
	sortInodes(l)
	return l
}

func sortInodes(l []*inode) {
	sort.Slice(l, func(i, j int) bool { return string(l[i].id[:]) < string(l[j].id[:]) })
}

// Stats are the store's aggregate figures (the json tags are what
// `accelfs stats --json` prints).
type Stats struct {
	LogicalBytes int64            `json:"logical_bytes"` // sum of committed logical file sizes
	StoredBytes  int64            `json:"stored_bytes"`  // sum of committed record sizes (header + payload)
	Ratio        float64          `json:"ratio"`         // stored_bytes / logical_bytes (0 when empty)
	Blocks       map[string]int64 `json:"blocks"`        // committed records per algorithm ("none" = raw)
	RawBlocks    int64            `json:"raw_blocks"`    // records stored uncompressed
	ZeroBlocks   int64            `json:"zero_blocks"`   // blocks inside file sizes with no record (holes)
	Files        int64            `json:"files"`         // files in the index
	DirtyBytes   int64            `json:"dirty_bytes"`   // bytes in dirty-cache blocks now
	CacheBytes   int64            `json:"cache_bytes"`   // bytes in the decoded-block cache now
	CacheHits    int64            `json:"cache_hits"`    // decoded-block cache hits since Open
	CacheMisses  int64            `json:"cache_misses"`  // decoded-block cache misses since Open
	Commits      int64            `json:"commits"`       // commit groups since Open
	BlockSize    int              `json:"block_size"`
	Algo         string           `json:"algo"` // algorithm for new blocks
	Level        int              `json:"level"`
}

// Commit writes out and commits every file's pending changes now, as the
// commit interval does (one group: records, fdatasync of the touched files,
// one index transaction). `accelfs stats` calls it so its figures include
// what was just written. A failure is also kept for the affected file's next
// Sync, Flush or Close, as for the interval commit: the caller of Commit
// does not own that file's data.
func (s *Store) Commit(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed || s.closing
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("commit %s: %w", s.dir, ErrClosed)
	}
	return s.commitGroup(ctx, nil, true)
}

// Stats returns the committed aggregate stats plus in-memory counters; O(1).
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	c := s.stats
	s.statsMu.Unlock()
	st := Stats{
		LogicalBytes: c.Logical, StoredBytes: c.Stored, Blocks: map[string]int64{},
		RawBlocks: c.Raw, ZeroBlocks: c.TotalBlocks - c.StoredBlocks, Files: c.Files,
		DirtyBytes: s.budget.usedBytes(), CacheBytes: s.cache.size(),
		CacheHits: s.cache.hits.Load(), CacheMisses: s.cache.misses.Load(),
		Commits: s.commits.Load(), BlockSize: s.bs, Algo: s.algo.String(), Level: s.level,
	}
	if c.Logical > 0 {
		st.Ratio = float64(c.Stored) / float64(c.Logical)
	}
	for i, n := range c.Algo {
		if n != 0 {
			st.Blocks[codec.ID(i).String()] = n
		}
	}
	return st
}

// readHeader reads and validates f's backing file header.
func (s *Store) readHeader(f *os.File) (fileHeader, error) {
	b := make([]byte, FileHeaderSize)
	n, err := f.ReadAt(b, 0)
	if n < FileHeaderSize {
		if err == nil || errors.Is(err, os.ErrClosed) || n > 0 || errors.Is(err, io.EOF) {
			return fileHeader{}, fmt.Errorf("%s: %w: backing file header truncated (%d bytes)", f.Name(), ErrCorrupt, n)
		}
		return fileHeader{}, fmt.Errorf("%s: read header: %w", f.Name(), err)
	}
	h, err := parseFileHeader(b)
	if err != nil {
		return h, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if int(h.BlockSize) != s.bs {
		return h, fmt.Errorf("%s: %w: block size %d, store uses %d", f.Name(), ErrBadFormat, h.BlockSize, s.bs)
	}
	return h, nil
}

// InitFile writes a new header with a fresh random file ID into f, which must
// be a new, empty backing file.
func (s *Store) InitFile(f *os.File) error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.readOnly {
		return fmt.Errorf("%w: InitFile %s", ErrReadOnly, f.Name())
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != 0 {
		return fmt.Errorf("%w: InitFile: %s is not empty (%d bytes)", ErrInvalid, f.Name(), fi.Size())
	}
	return s.initHeader(f)
}

func (s *Store) initHeader(f *os.File) error {
	h := fileHeader{Version: FormatVersion, BlockSize: uint32(s.bs), SizeHint: -1}
	if _, err := rand.Read(h.ID[:]); err != nil {
		return err
	}
	if _, err := f.WriteAt(h.marshal(), 0); err != nil {
		return fmt.Errorf("%s: write header: %w", f.Name(), ioErr(err))
	}
	return nil
}

// OpenFile returns a handle on the backing file f (read-write). The store
// takes ownership of f: it closes it when the last reference goes (or at
// once when the file ID is already open, e.g. through another hardlink). A
// zero-length f (created but never initialized, e.g. after a crash) is
// initialized.
func (s *Store) OpenFile(f *os.File) (*File, error) {
	e, err := s.acquire(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return newFile(e), nil
}

// acquire finds or creates the inode for f and takes a reference.
func (s *Store) acquire(f *os.File) (*inode, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		if s.readOnly {
			// Never initialized; a read-only store serves it as empty
			// without writing a header.
			return s.emptyInode(f, fi)
		}
		if err := s.initHeader(f); err != nil {
			return nil, err
		}
	}
	h, err := s.readHeader(f)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if e, ok := s.files[h.ID]; ok {
		if !os.SameFile(fi, e.fi) {
			s.mu.Unlock()
			return nil, dupIDError(f.Name(), e.path, h.ID)
		}
		e.refs++
		s.mu.Unlock()
		f.Close()
		return e, nil
	}
	s.mu.Unlock()
	// Load outside s.mu; another opener may race us: the first insert wins.
	e, err := s.loadInode(h, f, fi.Size())
	if err != nil {
		return nil, err
	}
	e.fi = fi
	e, inserted, err := s.publish(e, h.ID, fi, f)
	if err == nil && inserted && s.sweepOnOpen {
		s.sweepFile(e)
	}
	return e, err
}

// publish inserts the loaded inode e unless another opener was first (then
// that one gets the reference and f is closed).
func (s *Store) publish(e *inode, id FileID, fi os.FileInfo, f *os.File) (*inode, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	if other, ok := s.files[id]; ok {
		if !os.SameFile(fi, other.fi) {
			return nil, false, dupIDError(f.Name(), other.path, id)
		}
		other.refs++
		f.Close()
		return other, false, nil
	}
	e.refs = 1
	s.files[id] = e
	return e, true, nil
}

// dupIDError is the error for a backing file whose file ID is already open
// through a different file (not a hardlink): a copy of /backing that did not
// keep hardlinks, or a file copied inside it. Serving it through the open
// entry would show (and write) the other file's contents.
func dupIDError(path, other string, id FileID) error {
	return fmt.Errorf("%w: %s has the same file ID %s as %s, which is a different file (fsck reports duplicate-id)", ErrCorrupt, path, id, other)
}

// loadInode reads a file's committed state from the index. A backing file
// with records but no files entry in the index (a crash before the file's
// first commit, or an index older than the file) has its records adopted
// into the index first (adoptRecords), so they can never be overwritten by
// new writes as if the file were empty.
func (s *Store) loadInode(h fileHeader, f *os.File, fsize int64) (*inode, error) {
	e, err := s.loadIndexed(h.ID, f)
	if err != nil || e.known || fsize <= FileHeaderSize {
		return e, err
	}
	if s.readOnly {
		// Serve the records as adoption would, without committing them.
		val, best, _, err := s.rebuildFile(e.id, h, e.f, fsize, e.path)
		if err != nil {
			return nil, err
		}
		e.size, e.committedSize, e.nextGen, e.committed = val.Size, val.Size, val.NextGen, best
		return e, nil
	}
	return s.adoptRecords(e, h, fsize)
}

// emptyInode is an unshared inode for a never-initialized backing file of
// a read-only store (it has no file ID yet; a random one keys it).
func (s *Store) emptyInode(f *os.File, fi os.FileInfo) (*inode, error) {
	var id FileID
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	e := &inode{s: s, id: id, f: f, path: f.Name(), fi: fi, refs: 1,
		committed: make(map[int64]entry), pending: make(map[int64]entry), dirty: make(map[int64][]byte)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.files[id] = e
	return e, nil
}

// adoptRecords rebuilds the index state of e (which has no files entry) from
// its records, makes them durable and commits them.
func (s *Store) adoptRecords(e *inode, h fileHeader, fsize int64) (*inode, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	val, best, _, err := s.rebuildFile(e.id, h, e.f, fsize, e.path)
	if err != nil {
		return nil, err
	}
	if len(best) == 0 && val.Size == 0 {
		return e, nil
	}
	adopted, err := s.putAdopted(e.id, val, best, e.f)
	if err != nil {
		return nil, fmt.Errorf("%s: adopt records: %w", e.path, err)
	}
	if !adopted {
		return s.loadIndexed(e.id, e.f)
	}
	s.log.Warn("blockstore: backing file had records but no index entry; adopted them", "file", e.path, "blocks", len(best), "size", val.Size)
	e.known = true
	e.size, e.committedSize, e.nextGen = val.Size, val.Size, val.NextGen
	e.committed = best
	return e, nil
}

// loadIndexed reads a file's committed state from the index.
func (s *Store) loadIndexed(id FileID, f *os.File) (*inode, error) {
	e := &inode{s: s, id: id, f: f, path: f.Name(),
		committed: make(map[int64]entry), pending: make(map[int64]entry), dirty: make(map[int64][]byte)}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFiles).Get(id[:])
		if v == nil {
			return nil
		}
		fv, err := parseFileVal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		e.known = true
		e.size, e.committedSize, e.nextGen = fv.Size, fv.Size, fv.NextGen
		c := tx.Bucket(bucketBlocks).Cursor()
		for k, v := c.Seek(id[:]); len(k) >= 16 && FileID(k[:16]) == id; k, v = c.Next() {
			_, blk, ok := parseBlockKey(k)
			if !ok {
				s.log.Error("blockstore: bad index key", "file", e.path, "key", fmt.Sprintf("%x", k))
				e.badIndex = true
				continue
			}
			en, err := parseEntry(v, blk, s.bs)
			if err != nil {
				en = entry{bad: err}
				e.badIndex = true
				s.log.Error("blockstore: bad index entry", "file", e.path, "block", blk, "err", err)
			}
			e.committed[blk] = en
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// guardIndex runs fn, turning a panic inside bbolt (which it raises on
// damaged pages) or a memory fault on its mmap (a page id past the mapped
// file) into ErrCorrupt naming the index at path.
func guardIndex(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: index %s: %v", ErrCorrupt, path, r)
		}
	}()
	return fn()
}

// view runs fn in a read transaction (guarded like guardIndex).
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return guardIndex(s.db.Path(), func() error { return s.db.View(fn) })
}

// update runs fn in a write transaction (guarded like guardIndex).
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return guardIndex(s.db.Path(), func() error { return s.db.Update(fn) })
}

// StatFile returns the logical size and disk usage of backing file f,
// without opening a handle (it uses the open entry when there is one). f
// stays the caller's.
func (s *Store) StatFile(f *os.File) (logicalSize int64, diskBytes int64, err error) {
	if s.isClosed() {
		return 0, 0, ErrClosed
	}
	du, err := diskUsage(f)
	if err != nil {
		return 0, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if fi.Size() == 0 {
		return 0, du, nil
	}
	h, err := s.readHeader(f)
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrBadFormat) {
		// A damaged header: the file stays visible (size 0; opening it
		// fails with the error) so that it can be listed, renamed and
		// removed through the mount; fsck --repair rebuilds the header.
		s.log.Error("blockstore: damaged backing file header (fsck --repair rebuilds it from the records)", "file", f.Name(), "err", err)
		return 0, du, nil
	}
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	e := s.files[h.ID]
	s.mu.Unlock()
	if e != nil && os.SameFile(fi, e.fi) { // else a copy carrying the same ID
		e.mu.RLock()
		defer e.mu.RUnlock()
		return e.size, du, nil
	}
	var size int64
	indexed := false
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFiles).Get(h.ID[:])
		if v == nil {
			return nil
		}
		indexed = true
		fv, err := parseFileVal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		size = fv.Size
		return nil
	})
	if err == nil && !indexed && fi.Size() > FileHeaderSize {
		// Records the index does not know yet (OpenFile adopts them): report
		// the size they give, as the next open will.
		val, _, _, rerr := s.rebuildFile(h.ID, h, f, fi.Size(), f.Name())
		if rerr != nil {
			return 0, 0, rerr
		}
		size = val.Size
	}
	return size, du, err
}

// Unlinked tells the store that the caller removed the last name of backing
// file f (f itself stays the caller's and is still open). The file's index
// entries are dropped now, or when the last open handle closes.
func (s *Store) Unlinked(f *os.File) error {
	if s.readOnly {
		return nil // nothing can be unlinked on a read-only backing
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil // never initialized: nothing indexed
	}
	h, err := s.readHeader(f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if e, ok := s.files[h.ID]; ok {
		s.mu.Unlock()
		if !os.SameFile(fi, e.fi) {
			// A copy carrying the ID of the open file: the entries are
			// that file's; leave them (fsck reports the duplicate).
			return nil
		}
		e.mu.Lock()
		released := e.closed // its last handle went meanwhile (releaseIdle)
		if !released {
			e.unlinked = true
		}
		e.mu.Unlock()
		if !released {
			s.mu.Lock()
			last := e.refs == 0
			s.mu.Unlock()
			if !last {
				return nil
			}
			err := s.commit(context.Background(), e)
			if errors.Is(err, ErrClosed) && !s.isClosed() {
				// The last Close committed the drop first and released
				// the entry (an unlinked inode is released only once its
				// entries are gone).
				return nil
			}
			return err
		}
	} else {
		s.mu.Unlock()
	}
	// Not open: drop the entries now.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var d statCounters
	err = s.update(func(tx *bolt.Tx) error {
		d = statCounters{}
		if err := dropFileTx(tx, h.ID, s.bs, &d); err != nil {
			return err
		}
		st := s.committedStats()
		st.add(&d)
		return tx.Bucket(bucketMeta).Put(keyStats, st.marshal())
	})
	if err != nil {
		return fmt.Errorf("%s: drop index entries: %w", f.Name(), err)
	}
	s.addStats(&d)
	return nil
}

// dropFileTx deletes a file's entries from the index and accounts them in d.
func dropFileTx(tx *bolt.Tx, id FileID, bs int, d *statCounters) error {
	files := tx.Bucket(bucketFiles)
	if v := files.Get(id[:]); v != nil {
		if fv, err := parseFileVal(v); err == nil {
			d.addSize(fv.Size, 0, bs)
		}
		d.Files--
		if err := files.Delete(id[:]); err != nil {
			return err
		}
	}
	blocks := tx.Bucket(bucketBlocks)
	c := blocks.Cursor()
	var keys [][]byte
	for k, v := c.Seek(id[:]); len(k) >= 16 && FileID(k[:16]) == id; k, v = c.Next() {
		if _, blk, ok := parseBlockKey(k); ok {
			if en, err := parseEntry(v, blk, bs); err == nil {
				d.addEntry(&en, -1)
			}
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := blocks.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) addStats(d *statCounters) {
	s.statsMu.Lock()
	s.stats.add(d)
	s.statsMu.Unlock()
}

func diskUsage(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// ioErr classifies an error of the backing filesystem.
func ioErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	if errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return err
}
