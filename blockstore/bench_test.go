package blockstore

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// Benchmarks: sequential write and read through the store of a realistic
// corpus built from files on this machine (Go source text, a binary, logs)
// and of random data, per codec, next to the bare codec speed on the same
// data (serial, and through the CPU worker pool the store uses).

const benchSize = 8 << 20

var (
	benchOnce   sync.Once
	benchCorpus []byte
	benchRandom []byte
)

// appendFiles appends the contents of files under root accepted by keep
// until dst holds limit bytes.
func appendFiles(dst []byte, root string, limit int, keep func(path string) bool) []byte {
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || len(dst) >= limit {
			if len(dst) >= limit {
				return filepath.SkipAll
			}
			return nil
		}
		if d.Type().IsRegular() && keep(path) {
			if b, err := os.ReadFile(path); err == nil {
				dst = append(dst, b[:min(len(b), limit-len(dst))]...)
			}
		}
		return nil
	})
	return dst
}

func benchData(b *testing.B) (corpus, random []byte) {
	benchOnce.Do(func() {
		goroot := os.Getenv("GOROOT")
		if out, err := exec.Command("go", "env", "GOROOT").Output(); goroot == "" && err == nil {
			goroot = strings.TrimSpace(string(out))
		}
		var c []byte
		// ~5 MiB Go source, ~2 MiB of a binary, the text logs, then source again.
		c = appendFiles(c, filepath.Join(goroot, "src"), 5<<20, func(p string) bool { return strings.HasSuffix(p, ".go") })
		c = appendFiles(c, filepath.Join(goroot, "bin"), len(c)+2<<20, func(p string) bool { return true })
		c = appendFiles(c, "/var/log", len(c)+1<<20, func(p string) bool {
			return !strings.HasSuffix(p, ".xz") && !strings.HasSuffix(p, ".gz")
		})
		c = appendFiles(c, filepath.Join(goroot, "src"), benchSize, func(p string) bool {
			return strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".s") || strings.HasSuffix(p, ".txt")
		})
		for len(c) < benchSize { // tiny GOROOT: pad with generated text
			c = append(c, compressible(1<<20, len(c))...)
		}
		benchCorpus = c[:benchSize]
		r := rand.New(rand.NewPCG(1, 1))
		benchRandom = make([]byte, benchSize)
		for i := range benchRandom {
			benchRandom[i] = byte(r.Uint32())
		}
	})
	if len(benchCorpus) != benchSize {
		b.Fatal("no corpus")
	}
	return benchCorpus, benchRandom
}

func benchInputs(b *testing.B) []struct {
	name string
	data []byte
} {
	c, r := benchData(b)
	return []struct {
		name string
		data []byte
	}{{"corpus", c}, {"random", r}}
}

const benchBS = 128 << 10

func benchStore(b *testing.B, algo codec.ID) *Store {
	o := testOpts(b, benchBS, algo)
	o.CacheBytes = 4 << 20 // smaller than the data: reads decode
	return mustOpen(b, b.TempDir(), o)
}

// BenchmarkStoreWrite writes the data sequentially in 1 MiB writes (the
// FUSE max_write) into a fresh file and Syncs (fdatasync + index commit).
func BenchmarkStoreWrite(b *testing.B) { benchWrite(b, true) }

// BenchmarkStoreWriteFlush is the same with Flush instead of Sync: records
// written to the backing file (page cache), no fdatasync, no commit — the
// cost of the write pipeline itself.
func BenchmarkStoreWriteFlush(b *testing.B) { benchWrite(b, false) }

func benchWrite(b *testing.B, sync bool) {
	for _, in := range benchInputs(b) {
		for _, algo := range codec.All() {
			b.Run(fmt.Sprintf("%s/%s", in.name, algo), func(b *testing.B) {
				s := benchStore(b, algo)
				defer s.Close()
				f := createFile(b, s, "f")
				defer f.Close()
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := f.Truncate(0); err != nil {
						b.Fatal(err)
					}
					for off := 0; off < len(in.data); off += 1 << 20 {
						if _, err := f.WriteAt(in.data[off:min(len(in.data), off+1<<20)], int64(off)); err != nil {
							b.Fatal(err)
						}
					}
					if sync {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					} else if err := f.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				st := s.Stats()
				b.ReportMetric(float64(st.StoredBytes)/float64(st.LogicalBytes), "stored/logical")
			})
		}
	}
}

// BenchmarkStoreRead reads the data back sequentially in 128 KiB reads (the
// usual FUSE read size) from a reopened store (cold decoded-block cache).
func BenchmarkStoreRead(b *testing.B) {
	for _, in := range benchInputs(b) {
		for _, algo := range codec.All() {
			b.Run(fmt.Sprintf("%s/%s", in.name, algo), func(b *testing.B) {
				s := benchStore(b, algo)
				f := createFile(b, s, "f")
				mustWrite(b, f, in.data, 0)
				f.Close()
				dir := s.Dir()
				s.Close()
				o := testOpts(b, benchBS, algo)
				o.CacheBytes = 4 << 20
				s = mustOpen(b, dir, o)
				defer s.Close()
				f = openFile(b, s, "f")
				defer f.Close()
				buf := make([]byte, 128<<10)
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for off := int64(0); ; off += int64(len(buf)) {
						n, err := f.ReadAt(buf, off)
						if err == io.EOF {
							break
						}
						if err != nil || n != len(buf) {
							b.Fatal(n, err)
						}
					}
				}
			})
		}
	}
}

func blocksOf(data []byte) [][]byte {
	var bl [][]byte
	for off := 0; off < len(data); off += benchBS {
		bl = append(bl, data[off:min(len(data), off+benchBS)])
	}
	return bl
}

// BenchmarkCodec is the bare codec on the same data in 128 KiB blocks:
// "serial" on one goroutine, "pool" through NewCPUCompressor(GOMAXPROCS)
// with all blocks in one Run (what the store does).
func BenchmarkCodec(b *testing.B) {
	for _, in := range benchInputs(b) {
		blocks := blocksOf(in.data)
		for _, algo := range codec.All() {
			comp := make([][]byte, len(blocks))
			for i, bl := range blocks {
				comp[i], _ = codec.Compress(algo, 0, nil, bl)
			}
			for _, mode := range []string{"serial", "pool"} {
				b.Run(fmt.Sprintf("compress/%s/%s/%s", mode, in.name, algo), func(b *testing.B) {
					b.SetBytes(int64(len(in.data)))
					b.ReportAllocs()
					dst := make([][]byte, len(blocks))
					for i := range dst {
						dst[i] = make([]byte, 0, benchBS+1024)
					}
					pool := NewCPUCompressor(runtime.GOMAXPROCS(0))
					for i := 0; i < b.N; i++ {
						if mode == "serial" {
							for j, bl := range blocks {
								if _, err := codec.Compress(algo, 0, dst[j][:0], bl); err != nil {
									b.Fatal(err)
								}
							}
							continue
						}
						jobs := make([]*Job, len(blocks))
						for j, bl := range blocks {
							jobs[j] = &Job{Algo: algo, Src: bl, Dst: dst[j]}
						}
						if err := pool.Run(context.Background(), jobs); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("decompress/%s/%s/%s", mode, in.name, algo), func(b *testing.B) {
					b.SetBytes(int64(len(in.data)))
					b.ReportAllocs()
					dst := make([][]byte, len(blocks))
					for i := range dst {
						dst[i] = make([]byte, 0, benchBS)
					}
					pool := NewCPUCompressor(runtime.GOMAXPROCS(0))
					for i := 0; i < b.N; i++ {
						if mode == "serial" {
							for j, c := range comp {
								if _, err := codec.Decompress(algo, dst[j][:0], c, len(blocks[j])); err != nil {
									b.Fatal(err)
								}
							}
							continue
						}
						jobs := make([]*Job, len(blocks))
						for j, c := range comp {
							jobs[j] = &Job{Decompress: true, Algo: algo, Src: c, Dst: dst[j], RawLen: len(blocks[j])}
						}
						if err := pool.Run(context.Background(), jobs); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
