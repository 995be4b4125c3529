package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/accelfs/accelfs/codec"
	bolt "go.etcd.io/bbolt"
)

// setupCorrupt creates a store with one 4-block file "a", committed, and
// returns the dir, the backing path and the committed entries.
func setupCorrupt(t *testing.T, algo codec.ID) (string, string, map[int64]entry) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, algo))
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(4*4096, 7), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	ents := map[int64]entry{}
	for b, en := range f.e.committed {
		ents[b] = en
	}
	f.Close()
	s.Close()
	return dir, filepath.Join(dir, "a"), ents
}

// readBlockErr opens the store and reads the whole file, returning the error.
func readBlockErr(t *testing.T, dir string, algo codec.ID) (*Store, error) {
	s := mustOpen(t, dir, testOpts(t, 4096, algo))
	t.Cleanup(func() { s.Close() })
	f := openFile(t, s, "a")
	defer f.Close()
	buf := make([]byte, 4*4096)
	_, err := f.ReadAt(buf, 0)
	return s, err
}

// allocBound runs fn and fails if it allocated more than limit bytes.
func allocBound(t *testing.T, limit uint64, fn func()) {
	t.Helper()
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	if d := b.TotalAlloc - a.TotalAlloc; d > limit {
		t.Fatalf("allocated %d bytes, bound %d", d, limit)
	}
}

func fsckWant(t *testing.T, s *Store, kind string, path string, block int64) {
	t.Helper()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind == kind && p.Path == path && p.Block == block {
			return
		}
	}
	t.Fatalf("fsck does not report %s %s block %d: %v", kind, path, block, rep)
}

func TestCorruptRecordHeaderByte(t *testing.T) {
	dir, path, ents := setupCorrupt(t, codec.LZ4)
	off, _ := locOffset(4096, 1, ents[1].Loc)
	corruptAt(t, path, off+30) // inside the header (generation field)
	s, err := readBlockErr(t, dir, codec.LZ4)
	wantCorrupt(t, err, path, 1)
	fsckWant(t, s, ProblemCorrupt, path, 1)
}

func TestCorruptTruncatedBackingFile(t *testing.T) {
	dir, path, ents := setupCorrupt(t, codec.LZ4)
	off, _ := locOffset(4096, 3, ents[3].Loc)
	if err := os.Truncate(path, off+10); err != nil {
		t.Fatal(err)
	}
	s, err := readBlockErr(t, dir, codec.LZ4)
	wantCorrupt(t, err, path, 3)
	fsckWant(t, s, ProblemCorrupt, path, 3)
	// Truncated inside the header.
	if err := os.Truncate(path, 20); err != nil {
		t.Fatal(err)
	}
	bf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenFile(bf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenFile of a truncated header: %v", err)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || len(rep.Problems) == 0 || rep.Problems[0].Kind != ProblemBadHeader {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}

// rewriteRecordHeader rewrites a record header's field with a valid header
// checksum, so only the length checks can catch it.
func rewriteRecordHeader(t *testing.T, path string, off int64, mod func(h []byte)) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, RecordHeaderSize)
	if _, err := f.ReadAt(h, off); err != nil {
		t.Fatal(err)
	}
	mod(h)
	binary.LittleEndian.PutUint32(h[60:], crc32c(h[:60]))
	if _, err := f.WriteAt(h, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptAbsurdLengths(t *testing.T) {
	for name, mod := range map[string]func(h []byte){
		"stored":  func(h []byte) { binary.LittleEndian.PutUint32(h[44:], 0xffffffff) },
		"raw":     func(h []byte) { binary.LittleEndian.PutUint32(h[40:], 0x7fffffff) },
		"algo":    func(h []byte) { h[5] = 200 },
		"block":   func(h []byte) { binary.LittleEndian.PutUint64(h[24:], 1<<62) },
		"zerolen": func(h []byte) { binary.LittleEndian.PutUint32(h[44:], 0) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, path, ents := setupCorrupt(t, codec.Zstd)
			off, _ := locOffset(4096, 2, ents[2].Loc)
			rewriteRecordHeader(t, path, off, mod)
			var s *Store
			var err error
			allocBound(t, 8<<20, func() { s, err = readBlockErr(t, dir, codec.Zstd) })
			wantCorrupt(t, err, path, 2)
			fsckWant(t, s, ProblemCorrupt, path, 2)
		})
	}
}

func TestCorruptIndexEntry(t *testing.T) {
	dir, path, _ := setupCorrupt(t, codec.LZ4)
	// Put absurd values into the index directly.
	db, err := bolt.Open(filepath.Join(dir, MetaDir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id FileID
	err = db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFiles).Cursor()
		k, _ := c.First()
		copy(id[:], k)
		en := entry{Loc: locSlot0, Algo: codec.LZ4, RawLen: 1 << 30, StoredLen: 1 << 30, Gen: 1}
		if err := tx.Bucket(bucketBlocks).Put(blockKey(id, 1), en.marshal()); err != nil {
			return err
		}
		return tx.Bucket(bucketBlocks).Put(blockKey(id, 2), []byte("short"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var s *Store
	allocBound(t, 8<<20, func() { s, err = readBlockErr(t, dir, codec.LZ4) })
	wantCorrupt(t, err, path, 1)
	fsckWant(t, s, ProblemBadEntry, path, 1)
	fsckWant(t, s, ProblemBadEntry, path, 2)
	if _, err := s.Fsck(FsckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("after repair: %v %v", err, rep)
	}
}

func TestCorruptFileHeader(t *testing.T) {
	dir, path, _ := setupCorrupt(t, codec.LZ4)
	// Absurd block size with a valid header checksum.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, FileHeaderSize)
	f.ReadAt(h, 0)
	binary.LittleEndian.PutUint32(h[12:], 0xfffffff0)
	binary.LittleEndian.PutUint32(h[32:], crc32c(h[:32]))
	f.WriteAt(h, 0)
	f.Close()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	bf, _ := os.OpenFile(path, os.O_RDWR, 0)
	if _, err := s.OpenFile(bf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenFile: %v, want ErrCorrupt", err)
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || len(rep.Problems) == 0 || rep.Problems[0].Kind != ProblemBadHeader || rep.Problems[0].Path != path {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}

func TestCorruptFormatFile(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	s.Close()
	for _, content := range []string{"{", `{"magic":"accelfs-store","format_version":1,"block_size":12345,"algo":"lz4"}`, `{"magic":"accelfs-store","format_version":99,"block_size":4096,"algo":"lz4"}`} {
		if err := os.WriteFile(filepath.Join(dir, MetaDir, formatName), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, nil); !errors.Is(err, ErrBadFormat) {
			t.Fatalf("Open with format %q: %v", content, err)
		}
	}
}

// An index with valid meta pages but damaged data pages: bbolt panics on
// such pages (Open walks the tree to rebuild its freelist). Open must give
// ErrCorrupt, never crash the process.
func TestCorruptIndexPages(t *testing.T) {
	if raceEnabled {
		// -race turns on checkptr, which aborts the process (not a panic)
		// when bbolt's unsafe.Slice spans a damaged page's bogus count.
		t.Skip("checkptr (on with -race) makes bbolt's reads of damaged pages fatal")
	}
	for seed := 0; seed < 8; seed++ {
		dir := t.TempDir()
		s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
		for i := 0; i < 20; i++ {
			f := createFile(t, s, fmt.Sprintf("f%d", i))
			mustWrite(t, f, compressible(3*4096+i, i), 0)
			f.Close()
		}
		s.Close()
		idx := filepath.Join(dir, MetaDir, indexName)
		b, err := os.ReadFile(idx)
		if err != nil {
			t.Fatal(err)
		}
		ps := os.Getpagesize()
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		for p := 2; p*ps < len(b); p++ { // keep the two meta pages
			pg := b[p*ps : (p+1)*ps]
			for k := 0; k < 64; k++ {
				pg[16+rng.IntN(ps-16)] = byte(rng.Uint32())
			}
			if seed%2 == 0 { // also the page headers (ids, flags, counts)
				for k := 0; k < 16; k++ {
					pg[k] = byte(rng.Uint32())
				}
			}
		}
		if err := os.WriteFile(idx, b, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("seed %d: Open panicked: %v", seed, r)
				}
			}()
			s, err := Open(dir, testOpts(t, 4096, codec.LZ4))
			if err == nil {
				// Undamaged where it looked: every file reads or fails cleanly.
				for i := 0; i < 20; i++ {
					bf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					if f, err := s.OpenFile(bf); err == nil {
						buf := make([]byte, f.Size())
						f.ReadAt(buf, 0)
						f.Close()
					}
				}
				s.Fsck(FsckOptions{})
				s.Close()
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("seed %d: Open: %v, want ErrCorrupt", seed, err)
			} else {
				t.Logf("seed %d: Open: %v", seed, err)
			}
		}()
	}
}

// fsck --repair drops only entries whose records are known bad: a record
// that could not be checked (read error, engine failure) is reported as
// io-error and left alone, or repair would throw away intact data (and then
// punch its record as unreferenced).
func TestFsckRepairKeepsUnreadable(t *testing.T) {
	dir, path, _ := setupCorrupt(t, codec.Deflate)
	o := testOpts(t, 4096, codec.Deflate)
	o.Compressor = lyingCompressor{NewCPUCompressor(1), "engine-error"}
	s := mustOpen(t, dir, o)
	rep, err := s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() {
		t.Fatalf("fsck with a failing engine reports nothing: %v", rep)
	}
	for _, p := range rep.Problems {
		if p.Kind != "io-error" || p.Repaired || p.Path != path {
			t.Fatalf("problem %v, want unrepaired io-error", p)
		}
	}
	s.Close()
	s = mustOpen(t, dir, testOpts(t, 4096, codec.Deflate))
	defer s.Close()
	f := openFile(t, s, "a")
	checkContent(t, f, compressible(4*4096, 7))
	f.Close()
	if rep, err := s.Fsck(FsckOptions{}); err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck: %v %v", rep, err)
	}
}

// fsck --rebuild with records it cannot check (engine failure) fails
// instead of building an index without those blocks and punching them.
func TestRebuildKeepsUnreadable(t *testing.T) {
	dir, _, _ := setupCorrupt(t, codec.Deflate)
	o := testOpts(t, 4096, codec.Deflate)
	o.Compressor = lyingCompressor{NewCPUCompressor(1), "engine-error"}
	if _, err := RebuildIndex(dir, o); err == nil {
		t.Fatal("rebuild with a failing engine succeeded")
	}
	s := mustOpen(t, dir, testOpts(t, 4096, codec.Deflate))
	defer s.Close()
	f := openFile(t, s, "a")
	checkContent(t, f, compressible(4*4096, 7))
	f.Close()
}

// A read error while scanning for records is not "no record": rebuild fails
// (the index and the records stay as they were) and verify reports it
// without punching anything.
func TestScanReadError(t *testing.T) {
	dir, path, _ := setupCorrupt(t, codec.LZ4)
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	s.hooks = &testHooks{fail: func(op, p string) error {
		if op == "read" && p == path {
			return errInjected
		}
		return nil
	}}
	if _, err := s.Fsck(FsckOptions{Rebuild: true}); !errors.Is(err, errInjected) {
		t.Fatalf("rebuild with unreadable records: %v, want the read error", err)
	}
	rep, err := s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cleanups {
		if c.Repaired {
			t.Fatalf("repair punched %v, which it could not read", c)
		}
	}
	s.hooks = nil
	f := openFile(t, s, "a")
	checkContent(t, f, compressible(4*4096, 7))
	f.Close()
	if rep, err := s.Fsck(FsckOptions{}); err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("fsck: %v %v", rep, err)
	}
}
