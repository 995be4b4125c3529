package blockstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// envInt reads an integer test knob from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// modelData returns n bytes of one of several kinds: compressible text,
// random bytes, zeros, or a mix.
func modelData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	switch rng.IntN(4) {
	case 0:
		copy(b, compressible(n, rng.IntN(1000)))
	case 1:
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case 2:
		// zeros
	default:
		copy(b, compressible(n, rng.IntN(1000)))
		for i := 0; i < n; i += 1 + rng.IntN(64) {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

// modelRun runs random operations against the store and an in-memory model
// and compares them byte for byte.
func modelRun(t *testing.T, bs int, algo codec.ID, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, uint64(bs)))
	dir := t.TempDir()
	opts := testOpts(t, bs, algo)
	// Small bounds so the dirty cache and the block cache fill up.
	opts.DirtyLimit = int64(4 * bs)
	opts.CacheBytes = int64(6 * bs)
	if rng.IntN(2) == 0 {
		opts.ReadaheadBytes = -1
	}
	if seed%2 == 0 {
		// Background commits run concurrently with the operations.
		opts.CommitInterval = 3 * time.Millisecond
	}
	s := mustOpen(t, dir, opts)
	maxSize := int64(16 * bs)
	names := []string{"f0", "f1", "f2"}
	model := map[string][]byte{}
	files := map[string]*File{}
	for _, n := range names {
		files[n] = createFile(t, s, n)
		model[n] = nil
	}
	var trace []string
	fail := func(format string, a ...any) {
		t.Helper()
		for _, l := range trace[max(0, len(trace)-20):] {
			t.Log(l)
		}
		t.Fatalf(format, a...)
	}
	check := func(name string) {
		f, want := files[name], model[name]
		if f.Size() != int64(len(want)) {
			fail("%s: size %d, model %d", name, f.Size(), len(want))
		}
		got := make([]byte, len(want)+10)
		n, err := f.ReadAt(got, 0)
		if n != len(want) || (err != io.EOF && !(err == nil && n == len(got))) {
			fail("%s: read all: %d, %v (want %d)", name, n, err, len(want))
		}
		if !bytes.Equal(got[:n], want) {
			i := 0
			for got[i] == want[i] {
				i++
			}
			fail("%s: content differs at %d (block %d) of %d", name, i, i/bs, len(want))
		}
	}
	reopen := func() {
		for _, n := range names {
			if err := files[n].Close(); err != nil {
				fail("close %s: %v", n, err)
			}
		}
		if err := s.Close(); err != nil {
			fail("store close: %v", err)
		}
		s = mustOpen(t, dir, opts)
		for _, n := range names {
			files[n] = openFile(t, s, n)
		}
	}
	for i := 0; i < ops; i++ {
		name := names[rng.IntN(len(names))]
		f := files[name]
		m := model[name]
		switch op := rng.IntN(100); {
		case op < 45: // write
			var n int
			switch rng.IntN(3) {
			case 0:
				n = 1 + rng.IntN(100)
			case 1:
				n = 1 + rng.IntN(bs)
			default:
				n = 1 + rng.IntN(3*bs)
			}
			off := rng.Int64N(maxSize - int64(n) + 1)
			if rng.IntN(4) == 0 {
				off = int64(len(m)) // append
				if off+int64(n) > maxSize {
					off = 0
				}
			}
			if rng.IntN(3) == 0 {
				off -= off % int64(bs) // aligned
			}
			p := modelData(rng, n)
			trace = append(trace, fmt.Sprintf("%d write %s off=%d n=%d", i, name, off, n))
			if w, err := f.WriteAt(p, off); err != nil || w != n {
				fail("write: %d %v", w, err)
			}
			if end := off + int64(n); end > int64(len(m)) {
				m = append(m, make([]byte, end-int64(len(m)))...)
			}
			copy(m[off:], p)
		case op < 55: // truncate
			size := rng.Int64N(maxSize + 1)
			if rng.IntN(3) == 0 {
				size -= size % int64(bs)
			}
			trace = append(trace, fmt.Sprintf("%d truncate %s %d", i, name, size))
			if err := f.Truncate(size); err != nil {
				fail("truncate: %v", err)
			}
			if size < int64(len(m)) {
				m = m[:size]
			} else {
				m = append(m, make([]byte, size-int64(len(m)))...)
			}
		case op < 60: // punch hole
			off := rng.Int64N(maxSize)
			n := rng.Int64N(3*int64(bs)) + 1
			trace = append(trace, fmt.Sprintf("%d punch %s off=%d n=%d", i, name, off, n))
			if err := f.PunchHole(off, n); err != nil {
				fail("punch: %v", err)
			}
			if off < int64(len(m)) {
				clear(m[off:min(int64(len(m)), off+n)])
			}
		case op < 80: // read a random range
			off := rng.Int64N(maxSize)
			n := 1 + rng.IntN(3*bs)
			trace = append(trace, fmt.Sprintf("%d read %s off=%d n=%d", i, name, off, n))
			got := make([]byte, n)
			r, err := f.ReadAt(got, off)
			var want []byte
			if off < int64(len(m)) {
				want = m[off:min(int64(len(m)), off+int64(n))]
			}
			if r != len(want) || !bytes.Equal(got[:r], want) {
				fail("read %s off=%d n=%d: got %d bytes (%v), want %d", name, off, n, r, err, len(want))
			}
			if r < n && err != io.EOF {
				fail("short read without EOF: %v", err)
			}
		case op < 86:
			trace = append(trace, fmt.Sprintf("%d sync %s", i, name))
			if err := f.Sync(); err != nil {
				fail("sync: %v", err)
			}
		case op < 90:
			trace = append(trace, fmt.Sprintf("%d flush %s", i, name))
			if err := f.Flush(); err != nil {
				fail("flush: %v", err)
			}
		case op < 91: // SEEK_DATA / SEEK_HOLE against the model's zeros
			off := rng.Int64N(maxSize)
			trace = append(trace, fmt.Sprintf("%d seek %s off=%d", i, name, off))
			size := int64(len(m))
			d, derr := f.SeekData(off)
			switch {
			case off >= size:
				if derr == nil {
					fail("SeekData(%d) past EOF %d = %d", off, size, d)
				}
			case derr != nil:
				if !errors.Is(derr, ErrNoData) || !isZero(m[off:]) {
					fail("SeekData(%d): %v, but data follows", off, derr)
				}
			case d < off || d >= size || !isZero(m[off:d]) || (d != off && d%int64(bs) != 0):
				fail("SeekData(%d) = %d (size %d)", off, d, size)
			}
			h, herr := f.SeekHole(off)
			switch {
			case off >= size:
				if herr == nil {
					fail("SeekHole(%d) past EOF %d = %d", off, size, h)
				}
			case herr != nil || h < off || h > size:
				fail("SeekHole(%d) = %d, %v (size %d)", off, h, herr, size)
			case h < size && !isZero(m[h:min(size, (h/int64(bs)+1)*int64(bs))]):
				fail("SeekHole(%d) = %d is not in a hole", off, h)
			}
		case op < 93: // reopen one file (another handle first: shared entry)
			trace = append(trace, fmt.Sprintf("%d reopen-file %s", i, name))
			g := openFile(t, s, name)
			if err := f.Close(); err != nil {
				fail("close: %v", err)
			}
			files[name] = g
		case op < 95:
			trace = append(trace, fmt.Sprintf("%d reopen-store", i))
			reopen()
		case op < 97:
			trace = append(trace, fmt.Sprintf("%d commit-all", i))
			if err := s.commit(t.Context(), nil); err != nil {
				fail("commit: %v", err)
			}
		default:
			check(name)
		}
		model[name] = m
	}
	for _, n := range names {
		check(n)
	}
	reopen()
	var logical int64
	for _, n := range names {
		check(n)
		logical += int64(len(model[n]))
	}
	if st := s.Stats(); st.LogicalBytes != logical || st.Files != int64(len(names)) {
		fail("stats: %+v, want logical %d", st, logical)
	}
	for _, n := range names {
		files[n].Close()
	}
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() {
		fail("fsck: %v %v", err, rep)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestModel(t *testing.T) {
	ops := envInt("ACCELFS_MODEL_OPS", 400)
	seeds := envInt("ACCELFS_MODEL_SEEDS", 2)
	if testing.Short() {
		ops, seeds = 150, 1
	} else if raceEnabled && os.Getenv("ACCELFS_MODEL_OPS") == "" {
		ops = 200
	}
	for _, bs := range []int{4096, 128 << 10} {
		for _, algo := range codec.All() {
			for seed := 1; seed <= seeds; seed++ {
				t.Run(fmt.Sprintf("%s/bs%d/seed%d", algo, bs, seed), func(t *testing.T) {
					t.Parallel()
					modelRun(t, bs, algo, uint64(seed), ops)
				})
			}
		}
	}
}
