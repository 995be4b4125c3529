package session

import (
	"bytes"
	"context"
	"testing"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/codec"
)

// FuzzDecompressAgree feeds arbitrary input to decompression through the
// session layer on the emulated device and to the CPU codec: both must agree
// on success or failure and, on success, on every byte (the session layer
// redoes any device error on the CPU, so a device that accepted garbage or
// produced different bytes would show here).
func FuzzDecompressAgree(f *testing.F) {
	for _, algo := range []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip} {
		good, err := codec.Compress(algo, 0, nil, bytes.Repeat([]byte("accelfs fuzz seed "), 100))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(algo), good, uint16(1800))
		f.Add(uint8(algo), good[:len(good)/2], uint16(1800))
		flipped := append([]byte(nil), good...)
		flipped[len(flipped)/2] ^= 0x5a
		f.Add(uint8(algo), flipped, uint16(1800))
		f.Add(uint8(algo), good, uint16(1799))
	}
	f.Add(uint8(codec.Deflate), []byte{}, uint16(0))
	f.Add(uint8(codec.Gzip), []byte("not gzip at all"), uint16(10))

	d := newEmu(f, emu.Options{})
	devs, err := d.Discover()
	if err != nil {
		f.Fatal(err)
	}
	// No goroutine-leak check here: the fuzzing engine starts its own.
	l, err := New(WithDevice(d, devs[0]), WithThreshold(0, 0), WithCPUOffload(false))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = l.Close() })
	sess := map[codec.ID]*Session{}
	for _, algo := range []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip} {
		s, err := l.NewSession(SessionOptions{Algo: algo, Dir: Decompress, Node: 0})
		if err != nil {
			f.Fatal(err)
		}
		sess[algo] = s
	}
	f.Fuzz(func(t *testing.T, a uint8, src []byte, rawLen uint16) {
		algo := []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip}[int(a)%3]
		want, werr := codec.Decompress(algo, nil, src, int(rawLen))
		r := &Request{Src: src, RawLen: int(rawLen)}
		gerr := sess[algo].Do(context.Background(), r)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%v rawLen %d: cpu err %v, session err %v (engine %q)", algo, rawLen, werr, gerr, r.Engine)
		}
		if werr == nil && !bytes.Equal(want, r.Out) {
			t.Fatalf("%v: session output differs from the CPU codec's (engine %q)", algo, r.Engine)
		}
	})
}

// FuzzCompressRoundTrip: whatever the device (emulated) writes for any
// input decodes with the CPU codec to that input.
func FuzzCompressRoundTrip(f *testing.F) {
	f.Add(uint8(0), []byte("hello hello hello hello"))
	f.Add(uint8(1), bytes.Repeat([]byte{0}, 5000))
	f.Add(uint8(2), []byte{0xff})
	d := newEmu(f, emu.Options{})
	devs, err := d.Discover()
	if err != nil {
		f.Fatal(err)
	}
	l, err := New(WithDevice(d, devs[0]), WithThreshold(0, 0), WithCPUOffload(false))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = l.Close() })
	sess := map[codec.ID]*Session{}
	for _, algo := range []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip} {
		if sess[algo], err = l.NewSession(SessionOptions{Algo: algo, Dir: Compress, Node: 0}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, a uint8, src []byte) {
		if len(src) == 0 {
			return
		}
		algo := []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip}[int(a)%3]
		r := &Request{Src: src}
		if err := sess[algo].Do(context.Background(), r); err != nil {
			t.Fatalf("%v compress of %d bytes: %v", algo, len(src), err)
		}
		got, err := codec.Decompress(algo, nil, r.Out, len(src))
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%v (engine %q): CPU decode of the output: %v", algo, r.Engine, err)
		}
	})
}
