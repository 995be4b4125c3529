package blockstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// corruptPayload damages the payload of block b's committed record.
func corruptPayload(t *testing.T, path string, ents map[int64]entry, b int64) {
	t.Helper()
	off, ok := locOffset(4096, b, ents[b].Loc)
	if !ok {
		t.Fatal("no location")
	}
	corruptAt(t, path, off+RecordHeaderSize+1)
}

func verifyClean(t *testing.T, dir string) {
	t.Helper()
	s := mustOpen(t, dir, &Options{NoCreate: true, CommitInterval: -1, Logger: testLogger(t)})
	defer s.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("verify right after: %v\n%v", err, rep)
	}
}

func findProblem(rep *FsckReport, kind string) *FsckItem {
	for i := range rep.Problems {
		if rep.Problems[i].Kind == kind {
			return &rep.Problems[i]
		}
	}
	return nil
}

// Defect 4: a rebuild that cannot keep a corrupt record reports the lost
// range (it used to say "0 problems").
func TestRebuildReportsLostRecord(t *testing.T) {
	dir, path, ents := setupCorrupt(t, codec.LZ4)
	corruptPayload(t, path, ents, 2)
	rep, err := RebuildIndex(dir, testOpts(t, 4096, codec.LZ4))
	if err != nil {
		t.Fatal(err)
	}
	p := findProblem(rep, ProblemLostRecord)
	if p == nil || !rep.Lost() || p.Path != path || p.Block != 2 || p.Offset != 2*4096 || p.Length != 4096 || !p.Lost {
		t.Fatalf("rebuild report does not name the lost range: %v", rep)
	}
	if rep.OldIndex == "" || !strings.Contains(rep.OldIndex, "index.db.replaced-") {
		t.Fatalf("old index not kept aside: %q", rep.OldIndex)
	}
	verifyClean(t, dir) // one pass: the bad record was reclaimed too
}

// Defect 4 and issue 9 item 11: repair reports what it dropped as lost,
// and a verify right after it is clean, without new cleanups.
func TestRepairLostAndOnePass(t *testing.T) {
	dir, path, ents := setupCorrupt(t, codec.Zstd)
	corruptPayload(t, path, ents, 1)
	s := mustOpen(t, dir, testOpts(t, 4096, codec.Zstd))
	rep, err := s.Fsck(FsckOptions{Repair: true})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := findProblem(rep, ProblemCorrupt)
	if p == nil || !p.Lost || !p.Repaired || !rep.Lost() || rep.Unrepaired() != 0 || p.Offset != 4096 {
		t.Fatalf("repair report: %v", rep)
	}
	if !strings.Contains(rep.String(), "DATA LOST") {
		t.Fatalf("text report does not say data was lost:\n%s", rep)
	}
	verifyClean(t, dir)
}

// JSON lists are [] when empty, never null.
func TestFsckJSONEmptyLists(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	if !bytes.Contains(b, []byte(`"problems":[]`)) || !bytes.Contains(b, []byte(`"cleanups":[]`)) {
		t.Fatalf("JSON: %s", b)
	}
}

// Issue 9 item 4: records of a backing file with no index entry (an older
// index restored) are what a mount would serve: verify reports them, repair
// adopts them, neither punches them.
func TestRepairAdoptsUnindexed(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	s := mustOpen(t, dir, o)
	s.Close()
	idx := filepath.Join(dir, MetaDir, indexName)
	old, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(5*4096+100, 3)
	mustWrite(t, f, want, 0)
	f.Close()
	s.Close()
	if err := os.WriteFile(idx, old, 0o600); err != nil { // the older index comes back
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		s = mustOpen(t, dir, o)
		rep, err := s.Fsck(FsckOptions{Repair: repair})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := findProblem(rep, ProblemUnindexed)
		if p == nil || p.Repaired != repair || rep.ReclaimedBytes != 0 || len(rep.Cleanups) != 0 || rep.Lost() {
			t.Fatalf("repair=%v: %v", repair, rep)
		}
	}
	verifyClean(t, dir)
	s = mustOpen(t, dir, o)
	defer s.Close()
	f = openFile(t, s, "a")
	defer f.Close()
	checkContent(t, f, want)
}

// Issue 9 item 6: a damaged file header is rebuilt from its records.
func TestRepairRebuildsHeader(t *testing.T) {
	dir, path, _ := setupCorrupt(t, codec.LZ4)
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	want := func() []byte {
		f := openFile(t, s, "a")
		defer f.Close()
		return readAll(t, f)
	}()
	s.Close()
	corruptAt(t, path, 20) // inside the file ID
	s = mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || findProblem(rep, ProblemBadHeader) == nil || !strings.Contains(findProblem(rep, ProblemBadHeader).Detail, "--repair rewrites") {
		t.Fatalf("verify: %v %v", err, rep)
	}
	rep, err = s.Fsck(FsckOptions{Repair: true})
	if err != nil || rep.Unrepaired() != 0 || rep.Lost() {
		t.Fatalf("repair: %v %v", err, rep)
	}
	f := openFile(t, s, "a")
	checkContent(t, f, want)
	f.Close()
	s.Close()
	verifyClean(t, dir)
}

// Issue 9 item 5: rebuild works on an index whose damaged pages pass Open
// (it never reads the old index; it moves it aside).
func TestRebuildDamagedIndex(t *testing.T) {
	if raceEnabled {
		t.Skip("checkptr (on with -race) makes bbolt's reads of damaged pages fatal")
	}
	for seed := range 6 {
		dir := t.TempDir()
		o := testOpts(t, 4096, codec.LZ4)
		s := mustOpen(t, dir, o)
		want := map[string][]byte{}
		for i := range 20 {
			n := fmt.Sprintf("f%d", i)
			f := createFile(t, s, n)
			want[n] = compressible(3*4096+i, i)
			mustWrite(t, f, want[n], 0)
			f.Close()
		}
		s.Close()
		idx := filepath.Join(dir, MetaDir, indexName)
		b, _ := os.ReadFile(idx)
		ps := os.Getpagesize()
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		for p := 2; p*ps < len(b); p++ {
			for k := 0; k < 64; k++ {
				b[p*ps+rng.IntN(ps)] = byte(rng.Uint32())
			}
		}
		os.WriteFile(idx, b, 0o600)
		rep, err := RebuildIndex(dir, o)
		if err != nil || !rep.Rebuilt || !rep.Clean() {
			t.Fatalf("seed %d: rebuild: %v %v", seed, err, rep)
		}
		s = mustOpen(t, dir, o)
		for n, d := range want {
			f := openFile(t, s, n)
			checkContent(t, f, d)
			f.Close()
		}
		s.Close()
	}
}

// Issue 9 item 9: a read-only open writes nothing and serves the data.
func TestReadOnlyOpen(t *testing.T) {
	dir, _, _ := setupCorrupt(t, codec.LZ4)
	idx := filepath.Join(dir, MetaDir, indexName)
	before, _ := os.ReadFile(idx)
	s := mustOpen(t, dir, &Options{ReadOnly: true, CommitInterval: -1, Logger: testLogger(t)})
	if _, err := os.Stat(filepath.Join(dir, MetaDir, pidFileName)); err == nil {
		t.Fatal("read-only open wrote lock.pid")
	}
	f := openFile(t, s, "a")
	if len(readAll(t, f)) != 4*4096 {
		t.Fatal("short read")
	}
	f.Close()
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("read-only verify: %v %v", err, rep)
	}
	if _, err := s.Fsck(FsckOptions{Repair: true}); err == nil {
		t.Fatal("repair on a read-only store")
	}
	s.Close()
	if after, _ := os.ReadFile(idx); !bytes.Equal(before, after) {
		t.Fatal("read-only open changed the index")
	}
}

// A rebuild that fails (a record it cannot check) leaves the old index in
// place, byte for byte, and no moved-aside copy behind.
func TestFailedRebuildRestoresIndex(t *testing.T) {
	dir, _, _ := setupCorrupt(t, codec.Deflate)
	idx := filepath.Join(dir, MetaDir, indexName)
	before, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	o := testOpts(t, 4096, codec.Deflate)
	o.Compressor = lyingCompressor{NewCPUCompressor(1), "engine-error"}
	if _, err := RebuildIndex(dir, o); err == nil {
		t.Fatal("rebuild with a failing engine succeeded")
	}
	if after, _ := os.ReadFile(idx); !bytes.Equal(before, after) {
		t.Fatal("a failed rebuild changed the index")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, MetaDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), indexName+".") {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}
