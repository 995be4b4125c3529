package codec

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecompress feeds arbitrary payloads to every decoder: no panic, no
// output of another length than asked, only ErrCorrupt-class errors.
func FuzzDecompress(f *testing.F) {
	in := bytes.Repeat([]byte("accelfs fuzz seed "), 50)
	for _, id := range All() {
		c, _ := Compress(id, 0, nil, in)
		f.Add(uint8(id), c, uint32(len(in)))
	}
	f.Add(uint8(LZ4), []byte{0xf0, 0xff, 0xff, 0xff, 0xff}, uint32(1<<20))
	f.Fuzz(func(t *testing.T, algo uint8, src []byte, rawLen uint32) {
		id := ID(algo % uint8(len(names)))
		n := int(rawLen % (2 << 20))
		out, err := Decompress(id, nil, src, n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: unexpected error class: %v", id, err)
			}
			return
		}
		if len(out) != n {
			t.Fatalf("%s: got %d bytes, want %d", id, len(out), n)
		}
	})
}

// FuzzRoundTrip: whatever the data and level, decode(encode(x)) == x.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(LZ4), int8(0), []byte("hello hello hello"))
	f.Add(uint8(Zstd), int8(19), make([]byte, 5000))
	f.Add(uint8(Gzip), int8(9), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, algo uint8, level int8, data []byte) {
		id := ID(algo % uint8(len(names)))
		lv, err := NormalizeLevel(id, int(level))
		if err != nil {
			return
		}
		c, err := Compress(id, lv, nil, data)
		if err != nil {
			t.Fatalf("%s/%d: %v", id, lv, err)
		}
		out, err := Decompress(id, nil, c, len(data))
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%s/%d: round trip failed: %v", id, lv, err)
		}
	})
}
