package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Invariant 1: backing data is fdatasync'ed before the index transaction
// that points at it commits.
func TestInvariantOrderedCommit(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	h := &testHooks{}
	s.hooks = h
	a, b := createFile(t, s, "a"), createFile(t, s, "b")
	mustWrite(t, a, compressible(3*4096, 1), 0)
	mustWrite(t, b, compressible(5000, 2), 100)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, compressible(10, 3), 4096*7)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	// Every "tx" must come after a "sync" of each file written since the
	// previous commit.
	written := map[string]bool{}
	txs := 0
	for _, ev := range h.events {
		switch {
		case strings.HasPrefix(ev, "write "):
			written[strings.TrimPrefix(ev, "write ")] = true
		case strings.HasPrefix(ev, "sync "):
			delete(written, strings.TrimPrefix(ev, "sync "))
		case ev == "tx":
			txs++
			if len(written) > 0 {
				t.Fatalf("index transaction before fdatasync of %v; events %v", written, h.events)
			}
		}
	}
	if txs != 2 {
		t.Fatalf("%d transactions, want 2 (one per commit group); events %v", txs, h.events)
	}
	a.Close()
	b.Close()
}

// rawAt reads n bytes of the backing file at off.
func rawAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// Invariant 2: a record the committed index references is never overwritten
// in place; after a crash (abandon) the committed version reads back.
func TestInvariantCopyOnWrite(t *testing.T) {
	for _, bs := range []int{4096, 128 << 10} {
		dir := t.TempDir()
		s := mustOpen(t, dir, testOpts(t, bs, codec.Zstd))
		f := createFile(t, s, "a")
		v1 := compressible(3*bs, 1)
		mustWrite(t, f, v1, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "a")
		type rec struct {
			off int64
			b   []byte
		}
		var committed []rec
		for b, en := range f.e.committed {
			off, _ := locOffset(bs, b, en.Loc)
			committed = append(committed, rec{off, rawAt(t, path, off, int(en.recordLen()))})
		}
		// New versions of every block, partial and whole, written out but not committed.
		v2 := compressible(3*bs, 99)
		mustWrite(t, f, v2[:bs/2], 0)
		mustWrite(t, f, v2[bs:], int64(bs))
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if len(f.e.pending) != 3 {
			t.Fatalf("%d pending records, want 3", len(f.e.pending))
		}
		for _, r := range committed {
			if got := rawAt(t, path, r.off, len(r.b)); !bytes.Equal(got, r.b) {
				t.Fatalf("committed record at offset %d was overwritten", r.off)
			}
		}
		s.abandon()
		s = mustOpen(t, dir, testOpts(t, bs, codec.Zstd))
		f = openFile(t, s, "a")
		checkContent(t, f, v1)
		f.Close()
		s.Close()
	}
}

// corruptAt xors one byte of the backing file.
func corruptAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// wantCorrupt checks that err is ErrCorrupt naming the file and the block.
func wantCorrupt(t *testing.T, err error, path string, block int64) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "block "+itoa2(int(block))) {
		t.Fatalf("error %q does not name %s block %d", msg, path, block)
	}
}

// Invariant 3: every read verifies checksums; a flipped payload byte gives
// ErrCorrupt naming file and block, never wrong bytes.
func TestInvariantChecksumVerified(t *testing.T) {
	for _, algo := range []codec.ID{codec.None, codec.LZ4, codec.Deflate} {
		t.Run(algo.String(), func(t *testing.T) {
			dir := t.TempDir()
			bs := 4096
			s := mustOpen(t, dir, testOpts(t, bs, algo))
			f := createFile(t, s, "a")
			want := compressible(4*bs, 5)
			mustWrite(t, f, want, 0)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			s.Close()
			path := filepath.Join(dir, "a")
			// Flip a byte in the middle of block 2's payload.
			s = mustOpen(t, dir, testOpts(t, bs, algo))
			f = openFile(t, s, "a")
			en := f.e.committed[2]
			off, _ := locOffset(bs, 2, en.Loc)
			f.Close()
			s.Close()
			corruptAt(t, path, off+RecordHeaderSize+int64(en.StoredLen)/2)
			s = mustOpen(t, dir, testOpts(t, bs, algo))
			defer s.Close()
			f = openFile(t, s, "a")
			buf := make([]byte, 4*bs)
			_, err := f.ReadAt(buf, 0)
			wantCorrupt(t, err, path, 2)
			// Other blocks still read.
			if _, err := f.ReadAt(buf[:bs], 0); err != nil || !bytes.Equal(buf[:bs], want[:bs]) {
				t.Fatalf("block 0: %v", err)
			}
			f.Close()
			rep, err := s.Fsck(FsckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemCorrupt || rep.Problems[0].Block != 2 || rep.Problems[0].Path != path {
				t.Fatalf("fsck: %v", rep)
			}
			// Repair drops the entry and reports the range lost.
			rep, err = s.Fsck(FsckOptions{Repair: true})
			if err != nil || len(rep.Problems) != 1 || !rep.Problems[0].Repaired || rep.Problems[0].Offset != int64(2*bs) || rep.Problems[0].Length != int64(bs) {
				t.Fatalf("repair: %v %v", err, rep)
			}
			rep, err = s.Fsck(FsckOptions{})
			if err != nil || !rep.Clean() {
				t.Fatalf("fsck after repair: %v %v", err, rep)
			}
			f = openFile(t, s, "a")
			clear(want[2*bs : 3*bs])
			checkContent(t, f, want)
			f.Close()
		})
	}
}

// Invariant 4: Sync makes data and index durable (a crash right after it
// loses nothing); unsynced writes after it come back old or new.
func TestInvariantSyncDurable(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	f := createFile(t, s, "a")
	v1 := compressible(5*bs+17, 1)
	mustWrite(t, f, v1, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, compressible(2*bs, 2), int64(bs))
	s.abandon()
	s = mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	f = openFile(t, s, "a")
	checkContent(t, f, v1)
	f.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}

// Invariant 6: the index can be rebuilt from the backing files alone.
func TestInvariantRebuild(t *testing.T) {
	for _, garbage := range []bool{false, true} {
		dir := t.TempDir()
		bs := 4096
		o := testOpts(t, bs, codec.Zstd)
		s := mustOpen(t, dir, o)
		want := map[string][]byte{}
		for i, n := range []string{"a", "b", "c", "d"} {
			f := createFile(t, s, n)
			d := compressible(3*bs+i*1000, i)
			mustWrite(t, f, d, 0)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			// Superseded versions and a truncate with a trailing hole.
			mustWrite(t, f, []byte("second version"), 10)
			copy(d[10:], "second version")
			if i == 1 {
				if err := f.Truncate(int64(bs + 5)); err != nil {
					t.Fatal(err)
				}
				d = d[:bs+5]
			}
			if i == 2 {
				if err := f.Truncate(int64(10 * bs)); err != nil {
					t.Fatal(err)
				}
				d = append(d, make([]byte, 10*bs-len(d))...)
			}
			want[n] = d
			f.Close()
		}
		if err := s.commit(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		before := s.Stats()
		s.Close()
		idx := filepath.Join(dir, MetaDir, indexName)
		if garbage {
			g := bytes.Repeat([]byte("garbage!"), 8192)
			if err := os.WriteFile(idx, g, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, o)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open with a garbage index: %v, want ErrCorrupt", err)
			}
		} else if err := os.Remove(idx); err != nil {
			t.Fatal(err)
		}
		rep, err := RebuildIndex(dir, o)
		if err != nil || !rep.Rebuilt || !rep.Clean() {
			t.Fatalf("rebuild: %v %v", err, rep)
		}
		s = mustOpen(t, dir, o)
		for n, d := range want {
			f := openFile(t, s, n)
			checkContent(t, f, d)
			f.Close()
		}
		after := s.Stats()
		if after.LogicalBytes != before.LogicalBytes || after.StoredBytes != before.StoredBytes || after.Files != before.Files || after.ZeroBlocks != before.ZeroBlocks {
			t.Fatalf("stats after rebuild %+v, before %+v", after, before)
		}
		rep, err = s.Fsck(FsckOptions{})
		if err != nil || !rep.Clean() {
			t.Fatalf("fsck after rebuild: %v %v", err, rep)
		}
		s.Close()
	}
}

// A store whose index.db was deleted rebuilds it at Open instead of
// serving empty files (and overwriting the only copy of the data).
func TestMissingIndexRebuiltAtOpen(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(5*4096+3, 4)
	mustWrite(t, f, want, 0)
	f.Close()
	s.Close()
	if err := os.Remove(filepath.Join(dir, MetaDir, indexName)); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	defer s.Close()
	if s.rebuiltAtOpen == nil || !s.rebuiltAtOpen.Rebuilt {
		t.Fatal("no rebuild at open")
	}
	f = openFile(t, s, "a")
	checkContent(t, f, want)
	f.Close()
	// A brand-new store does not rebuild.
	s2 := mustOpen(t, t.TempDir(), o)
	defer s2.Close()
	if s2.rebuiltAtOpen != nil {
		t.Fatal("new store rebuilt")
	}
}

// A backing file with records but no index entry (crash before its first
// commit, or an index older than the file) gets its records adopted on open:
// new writes can then never overwrite them as if the file were empty.
func TestAdoptUnindexedRecords(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	o := testOpts(t, bs, codec.LZ4)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(5*bs+77, 2)
	mustWrite(t, f, want, 0)
	if err := f.Flush(); err != nil { // records written, never committed
		t.Fatal(err)
	}
	s.abandon()
	s = mustOpen(t, dir, o)
	bf := mustOpenRW(t, filepath.Join(dir, "a"))
	if sz, _, err := s.StatFile(bf); err != nil || sz != int64(len(want)) {
		t.Fatalf("StatFile before adopt: %d %v", sz, err)
	}
	f = openFile(t, s, "a")
	if f.Size() != int64(len(want)) {
		t.Fatalf("size %d after adopt, want %d", f.Size(), len(want))
	}
	checkContent(t, f, want)
	// Overwrite part of it: the adopted records are committed, so COW keeps them safe.
	mustWrite(t, f, []byte("new"), int64(2*bs))
	copy(want[2*bs:], "new")
	f.Close()
	if st := s.Stats(); st.Files != 1 || st.LogicalBytes != int64(len(want)) {
		t.Fatalf("stats %+v", st)
	}
	s.abandon()
	s = mustOpen(t, dir, o)
	defer s.Close()
	f = openFile(t, s, "a")
	// The "new" write was never committed: either version of block 2 is fine, the rest is intact.
	got := readAll(t, f)
	if !bytes.Equal(got[:2*bs], want[:2*bs]) || !bytes.Equal(got[3*bs:], want[3*bs:]) {
		t.Fatal("adopted data lost")
	}
	f.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("fsck: %v %v", err, rep)
	}
}

// TestLockChild is the child side of TestLockAcrossProcesses.
func TestLockChild(t *testing.T) {
	dir := os.Getenv("ACCELFS_LOCK_DIR")
	if dir == "" {
		t.Skip("child of TestLockAcrossProcesses only")
	}
	_, err := Open(dir, &Options{LockTimeout: 50 * time.Millisecond, Logger: testLogger(t)})
	fmt.Printf("locked=%v err=%v\n", errors.Is(err, ErrLocked), err)
	os.Exit(0)
}

// Invariant 7 across processes: a second process cannot open the store and
// is told which pid holds it.
func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ACCELFS_LOCK_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := fmt.Sprintf("pid %d", os.Getpid())
	if !strings.Contains(string(out), "locked=true") || !strings.Contains(string(out), want) {
		t.Fatalf("child output %q, want ErrLocked naming %q", out, want)
	}
}
