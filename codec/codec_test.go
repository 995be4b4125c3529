package codec

import (
	"bytes"
	stdflate "compress/flate"
	stdgzip "compress/gzip"
	stdzlib "compress/zlib"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// corpus returns named inputs: empty, tiny, zeros, text, a binary, random.
func corpus(t testing.TB) map[string][]byte {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 300<<10)
	rnd.Read(random)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 3000)
	for _, p := range []string{filepath.Join(os.Getenv("GOROOT"), "src", "fmt", "print.go"), "/usr/local/go/src/fmt/print.go"} {
		if src, err := os.ReadFile(p); err == nil {
			text = src
			break
		}
	}
	bin, err := os.ReadFile("/bin/sh")
	if err != nil || len(bin) == 0 {
		bin = random[:64<<10]
	}
	if len(bin) > 1<<20 {
		bin = bin[:1<<20]
	}
	return map[string][]byte{
		"empty":  {},
		"one":    {42},
		"zeros":  make([]byte, 128<<10),
		"text":   text,
		"binary": bin,
		"random": random,
		"mixed":  append(append(append([]byte{}, text...), random[:4096]...), make([]byte, 8192)...),
	}
}

func levels(id ID) []int {
	lo, hi, _, _ := levelRange(id)
	ls := []int{0, lo, hi}
	if id == Zstd {
		ls = append(ls, 7) // a middle zstd level maps to a different encoder
	}
	return ls
}

func TestRoundTrip(t *testing.T) {
	for _, id := range All() {
		for _, level := range levels(id) {
			for name, in := range corpus(t) {
				prefix := []byte("prefix")
				c, err := Compress(id, level, append([]byte{}, prefix...), in)
				if err != nil {
					t.Fatalf("%s/%d/%s compress: %v", id, level, name, err)
				}
				if !bytes.Equal(c[:len(prefix)], prefix) {
					t.Fatalf("%s: compress did not append to dst", id)
				}
				c = c[len(prefix):]
				out, err := Decompress(id, []byte("x"), c, len(in))
				if err != nil {
					t.Fatalf("%s/%d/%s decompress: %v", id, level, name, err)
				}
				if out[0] != 'x' || !bytes.Equal(out[1:], in) {
					t.Fatalf("%s/%d/%s: round trip differs", id, level, name)
				}
			}
		}
	}
}

func TestWrongRawLength(t *testing.T) {
	in := corpus(t)["text"]
	for _, id := range All() {
		c, err := Compress(id, 0, nil, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, len(in) - 1, len(in) + 1} {
			if _, err := Decompress(id, nil, c, n); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: raw length %d of %d: err %v, want ErrCorrupt", id, n, len(in), err)
			}
		}
	}
}

func TestCorruptInput(t *testing.T) {
	in := corpus(t)["text"]
	rnd := rand.New(rand.NewSource(2))
	for _, id := range All() {
		if id == None {
			continue // stored data has no structure; the record crc catches flips
		}
		c, err := Compress(id, 0, nil, in)
		if err != nil {
			t.Fatal(err)
		}
		// Truncation is always detected.
		for _, cut := range []int{0, 1, len(c) / 2, len(c) - 1} {
			if _, err := Decompress(id, nil, c[:cut], len(in)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s truncated to %d: err %v", id, cut, err)
			}
		}
		// Flipped bytes either fail or (lz4/deflate have no checksum) give
		// exactly rawLen bytes; they never panic or return another length.
		for i := 0; i < 200; i++ {
			bad := append([]byte{}, c...)
			bad[rnd.Intn(len(bad))] ^= byte(1 + rnd.Intn(255))
			out, err := Decompress(id, nil, bad, len(in))
			if err == nil && len(out) != len(in) {
				t.Fatalf("%s: corrupt input decoded to %d bytes", id, len(out))
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: err %v is not ErrCorrupt", id, err)
			}
		}
		// Trailing garbage is refused by the formats that can tell.
		if id != LZ4 {
			if _, err := Decompress(id, nil, append(append([]byte{}, c...), 0, 1, 2), len(in)); err == nil {
				t.Errorf("%s: trailing bytes accepted", id)
			}
		}
	}
}

func TestLimits(t *testing.T) {
	if _, err := Decompress(LZ4, nil, []byte{0}, MaxRawLen+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized raw length: %v", err)
	}
	if _, err := Decompress(LZ4, nil, []byte{0}, -1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("negative raw length: %v", err)
	}
	if _, err := Decompress(ID(77), nil, nil, 0); !errors.Is(err, ErrUnknownAlgo) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := Compress(ID(77), 0, nil, nil); !errors.Is(err, ErrUnknownAlgo) {
		t.Errorf("unknown id: %v", err)
	}
	for _, c := range []struct {
		id    ID
		level int
	}{{None, 1}, {LZ4, 10}, {LZ4, -1}, {Zstd, 23}, {Deflate, 10}, {Gzip, -3}} {
		if _, err := NormalizeLevel(c.id, c.level); !errors.Is(err, ErrBadLevel) {
			t.Errorf("%s level %d: %v", c.id, c.level, err)
		}
	}
	// A zstd frame that declares more than the recorded length is refused
	// before decoding.
	big, _ := Compress(Zstd, 0, nil, make([]byte, 1<<20))
	if _, err := Decompress(Zstd, nil, big, 4096); !errors.Is(err, ErrCorrupt) {
		t.Errorf("zstd oversize frame: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, id := range All() {
		got, err := Parse(id.String())
		if err != nil || got != id {
			t.Errorf("Parse(%q) = %v, %v", id.String(), got, err)
		}
	}
	if _, err := Parse("brotli"); !errors.Is(err, ErrUnknownAlgo) {
		t.Errorf("Parse(brotli): %v", err)
	}
	if ID(9).String() != "algo(9)" {
		t.Errorf("unknown String: %s", ID(9))
	}
	// The ids are on-disk format: pin them.
	want := map[ID]uint8{None: 0, LZ4: 1, Zstd: 2, Deflate: 3, Zlib: 4, Gzip: 5}
	for id, n := range want {
		if uint8(id) != n {
			t.Errorf("%s has id %d, want %d", id, id, n)
		}
	}
}

// TestStandardInterop: the deflate family must be the standard formats, as
// a hisi_zip device writes them; the Go standard library is the reference.
func TestStandardInterop(t *testing.T) {
	in := corpus(t)["mixed"]
	enc := map[ID]func() []byte{
		Deflate: func() []byte {
			var b bytes.Buffer
			w, _ := stdflate.NewWriter(&b, 6)
			w.Write(in)
			w.Close()
			return b.Bytes()
		},
		Zlib: func() []byte {
			var b bytes.Buffer
			w := stdzlib.NewWriter(&b)
			w.Write(in)
			w.Close()
			return b.Bytes()
		},
		Gzip: func() []byte {
			var b bytes.Buffer
			w := stdgzip.NewWriter(&b)
			w.Write(in)
			w.Close()
			return b.Bytes()
		},
	}
	for id, f := range enc {
		out, err := Decompress(id, nil, f(), len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("%s: stdlib stream does not decode: %v", id, err)
		}
		ours, _ := Compress(id, 0, nil, in)
		var r interface {
			Read([]byte) (int, error)
		}
		switch id {
		case Deflate:
			r = stdflate.NewReader(bytes.NewReader(ours))
		case Zlib:
			r, _ = stdzlib.NewReader(bytes.NewReader(ours))
		case Gzip:
			r, _ = stdgzip.NewReader(bytes.NewReader(ours))
		}
		var got bytes.Buffer
		if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), in) {
			t.Errorf("%s: our stream does not decode with the stdlib: %v", id, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := corpus(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i, id := range All() {
				in := c[[]string{"text", "binary", "mixed", "zeros"}[(g+i)%4]]
				z, err := Compress(id, 0, nil, in)
				if err != nil {
					errs <- err
					return
				}
				out, err := Decompress(id, nil, z, len(in))
				if err != nil || !bytes.Equal(out, in) {
					errs <- errors.New(id.String() + ": concurrent round trip failed")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
