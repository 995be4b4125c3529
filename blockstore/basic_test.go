package blockstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

func TestBasicRoundTrip(t *testing.T) {
	for _, bs := range []int{4096, 128 << 10} {
		for _, algo := range codec.All() {
			t.Run(algo.String()+"/"+itoa(bs), func(t *testing.T) {
				dir := t.TempDir()
				s := mustOpen(t, dir, testOpts(t, bs, algo))
				f := createFile(t, s, "a")
				rng := rand.New(rand.NewPCG(1, 2))
				want := compressible(3*bs+100, 1)
				rnd := make([]byte, bs)
				for i := range rnd {
					rnd[i] = byte(rng.IntN(256))
				}
				copy(want[bs:], rnd)
				mustWrite(t, f, want, 0)
				checkContent(t, f, want)
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				checkContent(t, f, want)
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = mustOpen(t, dir, testOpts(t, bs, algo))
				defer s.Close()
				f = openFile(t, s, "a")
				checkContent(t, f, want)
				st := s.Stats()
				if st.LogicalBytes != int64(len(want)) || st.Files != 1 {
					t.Fatalf("stats %+v", st)
				}
				rep, err := s.Fsck(FsckOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Clean() {
					t.Fatalf("fsck: %v", rep)
				}
				f.Close()
			})
		}
	}
}

func itoa(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strings.TrimSpace(string(rune('0' + 0)))[:0] + itoa2(n/1024) + "k"
	}
	return itoa2(n)
}

func itoa2(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	defer s.Close()
	_, err := Open(dir, testOpts(t, 4096, codec.LZ4))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "pid") {
		t.Fatalf("error does not name the holder: %v", err)
	}
}

func TestSmallFileInline(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 128<<10, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "small")
	want := []byte("hello, small world\n")
	mustWrite(t, f, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := f.e.committed[0].Loc; got != locInline {
		t.Fatalf("small file record at %v, want inline", got)
	}
	if du := f.DiskUsage(); du > 4096 {
		t.Fatalf("disk usage %d > 4096", du)
	}
	checkContent(t, f, want)
	// A second version cannot overwrite the committed inline record.
	want2 := []byte("HELLO, small world\n")
	mustWrite(t, f, want2, 0)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := f.e.pending[0].Loc; got == locInline {
		t.Fatalf("rewrite went to the committed inline slot")
	}
	checkContent(t, f, want2)
	f.Close()
}

func TestZeroBlocksAreHoles(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.LZ4))
	defer s.Close()
	f := createFile(t, s, "z")
	want := make([]byte, 10*bs)
	copy(want[5*bs:], "data")
	mustWrite(t, f, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.e.committed); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	st := s.Stats()
	if st.ZeroBlocks != 9 {
		t.Fatalf("zero blocks %d, want 9", st.ZeroBlocks)
	}
	checkContent(t, f, want)
	if off, err := f.SeekData(0); err != nil || off != int64(5*bs) {
		t.Fatalf("SeekData: %d %v", off, err)
	}
	if off, err := f.SeekHole(int64(5 * bs)); err != nil || off != int64(6*bs) {
		t.Fatalf("SeekHole: %d %v", off, err)
	}
	f.Close()
}

func TestRawWhenIncompressible(t *testing.T) {
	dir := t.TempDir()
	bs := 4096
	s := mustOpen(t, dir, testOpts(t, bs, codec.Zstd))
	defer s.Close()
	f := createFile(t, s, "r")
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]byte, 2*bs)
	for i := range want[:bs] {
		want[i] = byte(rng.IntN(256))
	}
	copy(want[bs:], bytes.Repeat([]byte("abcd"), bs/4))
	mustWrite(t, f, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if a := f.e.committed[0].Algo; a != codec.None {
		t.Fatalf("random block stored with %v, want raw", a)
	}
	if a := f.e.committed[1].Algo; a != codec.Zstd {
		t.Fatalf("compressible block stored with %v, want zstd", a)
	}
	st := s.Stats()
	if st.RawBlocks != 1 || st.Blocks["zstd"] != 1 || st.Blocks["none"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkContent(t, f, want)
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, int64(2*bs-5)); n != 5 || err != io.EOF {
		t.Fatalf("read across EOF: %d %v", n, err)
	}
	f.Close()
}
