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

// openQueue discovers the device through uacce.Discover and opens a queue.
func openQueue(t testing.TB, d *Device, dir uacce.Direction) uacce.Queue {
	t.Helper()
	devs, err := d.Discover()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := uacce.Choose(devs, uacce.Want{Algorithm: "deflate", Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.Open(dev, dir)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// openZip opens a queue and attaches a ZipQueue to it.
func openZip(t testing.TB, d *Device, dir uacce.Direction, zo qm.ZipOptions) *qm.ZipQueue {
	t.Helper()
	q := openQueue(t, d, dir)
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

// do runs one request with a bounded wait.
func do(t testing.TB, z *qm.ZipQueue, r *qm.ZipRequest) {
	t.Helper()
	runAll(t, z, []*qm.ZipRequest{r})
}

// TestRoundTripDepths: thousands of mixed blocks through compress and
// decompress queues at depths 2..1024 (1..1023 in flight), both rings
// wrapping many times; every output is checked byte for byte and every
// compressed block is also decoded with codec/.
func TestRoundTripDepths(t *testing.T) {
	depths := []int{2, 3, 17, 128, 1024}
	if testing.Short() {
		depths = []int{2, 1024}
	}
	for _, depth := range depths {
		d := newTestDevice(t, Options{Depth: depth, Queues: 2})
		cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
		dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
		rng := rand.New(rand.NewPCG(uint64(depth), 7))
		// Enough requests for ≥ 5 wraps of the ring, at least 1500.
		n := max(1500, 5*depth+7)
		maxLen := 16 << 10
		if depth >= 1024 || raceEnabled {
			maxLen = 2 << 10
		}
		srcs := make([][]byte, n)
		creqs := make([]*qm.ZipRequest, n)
		for i := range srcs {
			srcs[i] = testData(rng, 1+rng.IntN(maxLen))
			creqs[i] = &qm.ZipRequest{Alg: algs[i%3].alg, Src: srcs[i], Dst: make([]byte, 0, len(srcs[i])+len(srcs[i])/8+64), Priv: i}
		}
		runAll(t, cz, creqs)
		dreqs := make([]*qm.ZipRequest, n)
		for i, c := range creqs {
			if c.Err != nil {
				t.Fatalf("depth %d block %d (%v, %d bytes): %v", depth, i, c.Alg, len(srcs[i]), c.Err)
			}
			// v1-layout requests need >= 16 bytes of output space (§3.2).
			dreqs[i] = &qm.ZipRequest{Alg: c.Alg, Src: c.Out, Dst: make([]byte, 0, max(16, len(srcs[i]))), Priv: i}
		}
		runAll(t, dz, dreqs)
		for i, r := range dreqs {
			if r.Err != nil || !bytes.Equal(r.Out, srcs[i]) || r.Consumed != len(creqs[i].Out) {
				t.Fatalf("depth %d block %d (%v): err %v, equal %v, consumed %d of %d", depth, i, r.Alg, r.Err, bytes.Equal(r.Out, srcs[i]), r.Consumed, len(creqs[i].Out))
			}
		}
		step := 1 // every block (a sample under the race detector)
		if raceEnabled {
			step = 13
		}
		for i := 0; i < n; i += step {
			a := algs[i%3]
			back, err := codec.Decompress(a.id, nil, creqs[i].Out, len(srcs[i]))
			if err != nil || !bytes.Equal(back, srcs[i]) {
				t.Fatalf("codec cannot decode emu %v output: %v", a.alg, err)
			}
		}
		if st := d.Stats(); st.Requests != int64(2*n) || st.HWErrors != 0 {
			t.Fatalf("stats %+v", st)
		}
	}
}

// TestCodecOutputThroughEmu: codec/ output of every level decodes through
// the emulated device.
func TestCodecOutputThroughEmu(t *testing.T) {
	d := newTestDevice(t, Options{})
	dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
	rng := rand.New(rand.NewPCG(3, 4))
	var reqs []*qm.ZipRequest
	var srcs [][]byte
	n, maxLen := 150, 128<<10
	if raceEnabled {
		n, maxLen = 45, 32<<10
	}
	for i := 0; i < n; i++ {
		src := testData(rng, 1+rng.IntN(maxLen))
		a := algs[i%3]
		cc, err := codec.Compress(a.id, 1+i%9, nil, src)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
		reqs = append(reqs, &qm.ZipRequest{Alg: a.alg, Src: cc, Dst: make([]byte, 0, max(16, len(src)))})
	}
	runAll(t, dz, reqs)
	for i, r := range reqs {
		if r.Err != nil || !bytes.Equal(r.Out, srcs[i]) || r.Consumed != len(r.Src) {
			t.Fatalf("block %d (%v): %v", i, r.Alg, r.Err)
		}
	}
}

// TestAPIVersionsAndGeometry: v1 (doorbell 0x340), v3 layout, 64 KiB pages,
// an old kernel without SET_QP_INFO.
func TestAPIVersionsAndGeometry(t *testing.T) {
	for _, o := range []Options{
		{APIVersion: 1, Depth: 16},
		{APIVersion: 3, Depth: 16},
		{APIVersion: 2, Depth: 16, PageSize: 65536},
		{APIVersion: 2, OldKernel: true},
	} {
		d := newTestDevice(t, o)
		devs, _ := d.Discover()
		if len(devs) != 1 || devs[0].DUSSize != int64(d.dusSize) || devs[0].MMIOSize != int64(d.mmioSize) || devs[0].APIVersion != o.APIVersion {
			t.Fatalf("%+v: discovered %+v", o, devs)
		}
		cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
		dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
		info := cz.Info()
		if o.OldKernel && (!info.InfoDefaulted || info.SQDepth != 1024) {
			t.Fatalf("old kernel info %+v", info)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; i < 60; i++ {
			src := testData(rng, 1+rng.IntN(8<<10))
			c := &qm.ZipRequest{Alg: algs[i%3].alg, Src: src, Dst: make([]byte, 0, len(src)+128)}
			do(t, cz, c)
			r := &qm.ZipRequest{Alg: c.Alg, Src: c.Out, Dst: make([]byte, 0, len(src)+16)}
			do(t, dz, r)
			if c.Err != nil || r.Err != nil || !bytes.Equal(r.Out, src) {
				t.Fatalf("%+v block %d: %v %v", o, i, c.Err, r.Err)
			}
		}
		if d.Stats().HWErrors != 0 {
			t.Fatalf("%+v: hardware errors", o)
		}
	}
}

// TestIncompressible: random data comes back with status 0x0d and still
// decodes (0x0d is success, §3.2).
func TestIncompressible(t *testing.T) {
	d := newTestDevice(t, Options{})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	src := make([]byte, 100000)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	for _, a := range algs {
		r := &qm.ZipRequest{Alg: a.alg, Src: src, Dst: make([]byte, 0, len(src)+1024)}
		do(t, cz, r)
		if r.Err != nil || r.Status&0xff != qm.StatusNegComp {
			t.Fatalf("%v: status %#x err %v", a.alg, r.Status, r.Err)
		}
		back, err := codec.Decompress(a.id, nil, r.Out, len(src))
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%v: stored output does not decode: %v", a.alg, err)
		}
	}
}

// TestSyncDo drives the sync helper, in polling and interrupt mode.
func TestSyncDo(t *testing.T) {
	for _, intr := range []bool{false, true} {
		d := newTestDevice(t, Options{Depth: 8, Model: Model{Latency: 200 * time.Microsecond}})
		cz := openZip(t, d, uacce.Compress, qm.ZipOptions{Interrupt: intr})
		src := bytes.Repeat([]byte("sync mode "), 1000)
		for i := 0; i < 20; i++ {
			r := &qm.ZipRequest{Alg: qm.AlgGzip, Src: src, Dst: make([]byte, 0, len(src))}
			if err := cz.Do(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if back, err := codec.Decompress(codec.Gzip, nil, r.Out, len(src)); err != nil || !bytes.Equal(back, src) {
				t.Fatal("bad output")
			}
		}
	}
}
