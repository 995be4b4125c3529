package integration

import (
	"fmt"
	"os"
	"testing"
)

// Mounted end-to-end benchmarks (not run by the test command):
//
//	go test -run x -bench . -benchtime 3x ./test/integration/
//
// The data is source-like text (compressible about 2x with lz4).

const benchFileSize = 64 << 20

func BenchmarkSeqWrite(b *testing.B) {
	m := newBenchMount(b)
	chunk := text(1<<20, 'w')
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f, err := os.Create(m.path(fmt.Sprintf("f%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchFileSize; off += len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeqRead(b *testing.B) {
	m := newBenchMount(b)
	chunk := text(1<<20, 'r')
	f, err := os.Create(m.path("f"))
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < benchFileSize; off += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	for b.Loop() {
		// A fresh mount each time: the kernel page cache starts empty.
		b.StopTimer()
		m.unmount(b)
		m = remount(b, m.Backing, nil)
		b.StartTimer()
		f, err := os.Open(m.path("f"))
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := f.Read(buf)
			if n == 0 || err != nil {
				break
			}
		}
		f.Close()
	}
}

func BenchmarkSmallFiles(b *testing.B) {
	m := newBenchMount(b)
	data := text(4<<10, 's')
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := os.WriteFile(m.path(fmt.Sprintf("s%d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func newBenchMount(b *testing.B) *mnt { return newMount(b, nil) }
