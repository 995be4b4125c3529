package emu

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

var benchSizes = []struct {
	name string
	n    int
}{{"4KiB", 4 << 10}, {"128KiB", 128 << 10}}

// benchBlock is compressible mixed data (text and structured binary).
func benchBlock(n int) []byte {
	rng := rand.New(rand.NewPCG(11, 12))
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, testData(rng, min(4096, n-len(b)))...)
	}
	return b
}

// pipeline keeps up to depth-1 requests in flight on z and completes b.N
// requests of src; ns/op is the per-request cost with the ring kept full.
func pipeline(b *testing.B, z *qm.ZipQueue, alg qm.Alg, src []byte, dstCap int) {
	window := z.Capacity()
	reqs := make([]*qm.ZipRequest, window)
	for i := range reqs {
		reqs[i] = &qm.ZipRequest{Alg: alg, Src: src, Dst: make([]byte, 0, dstCap)}
	}
	free := append([]*qm.ZipRequest(nil), reqs...)
	var failed error
	fn := func(r *qm.ZipRequest) {
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
		free = append(free, r)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.ResetTimer()
	sent, done, idle := 0, 0, 0
	for done < b.N {
		for len(free) > 0 && sent < b.N {
			if err := z.Submit(free[len(free)-1]); err != nil {
				break
			}
			free = free[:len(free)-1]
			sent++
		}
		n, err := z.Poll(0, fn)
		if err != nil {
			b.Fatal(err)
		}
		done += n
		// A poller spins briefly, then parks until the device posts.
		if n == 0 {
			if idle++; idle > 64 {
				z.Wait(time.Millisecond)
				idle = 0
			}
		} else {
			idle = 0
		}
	}
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
}

// BenchmarkQMEmuNoop is the queue protocol's own per-request overhead:
// qm Submit/Poll + the emulated device with the no-op engine (no data
// touched), ring kept full (depth 1024).
func BenchmarkQMEmuNoop(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			d := newTestDevice(b, Options{Engine: EngineNoop})
			z := openZip(b, d, uacce.Compress, qm.ZipOptions{})
			pipeline(b, z, qm.AlgDeflate, benchBlock(s.n), s.n+1024)
		})
	}
}

// BenchmarkQMEmuNoopSync is one request at a time (Do): the round-trip
// latency through the emulated device's engine goroutine.
func BenchmarkQMEmuNoopSync(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			d := newTestDevice(b, Options{Engine: EngineNoop})
			z := openZip(b, d, uacce.Compress, qm.ZipOptions{})
			r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: benchBlock(s.n), Dst: make([]byte, 0, s.n+1024)}
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := z.Do(b.Context(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQMEmuDeflate: real compression through qm + emu (one queue, ring
// kept full).
func BenchmarkQMEmuDeflate(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			d := newTestDevice(b, Options{})
			z := openZip(b, d, uacce.Compress, qm.ZipOptions{})
			pipeline(b, z, qm.AlgDeflate, benchBlock(s.n), s.n+1024)
		})
	}
}

// BenchmarkCPUDeflate: codec/ on the same data, same goroutine, for scale.
func BenchmarkCPUDeflate(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := benchBlock(s.n)
			dst := make([]byte, 0, s.n+1024)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Compress(codec.Deflate, 0, dst[:0], src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQMEmuModel: the no-op engine under HisiZipModel (15 µs per
// request, 7 GB/s), 8 KiB requests as in the published figures (§5.1:
// 556 MB/s with one request in flight, ≈7 GB/s with ≥ 60 in flight).
func BenchmarkQMEmuModel(b *testing.B) {
	b.Run("8KiB/depth1", func(b *testing.B) {
		d := newTestDevice(b, Options{Engine: EngineNoop, Model: HisiZipModel()})
		z := openZip(b, d, uacce.Compress, qm.ZipOptions{SpinFor: time.Millisecond})
		r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: benchBlock(8 << 10), Dst: make([]byte, 0, 9<<10)}
		b.SetBytes(8 << 10)
		b.ReportAllocs()
		for b.Loop() {
			if err := z.Do(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("8KiB/depth64", func(b *testing.B) {
		d := newTestDevice(b, Options{Engine: EngineNoop, Model: HisiZipModel(), Depth: 65})
		z := openZip(b, d, uacce.Compress, qm.ZipOptions{})
		pipeline(b, z, qm.AlgDeflate, benchBlock(8<<10), 9<<10)
	})
}
