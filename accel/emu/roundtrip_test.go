package emu

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// newTestDevice creates a device in a temp sysfs root.
func newTestDevice(t testing.TB, o Options) *Device {
	t.Helper()
	if o.SysfsRoot == "" {
		o.SysfsRoot = t.TempDir()
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// openZip discovers the device through uacce.Discover and opens a ZipQueue.
func openZip(t testing.TB, d *Device, dir uacce.Direction, zo qm.ZipOptions) *qm.ZipQueue {
	t.Helper()
	devs, err := d.Discover()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := uacce.Choose(devs, uacce.Want{Algorithm: "deflate"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.Open(dev, dir)
	if err != nil {
		t.Fatal(err)
	}
	z, err := qm.NewZipQueue(q, zo)
	if err != nil {
		q.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	return z
}

// testData returns mixed blocks: text, binary-ish, random, zeros.
func testData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	switch rng.IntN(4) {
	case 0: // text
		words := []string{"accelfs ", "hisi_zip ", "queue ", "doorbell ", "phase ", "deflate\n", "the ", "of "}
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rng.IntN(len(words))])
		}
		copy(b, buf.Bytes())
	case 1: // structured binary
		for i := range b {
			b[i] = byte(i*7) ^ byte(i>>9)
			if rng.IntN(16) == 0 {
				b[i] = byte(rng.Uint32())
			}
		}
	case 2: // random
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case 3: // zeros
	}
	return b
}

var algs = []struct {
	alg qm.Alg
	id  codec.ID
}{{qm.AlgDeflate, codec.Deflate}, {qm.AlgZlib, codec.Zlib}, {qm.AlgGzip, codec.Gzip}}

// do runs one request synchronously with a bounded wait.
func do(t testing.TB, z *qm.ZipQueue, r *qm.ZipRequest) {
	t.Helper()
	if err := z.Submit(r); err != nil {
		t.Fatalf("submit: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := z.Poll(1, func(got *qm.ZipRequest) {
			if got != r {
				t.Errorf("got a foreign request")
			}
		})
		if n == 1 {
			return
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("request did not complete in 10s")
		}
		z.Wait(time.Millisecond)
	}
}

func TestRoundTripSmoke(t *testing.T) {
	d := newTestDevice(t, Options{})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		src := testData(rng, 1+rng.IntN(64<<10))
		a := algs[i%3]
		c := &qm.ZipRequest{Alg: a.alg, Src: src, Dst: make([]byte, 0, len(src)+1024)}
		do(t, cz, c)
		if c.Err != nil {
			t.Fatalf("%v compress: %v", a.alg, c.Err)
		}
		// emu output decodes with codec/
		back, err := codec.Decompress(a.id, nil, c.Out, len(src))
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%v: codec cannot decode emu output: %v", a.alg, err)
		}
		// codec output decodes through emu
		cc, err := codec.Compress(a.id, 0, nil, src)
		if err != nil {
			t.Fatal(err)
		}
		dr := &qm.ZipRequest{Alg: a.alg, Src: cc, Dst: make([]byte, 0, len(src))}
		do(t, dz, dr)
		if dr.Err != nil || !bytes.Equal(dr.Out, src) || dr.Consumed != len(cc) {
			t.Fatalf("%v: emu decode of codec output: err=%v equal=%v consumed %d/%d", a.alg, dr.Err, bytes.Equal(dr.Out, src), dr.Consumed, len(cc))
		}
	}
}
