package blockstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// FsckOptions choose what Fsck does. The zero value only verifies.
type FsckOptions struct {
	// Repair drops index entries that point at bad or missing records (the
	// report names the file and logical range lost), drops the entries of
	// files whose backing file is gone, punches records nothing references
	// and rewrites the aggregate stats.
	Repair bool
	// Rebuild discards the index and rebuilds it from the backing files
	// alone (for each block the valid record with the highest generation;
	// the size from the header's size hint, else the end of the last record).
	Rebuild bool
	// Progress, when set, is called after each backing file is checked (from
	// the calling goroutine).
	Progress func(FsckProgress)
}

// FsckProgress is how far a Fsck run is: files and backing bytes checked
// out of the totals the directory walk found.
type FsckProgress struct {
	Files, FilesTotal int
	Bytes, BytesTotal int64
}

// Problem kinds in a FsckReport.
const (
	ProblemBadHeader   = "bad-header"    // backing file header unreadable: the whole file is lost
	ProblemCorrupt     = "corrupt-block" // the record the index points at fails verification
	ProblemBadEntry    = "bad-entry"     // an index value that fails validation
	ProblemBeyondSize  = "beyond-size"   // an index entry past the file's logical size
	ProblemDuplicateID = "duplicate-id"  // two different backing files carry the same file ID
	ProblemStats       = "stats"         // aggregate stats differ from the entries
	ProblemIndex       = "index"         // the index itself cannot be read
	// ProblemUnindexed: a backing file with records and no index entry (an
	// older index, a commit that failed after the header hint). A mount
	// adopts its records; repair adopts them too, never punches them.
	ProblemUnindexed = "unindexed-file"
	// ProblemLostRecord: rebuild found a record that fails verification and
	// no newer valid version of its block: that version is lost (the block
	// reads as its previous version, or zeros).
	ProblemLostRecord = "lost-record"
	// ProblemIO: a referenced record could not be checked (I/O error,
	// engine failure). Repair leaves it alone: the record may be intact.
	ProblemIO = "io-error"
)

// Cleanup kinds: leftovers a crash can legitimately leave; they lose nothing
// committed and do not make a report unclean.
const (
	CleanupUnreferenced  = "unreferenced-record" // a record no index entry points at (superseded or uncommitted)
	CleanupOrphanFile    = "orphan-file"         // index entries of a file with no backing file (unlinked)
	CleanupUninitialized = "uninitialized-file"  // an empty backing file (created, header never written)
)

// FsckItem is one finding.
type FsckItem struct {
	Kind   string `json:"kind"`
	Path   string `json:"path,omitempty"`    // backing file
	FileID string `json:"file_id,omitempty"` // hex
	Block  int64  `json:"block"`             // -1 when not about one block
	// Offset and Length give the logical range affected (lost when the
	// problem is repaired).
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
	Detail   string `json:"detail"`
	Repaired bool   `json:"repaired"`
	// Lost: this run gave up the byte range [Offset, Offset+Length) (the
	// repair dropped it; it reads as zeros or an older version now).
	Lost bool `json:"lost"`
}

func (it FsckItem) String() string {
	var b strings.Builder
	b.WriteString(it.Kind)
	if it.Path != "" {
		fmt.Fprintf(&b, " %s", it.Path)
	} else if it.FileID != "" {
		fmt.Fprintf(&b, " file %s", it.FileID)
	}
	if it.Block >= 0 {
		fmt.Fprintf(&b, " block %d (bytes %d..%d)", it.Block, it.Offset, it.Offset+it.Length)
	}
	if it.Detail != "" {
		fmt.Fprintf(&b, ": %s", it.Detail)
	}
	switch {
	case it.Lost:
		b.WriteString(" [DATA LOST by this run]")
	case it.Repaired:
		b.WriteString(" [repaired]")
	}
	return b.String()
}

// FsckReport is what Fsck found (and did).
type FsckReport struct {
	Files          int        `json:"files"`           // backing files with a valid header
	Blocks         int64      `json:"blocks"`          // records verified
	BytesVerified  int64      `json:"bytes_verified"`  // logical bytes of verified records
	Problems       []FsckItem `json:"problems"`        // damage or inconsistency
	Cleanups       []FsckItem `json:"cleanups"`        // crash leftovers
	ReclaimedBytes int64      `json:"reclaimed_bytes"` // backing bytes punched (repair)
	Rebuilt        bool       `json:"rebuilt"`
	OldIndex       string     `json:"old_index,omitempty"` // where rebuild moved the old index
}

// newReport returns an empty report (lists empty, not nil: JSON `[]`).
func newReport() *FsckReport {
	return &FsckReport{Problems: []FsckItem{}, Cleanups: []FsckItem{}}
}

// Clean reports whether no problem was found (cleanups do not count).
func (r *FsckReport) Clean() bool { return len(r.Problems) == 0 }

// Unrepaired counts the problems this run did not repair.
func (r *FsckReport) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Lost reports whether this run gave up data (a repair or rebuild dropped
// byte ranges; each is a problem with Lost set).
func (r *FsckReport) Lost() bool {
	for _, p := range r.Problems {
		if p.Lost {
			return true
		}
	}
	return false
}

func (r *FsckReport) String() string {
	var b strings.Builder
	lost := 0
	for _, p := range r.Problems {
		if p.Lost {
			lost++
		}
	}
	fmt.Fprintf(&b, "%d files, %d blocks verified (%d bytes), %d problems (%d not repaired, %d with data lost by this run), %d cleanups",
		r.Files, r.Blocks, r.BytesVerified, len(r.Problems), r.Unrepaired(), lost, len(r.Cleanups))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\n  problem: %s", p)
	}
	for _, c := range r.Cleanups {
		fmt.Fprintf(&b, "\n  cleanup: %s", c)
	}
	return b.String()
}

func (r *FsckReport) problem(it FsckItem) *FsckItem {
	r.Problems = append(r.Problems, it)
	return &r.Problems[len(r.Problems)-1]
}

// backingFile is one backing file found by the fsck walk.
type backingFile struct {
	path  string
	hdr   fileHeader
	size  int64           // backing file size
	adopt map[int64]entry // verify of an unindexed file: the records a mount would adopt
}

// progress reports FsckProgress after each file.
type progress struct {
	p  FsckProgress
	fn func(FsckProgress)
}

func newProgress(files map[FileID]*backingFile, fn func(FsckProgress)) *progress {
	pr := &progress{fn: fn}
	pr.p.FilesTotal = len(files)
	for _, bf := range files {
		pr.p.BytesTotal += bf.size
	}
	return pr
}

func (pr *progress) file(bf *backingFile) {
	pr.p.Files++
	pr.p.Bytes += bf.size
	if pr.fn != nil {
		pr.fn(pr.p)
	}
}

// unindexed finds backing files with records and no index entry at all:
// Open would adopt those records, so they are a problem (verify) or are
// adopted (repair), never punched. It returns how many it adopted.
func (s *Store) unindexed(rep *FsckReport, files map[FileID]*backingFile, idx map[FileID]*indexedFile, repair bool) int {
	n := 0
	s.mu.Lock()
	open := make(map[FileID]bool, len(s.files))
	for id := range s.files {
		open[id] = true // a live verify: the open file commits its own records
	}
	s.mu.Unlock()
	for id, bf := range files {
		if idx[id] != nil || bf.size <= FileHeaderSize || open[id] {
			continue
		}
		f, err := os.Open(bf.path)
		if err != nil {
			rep.problem(FsckItem{Kind: ProblemIO, Path: bf.path, FileID: id.String(), Block: -1, Detail: err.Error()})
			continue
		}
		val, best, _, err := s.rebuildFile(id, bf.hdr, f, bf.size, bf.path)
		if err != nil {
			f.Close()
			rep.problem(FsckItem{Kind: ProblemIO, Path: bf.path, FileID: id.String(), Block: -1, Detail: err.Error()})
			continue
		}
		if len(best) == 0 && val.Size == 0 {
			f.Close()
			continue
		}
		it := rep.problem(FsckItem{Kind: ProblemUnindexed, Path: bf.path, FileID: id.String(), Block: -1, Length: val.Size,
			Detail: fmt.Sprintf("%d records (size %d) with no index entry; a mount adopts them", len(best), val.Size)})
		bf.adopt = best
		if repair {
			if _, err := s.putAdopted(id, val, best, f); err != nil {
				it.Detail += "; adopting them failed: " + err.Error()
			} else {
				it.Repaired = true
				it.Detail += "; adopted"
				n++
			}
		}
		f.Close()
	}
	return n
}

// Fsck checks (and with Repair or Rebuild, fixes) the store. Verification
// runs with open files (it first commits them); Repair and Rebuild need a
// store without open handles (ErrBusy).
func (s *Store) Fsck(opts FsckOptions) (*FsckReport, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if err := s.commit(context.Background(), nil); err != nil {
		return nil, fmt.Errorf("fsck: commit: %w", err)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	write := opts.Repair || opts.Rebuild
	if write && s.readOnly {
		return nil, fmt.Errorf("fsck: %w: repair and rebuild write to the store", ErrReadOnly)
	}
	if write {
		s.mu.Lock()
		n := len(s.files)
		s.mu.Unlock()
		if n > 0 {
			return nil, fmt.Errorf("fsck: %w (%d)", ErrBusy, n)
		}
	}
	rep := newReport()
	files, err := s.walkBacking(rep, opts.Repair)
	if err != nil {
		return rep, err
	}
	if opts.Rebuild {
		return rep, s.rebuild(rep, files, newProgress(files, opts.Progress))
	}
	return rep, s.verify(rep, files, opts)
}

// walkBacking finds every backing file and reads its header. A damaged
// header whose records all name one file ID is rewritten from them when
// repair is set (reported either way).
func (s *Store) walkBacking(rep *FsckReport, repair bool) (map[FileID]*backingFile, error) {
	files := map[FileID]*backingFile{}
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == s.meta {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil // another name of a hardlinked file
			}
			seen[k] = true
		}
		if fi.Size() == 0 {
			rep.Cleanups = append(rep.Cleanups, FsckItem{Kind: CleanupUninitialized, Path: path, Block: -1})
			return nil
		}
		h, ok := s.checkHeader(rep, path, fi.Size(), repair)
		if !ok {
			return nil
		}
		if other, ok := files[h.ID]; ok {
			rep.problem(FsckItem{Kind: ProblemDuplicateID, Path: path, FileID: h.ID.String(), Block: -1, Detail: "same file ID as " + other.path + " (a copy that did not keep the hardlink?)"})
			return nil
		}
		files[h.ID] = &backingFile{path: path, hdr: h, size: fi.Size()}
		rep.Files++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsck: walk %s: %w", s.dir, err)
	}
	return files, nil
}

// checkHeader reads the header of the backing file at path. A damaged one
// is a bad-header problem; its records tell the file ID (every record
// carries it), and with repair the immutable part of the header [0, 40) is
// rewritten from them (the size hint bytes are left as they are).
func (s *Store) checkHeader(rep *FsckReport, path string, size int64, repair bool) (fileHeader, bool) {
	f, err := os.Open(path)
	if err != nil {
		rep.problem(FsckItem{Kind: ProblemIO, Path: path, Block: -1, Detail: err.Error()})
		return fileHeader{}, false
	}
	defer f.Close()
	h, err := s.readHeader(f)
	if err == nil {
		return h, true
	}
	it := rep.problem(FsckItem{Kind: ProblemBadHeader, Path: path, Block: -1, Detail: err.Error()})
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrBadFormat) {
		return h, false // could not read it: nothing to say about the contents
	}
	if headerIntact(f) {
		// A header that passes its checksum is not damaged: it belongs to
		// another store (block size) or format version. Rewriting it with
		// this store's block size would misread every record after block 0.
		it.Detail += ": the header is intact, the file belongs to another store or format: not rewritten"
		return h, false
	}
	id, n, why := s.recordsID(f, size)
	if n == 0 {
		it.Detail += "; " + why + ": not recoverable (the file's data is unreachable)"
		return h, false
	}
	it.Detail += fmt.Sprintf("; its %d records name file ID %s", n, id)
	if !repair {
		it.Detail += ": fsck --repair rewrites the header from them"
		return h, false
	}
	nh := fileHeader{Version: FormatVersion, BlockSize: uint32(s.bs), ID: id, SizeHint: -1}
	if err := writeHeaderID(path, nh); err != nil {
		it.Detail += ": rewriting the header failed: " + err.Error()
		return h, false
	}
	it.Repaired = true
	it.Detail += ": header rewritten"
	f2, err := os.Open(path)
	if err != nil {
		return h, false
	}
	defer f2.Close()
	h, err = s.readHeader(f2)
	return h, err == nil
}

// recordsID returns the file ID that every valid record header of f names
// and how many there are (n = 0 with the reason when there is none, or
// when they disagree).
func (s *Store) recordsID(f *os.File, size int64) (id FileID, n int, why string) {
	mixed := false
	s.scanFile(f, size, func(block int64, l loc, off int64, h *recordHeader, err error) {
		if err != nil || h.Block != block {
			return
		}
		if n > 0 && h.ID != id {
			mixed = true
		}
		id = h.ID
		n++
	})
	switch {
	case mixed:
		return id, 0, "its records name different file IDs"
	case n == 0:
		return id, 0, "no valid record"
	}
	return id, n, ""
}

// writeHeaderID rewrites bytes [0, 40) of the header at path (magic,
// version, block size, file ID and their checksum) and syncs the file.
func writeHeaderID(path string, h fileHeader) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(h.marshal()[:40], 0); err != nil {
		return err
	}
	return unix.Fdatasync(int(f.Fd()))
}

// indexedFile is a file's state as the index has it.
type indexedFile struct {
	val     fileVal
	valErr  error
	entries map[int64]entry
}

// readIndex loads the whole index.
func (s *Store) readIndex() (map[FileID]*indexedFile, statCounters, [][]byte, error) {
	idx := map[FileID]*indexedFile{}
	var st statCounters
	var badKeys [][]byte
	get := func(id FileID) *indexedFile {
		f := idx[id]
		if f == nil {
			f = &indexedFile{entries: map[int64]entry{}, valErr: errors.New("no files entry")}
			idx[id] = f
		}
		return f
	}
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyStats); v != nil {
			st, _ = parseStats(v)
		}
		c := tx.Bucket(bucketFiles).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 16 {
				badKeys = append(badKeys, append([]byte{'f'}, k...))
				continue
			}
			f := get(FileID(k))
			f.val, f.valErr = parseFileVal(v)
		}
		c = tx.Bucket(bucketBlocks).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			id, blk, ok := parseBlockKey(k)
			if !ok {
				badKeys = append(badKeys, append([]byte{'b'}, k...))
				continue
			}
			en, err := parseEntry(v, blk, s.bs)
			if err != nil {
				en = entry{bad: err}
			}
			get(id).entries[blk] = en
		}
		return nil
	})
	return idx, st, badKeys, err
}

// verify checks every index entry against its record and scans the backing
// files for unreferenced records.
//
// It is long because it is one pass with one index snapshot: the entries it
// checks, the records it scans and the stats it recomputes must agree.
func (s *Store) verify(rep *FsckReport, files map[FileID]*backingFile, opts FsckOptions) error {
	repair := opts.Repair
	idx, stored, badKeys, err := s.readIndex()
	if err == nil && s.unindexed(rep, files, idx, repair) > 0 && repair {
		idx, stored, badKeys, err = s.readIndex() // with the adopted files
	}
	if err != nil {
		rep.problem(FsckItem{Kind: ProblemIndex, Block: -1, Detail: err.Error() + " (the index cannot be read: fsck --rebuild builds a new one from the backing files)"})
		return nil
	}
	bs := int64(s.bs)
	prog := newProgress(files, opts.Progress)
	var dropFiles []FileID
	dropBlocks := map[FileID][]int64{}
	for _, k := range badKeys {
		it := rep.problem(FsckItem{Kind: ProblemBadEntry, Block: -1, Detail: fmt.Sprintf("malformed index key %x", k[1:])})
		it.Repaired = repair
	}
	ids := make([]FileID, 0, len(idx))
	for id := range idx {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	for _, id := range ids {
		xf := idx[id]
		bf := files[id]
		if bf == nil {
			rep.Cleanups = append(rep.Cleanups, FsckItem{Kind: CleanupOrphanFile, FileID: id.String(), Block: -1,
				Detail: fmt.Sprintf("%d block entries, no backing file", len(xf.entries)), Repaired: repair})
			dropFiles = append(dropFiles, id)
			continue
		}
		if xf.valErr != nil {
			it := rep.problem(FsckItem{Kind: ProblemBadEntry, Path: bf.path, FileID: id.String(), Block: -1, Detail: "files entry: " + xf.valErr.Error()})
			it.Repaired = repair
			// Repair: rebuild the files entry from the blocks below.
			xf.val = fileVal{Size: maxEnd(xf.entries, s.bs), NextGen: maxGen(xf.entries) + 1}
			xf.valErr = errNeedsPut
		}
		bad := s.verifyFile(rep, bf, id, xf)
		for _, b := range bad {
			it := &rep.Problems[b.item]
			it.Offset, it.Length = b.block*bs, min(bs, max(0, xf.val.Size-b.block*bs))
			if it.Kind == ProblemIO {
				continue // not known to be bad: never dropped
			}
			it.Repaired = repair
			// An entry past the file size covers nothing a reader sees.
			it.Lost = repair && it.Kind != ProblemBeyondSize && it.Length > 0
			dropBlocks[id] = append(dropBlocks[id], b.block)
		}
		prog.file(bf)
	}
	punches := s.unreferenced(rep, files, idx, dropBlocks, repair)
	// Stats as the entries say; then what they become after the repair.
	var want statCounters
	for _, xf := range idx {
		if xf.valErr == nil {
			want.Files++
			want.addSize(0, xf.val.Size, s.bs)
		}
		for _, en := range xf.entries {
			want.addEntry(&en, 1)
		}
	}
	if want != stored {
		it := rep.problem(FsckItem{Kind: ProblemStats, Block: -1, Detail: fmt.Sprintf("index stats %+v, entries say %+v", stored, want)})
		it.Repaired = repair
	}
	for _, id := range dropFiles {
		xf := idx[id]
		if xf.valErr == nil {
			want.Files--
			want.addSize(xf.val.Size, 0, s.bs)
		}
		for _, en := range xf.entries {
			want.addEntry(&en, -1)
		}
	}
	for id, xf := range idx {
		if xf.valErr == errNeedsPut && files[id] != nil { // files entry rebuilt by the repair
			want.Files++
			want.addSize(0, xf.val.Size, s.bs)
		}
	}
	for id, bl := range dropBlocks {
		xf := idx[id]
		for _, b := range bl {
			en := xf.entries[b]
			want.addEntry(&en, -1)
		}
	}
	if !repair {
		return nil
	}
	err = s.update(func(tx *bolt.Tx) error {
		fb, bb := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
		for _, k := range badKeys {
			b := bb
			if k[0] == 'f' {
				b = fb
			}
			if err := b.Delete(k[1:]); err != nil {
				return err
			}
		}
		for _, id := range dropFiles {
			var d statCounters
			if err := dropFileTx(tx, id, s.bs, &d); err != nil {
				return err
			}
		}
		for id, bl := range dropBlocks {
			for _, b := range bl {
				if err := bb.Delete(blockKey(id, b)); err != nil {
					return err
				}
			}
		}
		for id, xf := range idx {
			if files[id] != nil && xf.valErr != nil {
				if err := fb.Put(id[:], xf.val.marshal()); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keyStats, want.marshal())
	})
	if err != nil {
		return fmt.Errorf("fsck repair: %w", err)
	}
	s.statsMu.Lock()
	s.stats = want
	s.statsMu.Unlock()
	for _, p := range punches {
		if n, err := punchPath(p.path, p.off, p.n); err == nil {
			rep.ReclaimedBytes += n
		}
	}
	return nil
}

// unreferenced scans the backing files for records no entry references
// (cleanups, punched by a repair) and records it could not read (problems,
// never punched). With repair, the records of the entries it drops count as
// unreferenced, so the repair reclaims them in the same pass.
func (s *Store) unreferenced(rep *FsckReport, files map[FileID]*backingFile, idx map[FileID]*indexedFile, dropBlocks map[FileID][]int64, repair bool) []punchAt {
	bs := int64(s.bs)
	var punches []punchAt
	for id, bf := range files {
		xf := idx[id]
		refs := map[int64]entry{}
		if xf != nil {
			refs = xf.entries
		} else if bf.adopt != nil {
			refs = bf.adopt // a mount would adopt them: never a cleanup
		}
		dropped := map[int64]bool{}
		if repair {
			for _, b := range dropBlocks[id] {
				dropped[b] = true
			}
		}
		s.scanRecords(bf, func(block int64, l loc, off int64, h *recordHeader, err error) {
			if en, ok := refs[block]; ok && en.bad == nil && en.Loc == l && !dropped[block] {
				return // referenced: verified (and reported when bad) above
			}
			detail := "not referenced by the index"
			if dropped[block] {
				detail = "record of the entry this repair dropped"
			}
			if err != nil {
				detail = "unreadable and not referenced: " + err.Error()
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				// Could not read it: maybe a record an entry should point
				// at; never punched.
				rep.problem(FsckItem{Kind: ProblemIO, Path: bf.path, FileID: id.String(), Block: block, Offset: block * bs, Length: bs, Detail: err.Error()})
				return
			}
			rep.Cleanups = append(rep.Cleanups, FsckItem{Kind: CleanupUnreferenced, Path: bf.path, FileID: id.String(), Block: block,
				Offset: block * bs, Length: bs, Detail: fmt.Sprintf("%s at offset %d (%s)", detail, off, l), Repaired: repair})
			punches = append(punches, punchAt{bf.path, off, int64(locCapacity(s.bs, l))})
		})
	}
	return punches
}

// punchAt is a record to reclaim.
type punchAt struct {
	path string
	off  int64
	n    int64
}

var errNeedsPut = errors.New("files entry rebuilt")

func maxEnd(entries map[int64]entry, bs int) int64 {
	var end int64
	for b, en := range entries {
		if en.bad == nil {
			end = max(end, b*int64(bs)+int64(en.RawLen))
		}
	}
	return end
}

func maxGen(entries map[int64]entry) uint64 {
	var g uint64
	for _, en := range entries {
		g = max(g, en.Gen)
	}
	return g
}

type badBlock struct {
	block int64
	item  int // index in rep.Problems
}

// verifyFile reads and fully verifies every indexed block of one file.
func (s *Store) verifyFile(rep *FsckReport, bf *backingFile, id FileID, xf *indexedFile) []badBlock {
	var bad []badBlock
	f, err := os.Open(bf.path)
	if err != nil {
		for b := range xf.entries {
			rep.problem(FsckItem{Kind: ProblemIO, Path: bf.path, FileID: id.String(), Block: b, Detail: err.Error()})
			bad = append(bad, badBlock{b, len(rep.Problems) - 1})
		}
		return bad
	}
	defer f.Close()
	e := &inode{s: s, id: id, f: f, path: bf.path}
	blocks := make([]int64, 0, len(xf.entries))
	for b := range xf.entries {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	const batch = 32
	for i := 0; i < len(blocks); i += batch {
		var fs []*fetched
		for _, b := range blocks[i:min(i+batch, len(blocks))] {
			en := xf.entries[b]
			if en.bad != nil {
				rep.problem(FsckItem{Kind: ProblemBadEntry, Path: bf.path, FileID: id.String(), Block: b, Detail: en.bad.Error()})
				bad = append(bad, badBlock{b, len(rep.Problems) - 1})
				continue
			}
			if xf.valErr == nil && b*int64(s.bs) >= xf.val.Size {
				rep.problem(FsckItem{Kind: ProblemBeyondSize, Path: bf.path, FileID: id.String(), Block: b, Detail: fmt.Sprintf("file size %d", xf.val.Size)})
				bad = append(bad, badBlock{b, len(rep.Problems) - 1})
				continue
			}
			fs = append(fs, &fetched{block: b, en: en})
		}
		if err := e.fetch(context.Background(), fs); err != nil {
			for _, fe := range fs {
				fe.err = err
			}
		}
		for _, fe := range fs {
			if fe.err != nil {
				kind := ProblemCorrupt
				if !errors.Is(fe.err, ErrCorrupt) {
					kind = ProblemIO // read or engine failure: the record may be fine
				}
				rep.problem(FsckItem{Kind: kind, Path: bf.path, FileID: id.String(), Block: fe.block, Detail: fe.err.Error()})
				bad = append(bad, badBlock{fe.block, len(rep.Problems) - 1})
				continue
			}
			rep.Blocks++
			rep.BytesVerified += int64(len(fe.data))
		}
	}
	return bad
}

// scanRecords calls fn for every record position of bf that holds data (it
// skips holes with SEEK_DATA). h is nil when err is set.
func (s *Store) scanRecords(bf *backingFile, fn func(block int64, l loc, off int64, h *recordHeader, err error)) {
	f, err := os.Open(bf.path)
	if err != nil {
		return
	}
	defer f.Close()
	s.scanFile(f, bf.size, fn)
}

// scanFile is scanRecords on an open backing file of the given size. It only
// uses pread and lseek(SEEK_DATA).
func (s *Store) scanFile(f *os.File, size int64, fn func(block int64, l loc, off int64, h *recordHeader, err error)) {
	fd := int(f.Fd())
	hb := make([]byte, RecordHeaderSize)
	check := func(block int64, l loc, off int64) {
		n, rerr := f.ReadAt(hb, off)
		if ierr := s.hooks.inject("read", f.Name()); ierr != nil {
			n, rerr = 0, ierr
		}
		if n < RecordHeaderSize && rerr != nil && !errors.Is(rerr, io.EOF) {
			// An I/O error is not "no record here": callers must not take
			// it for a hole (rebuild would leave the block out).
			fn(block, l, off, nil, fmt.Errorf("read record header at offset %d: %w", off, rerr))
			return
		}
		if n < RecordHeaderSize || isZero(hb) {
			if n > 0 && !isZero(hb[:n]) {
				fn(block, l, off, nil, fmt.Errorf("%w: truncated record header", ErrCorrupt))
			}
			return
		}
		h, err := parseRecordHeader(hb, s.bs)
		if err != nil {
			fn(block, l, off, nil, err)
			return
		}
		fn(block, l, off, &h, nil)
	}
	check(0, locInline, inlineOffset)
	ss := slotSize(s.bs)
	pos := int64(dataStart)
	for pos < size {
		d, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return // no more data
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			d, err = pos, nil // no SEEK_DATA here: visit every slot
		}
		if err != nil {
			// Not "no more records": the rest of the file was not seen.
			fn(-1, locNone, pos, nil, fmt.Errorf("seek data at %d: %w", pos, err))
			return
		}
		if d < dataStart {
			d = dataStart
		}
		slot := (d - dataStart) / ss
		start := dataStart + slot*ss
		block, l, ok := locAt(s.bs, start)
		if !ok {
			return
		}
		check(block, l, start)
		pos = start + ss
	}
}

// punchPath punches [off, off+n) of the file at path.
func punchPath(path string, off, n int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return 0, err
	}
	return n, nil
}

// rebuildFile reconstructs one file's index state from its records: for
// each block the fully valid record (header, payload, decode, data
// checksum) with the highest generation; the size from the header's size
// hint when valid (records past it are dropped), else the end of the last
// record. others lists the records left out; those that may have been the
// newest version of a block inside the size (they fail verification and no
// valid record of a higher generation exists) have Lost set.
func (s *Store) rebuildFile(id FileID, hdr fileHeader, f *os.File, fsize int64, path string) (fileVal, map[int64]entry, []FsckItem, error) {
	bs := int64(s.bs)
	best := map[int64]entry{}
	var others []FsckItem
	var cands []*fetched
	var candOff []int64
	var scanErr error
	var otherGen []int64 // per others item: its generation, -1 when unknown
	s.scanFile(f, fsize, func(block int64, l loc, off int64, h *recordHeader, err error) {
		item := FsckItem{Kind: CleanupUnreferenced, Path: path, FileID: id.String(), Block: block, Offset: block * bs, Length: bs}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			scanErr = cmp.Or(scanErr, fmt.Errorf("%s: %w", path, err))
			return
		}
		if err != nil {
			item.Detail = fmt.Sprintf("unreadable record at offset %d: %v", off, err)
			item.Lost = block >= 0
			others, otherGen = append(others, item), append(otherGen, -1)
			return
		}
		if h.ID != id || h.Block != block || RecordHeaderSize+int(h.StoredLen) > locCapacity(s.bs, l) {
			item.Detail = fmt.Sprintf("record at offset %d belongs elsewhere (file %s block %d)", off, h.ID, h.Block)
			others, otherGen = append(others, item), append(otherGen, -1)
			return
		}
		en := entry{Loc: l, Algo: h.Algo, Level: h.Level, RawLen: h.RawLen, StoredLen: h.StoredLen, RawCRC: h.RawCRC, StoredCRC: h.StoredCRC, Gen: h.Gen}
		cands = append(cands, &fetched{block: block, en: en})
		candOff = append(candOff, off)
	})
	if scanErr != nil {
		return fileVal{}, nil, nil, scanErr // as below: never build without a block we could not see
	}
	e := &inode{s: s, id: id, f: f, path: path}
	for i := 0; i < len(cands); i += 32 {
		if err := e.fetch(context.Background(), cands[i:min(i+32, len(cands))]); err != nil {
			return fileVal{}, nil, nil, err
		}
	}
	for i, c := range cands {
		if c.err != nil && !errors.Is(c.err, ErrCorrupt) {
			// Could not check it (read error, engine failure): leaving it
			// out would build an index without the block and then reclaim
			// (punch) its record. Give up instead.
			return fileVal{}, nil, nil, fmt.Errorf("%s: record at offset %d: %w", path, candOff[i], c.err)
		}
		if c.err != nil {
			others = append(others, FsckItem{Kind: CleanupUnreferenced, Path: path, FileID: id.String(), Block: c.block,
				Offset: c.block * bs, Length: bs, Lost: true, Detail: fmt.Sprintf("record at offset %d (generation %d) fails verification: %v", candOff[i], c.en.Gen, c.err)})
			otherGen = append(otherGen, int64(c.en.Gen))
			continue
		}
		if old, ok := best[c.block]; !ok || c.en.Gen > old.Gen {
			best[c.block] = c.en
		}
	}
	size := hdr.SizeHint
	if size < 0 {
		size = maxEnd(best, s.bs)
	}
	gen := max(maxGen(best)+1, hdr.SizeGen)
	for b := range best {
		if b*bs >= size {
			delete(best, b)
		}
	}
	markLost(others, otherGen, best, size, bs)
	return fileVal{Size: size, NextGen: gen}, best, others, nil
}

// markLost keeps Lost only on the records left out by rebuildFile that may
// have been their block's newest version: inside the size and with no valid
// record of a higher generation (gens[i] < 0: generation unknown).
func markLost(others []FsckItem, gens []int64, best map[int64]entry, size, bs int64) {
	for i := range others {
		it := &others[i]
		if !it.Lost {
			continue
		}
		newer, ok := best[it.Block]
		superseded := ok && gens[i] >= 0 && newer.Gen > uint64(gens[i])
		if superseded || it.Block*bs >= size {
			it.Lost = false
			continue
		}
		it.Kind, it.Length = ProblemLostRecord, min(bs, size-it.Block*bs)
		if ok {
			it.Detail += fmt.Sprintf("; the block now has generation %d, an older version if this record was newer", newer.Gen)
		} else {
			it.Detail += "; no other version: the block reads as zeros"
		}
	}
}

// rebuild replaces the index with one built from the backing files.
func (s *Store) rebuild(rep *FsckReport, files map[FileID]*backingFile, prog *progress) error {
	type built struct {
		id      FileID
		val     fileVal
		entries map[int64]entry
	}
	var all []built
	for id, bf := range files {
		f, err := os.Open(bf.path)
		if err != nil {
			return fmt.Errorf("fsck rebuild: %w", err)
		}
		val, best, others, err := s.rebuildFile(id, bf.hdr, f, bf.size, bf.path)
		f.Close()
		if err != nil {
			return err
		}
		for _, it := range others {
			if it.Lost {
				it.Repaired = true
				rep.Problems = append(rep.Problems, it)
			} else {
				rep.Cleanups = append(rep.Cleanups, it)
			}
		}
		for _, en := range best {
			rep.Blocks++
			rep.BytesVerified += int64(en.RawLen)
		}
		all = append(all, built{id: id, val: val, entries: best})
		prog.file(bf)
	}
	var st statCounters
	err := s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketFiles, bucketBlocks} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		fb, bb := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
		st = statCounters{}
		for _, x := range all {
			if err := fb.Put(x.id[:], x.val.marshal()); err != nil {
				return err
			}
			st.Files++
			st.addSize(0, x.val.Size, s.bs)
			for b, en := range x.entries {
				if err := bb.Put(blockKey(x.id, b), en.marshal()); err != nil {
					return err
				}
				st.addEntry(&en, 1)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyStats, st.marshal())
	})
	if err != nil {
		return fmt.Errorf("fsck rebuild: %w", err)
	}
	s.statsMu.Lock()
	s.stats = st
	s.statsMu.Unlock()
	rep.Rebuilt = true
	// Reclaim what the new index does not reference.
	for i := range rep.Cleanups {
		c := &rep.Cleanups[i]
		if c.Kind != CleanupUnreferenced {
			continue
		}
		c.Repaired = true
	}
	for _, x := range all {
		bf := files[x.id]
		s.scanRecords(bf, func(block int64, l loc, off int64, h *recordHeader, err error) {
			if en, ok := x.entries[block]; ok && en.Loc == l && err == nil && h.Gen == en.Gen {
				return
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return // could not read it: never punch what we did not see
			}
			if n, err := punchPath(bf.path, off, int64(locCapacity(s.bs, l))); err == nil {
				rep.ReclaimedBytes += n
			}
		})
	}
	return nil
}

// RebuildIndex rebuilds the index of the store in backingDir from its
// backing files alone. The old index is neither walked nor modified (only
// a read-only open names it): it is moved aside first (index.db.damaged-<time> when it cannot be opened,
// index.db.replaced-<time> otherwise; a damaged page can pass Open and
// still fail the rebuild transaction) and the store is opened with no
// index, which rebuilds it; when that fails the old index is put back. It
// takes the store lock like Open and never creates a store (ErrNotStore).
func RebuildIndex(backingDir string, opts *Options) (*FsckReport, error) {
	o := openDefaults(opts)
	if o.ReadOnly {
		return nil, fmt.Errorf("fsck rebuild: %w", ErrReadOnly)
	}
	sd, err := lockStoreDir(backingDir, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	if sd.state != stateStore {
		sd.close()
		return nil, notStoreError(backingDir, sd.state)
	}
	if sd.meta, err = openMetaDir(sd.root, false); err != nil {
		sd.close()
		return nil, err
	}
	if _, err := readFormatFile(sd.meta); err != nil {
		sd.close()
		return nil, err
	}
	aside, err := moveIndexAside(sd.meta, o.LockTimeout)
	if err != nil {
		sd.close()
		return nil, err
	}
	s, err := openStoreDir(backingDir, sd, &o, true)
	if err != nil {
		// Put the old index back: a half-built one must not outlive the
		// failure (the next Open would trust it).
		if aside != "" {
			mfd := int(sd.meta.Fd())
			unix.Unlinkat(mfd, indexName, 0)
			if rerr := unix.Renameat(mfd, filepath.Base(aside), mfd, indexName); rerr != nil {
				err = fmt.Errorf("%w (and moving the old index back from %s failed: %v)", err, aside, rerr)
			}
		}
		sd.close()
		return nil, err
	}
	rep := s.rebuiltAtOpen
	if rep == nil { // there was no index to move: Open saw none either
		rep, err = s.Fsck(FsckOptions{Rebuild: true, Progress: o.RebuildProgress})
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if rep != nil {
		rep.OldIndex = aside
	}
	return rep, err
}

// moveIndexAside renames .accelfs/index.db to a dated name and returns it
// ("" when there was none).
func moveIndexAside(meta *os.File, timeout time.Duration) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(meta.Fd()), indexName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	tag := "replaced"
	if db, err := openIndex(meta, timeout, true); err != nil {
		tag = "damaged"
	} else {
		db.Close()
	}
	name := fmt.Sprintf("%s.%s-%s", indexName, tag, time.Now().UTC().Format("20060102T150405Z"))
	mfd := int(meta.Fd())
	if err := unix.Renameat(mfd, indexName, mfd, name); err != nil {
		return "", fmt.Errorf("move the index aside: %w", err)
	}
	if err := meta.Sync(); err != nil {
		return "", err
	}
	return filepath.Join(meta.Name(), name), nil
}

// headerIntact reports whether f's header bytes pass their own checksum
// (whatever the magic, version or block size they carry).
func headerIntact(f *os.File) bool {
	b := make([]byte, FileHeaderSize)
	if n, _ := f.ReadAt(b, 0); n < FileHeaderSize {
		return false
	}
	return binary.LittleEndian.Uint32(b[32:]) == crc32c(b[0:32])
}
