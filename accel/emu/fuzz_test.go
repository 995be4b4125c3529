package emu

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// FuzzDecompressVsCodec feeds arbitrary input to the emulated device
// (through qm) and to codec/: they must agree on success, and on the bytes
// when both succeed (STYLE 16). Success for the device means no error,
// exactly rawLen bytes out and all input consumed (codec rejects trailing
// bytes).
func FuzzDecompressVsCodec(f *testing.F) {
	d, err := New(Options{SysfsRoot: f.TempDir(), Depth: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	devs, _ := d.Discover()
	q, err := d.Open(devs[0], uacce.Decompress)
	if err != nil {
		f.Fatal(err)
	}
	z, err := qm.NewZipQueue(q, qm.ZipOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { z.Close() })

	for i, a := range algs {
		for _, raw := range [][]byte{nil, []byte("a"), textBlock(3000)} {
			cc, _ := codec.Compress(a.id, 0, nil, raw)
			f.Add(uint8(i), uint16(len(raw)), cc)
		}
	}
	f.Fuzz(func(t *testing.T, ai uint8, rawLen uint16, src []byte) {
		a := algs[int(ai)%len(algs)]
		n := int(rawLen) % 20000
		want, cerr := codec.Decompress(a.id, nil, src, n)

		r := &qm.ZipRequest{Alg: a.alg, Src: src, Dst: make([]byte, 0, max(16, n))}
		var derr error
		switch err := z.Submit(r); {
		case errors.Is(err, qm.ErrBadRequest):
			derr = err
		case err != nil:
			t.Fatalf("submit: %v", err)
		default:
			deadline := time.Now().Add(60 * time.Second) // hang guard
			for got := false; !got; {
				if _, err := z.Poll(1, func(*qm.ZipRequest) { got = true }); err != nil {
					t.Fatalf("poll: %v", err)
				}
				if !got {
					if time.Now().After(deadline) {
						t.Fatal("no completion in 60s")
					}
					z.Wait(time.Millisecond)
				}
			}
			derr = r.Err
			if derr == nil && (len(r.Out) != n || r.Consumed != len(src)) {
				derr = errors.New("length mismatch")
			}
		}
		if (cerr == nil) != (derr == nil) {
			t.Fatalf("%v rawLen %d: codec err %v, device err %v (out %d, consumed %d of %d)", a.alg, n, cerr, derr, len(r.Out), r.Consumed, len(src))
		}
		if cerr == nil && !bytes.Equal(want, r.Out) {
			t.Fatalf("%v: both succeeded with different bytes", a.alg)
		}
	})
}
