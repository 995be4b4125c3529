package session

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
	"golang.org/x/sys/unix"
)

// cpuTime returns user+system CPU time of the process (getrusage).
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchData is compressible-but-not-trivial input: text with random runs.
func benchData(n int) []byte {
	rnd := rand.New(rand.NewSource(42))
	b := testData(rnd, 0, n)
	for i := 0; i+512 <= n; i += 4096 {
		rnd.Read(b[i : i+512])
	}
	return b
}

type benchEngine struct {
	name string
	opts func(b *testing.B) []Option
}

var benchSizes = []int{4 << 10, 64 << 10, 128 << 10, 1 << 20}

// benchEngines lists the engines benchmarked; emu_test.go adds "emu".
var benchEngines = []benchEngine{
	{"cpu", func(*testing.B) []Option { return nil }},
}

// reportCPU adds CPU time per op and per MB as custom metrics.
func reportCPU(b *testing.B, cpu0 time.Duration, size int) {
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(cpu.Seconds()*1e3/(float64(b.N)*float64(size)/1e6), "cpu-ms/MB")
}

// BenchmarkThroughput: compress throughput per engine, mode and size.
// sync: 4 goroutines each calling Do in a loop; async: one goroutine keeping
// up to 64 requests in flight with Submit.
func BenchmarkThroughput(b *testing.B) {
	for _, e := range benchEngines {
		for _, mode := range []Mode{Sync, Async} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/%s/%dK", e.name, mode, size>>10), func(b *testing.B) {
					l, err := New(append([]Option{WithThreshold(0, 0)}, e.opts(b)...)...)
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					src := benchData(size)
					s, err := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: -1})
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(size))
					b.ReportAllocs()
					ctx := context.Background()
					cpu0 := cpuTime()
					b.ResetTimer()
					if mode == Sync {
						const par = 4
						var next atomic.Int64
						var wg sync.WaitGroup
						for g := 0; g < par; g++ {
							wg.Add(1)
							go func() {
								defer wg.Done()
								dst := make([]byte, 0, size+size/8+64)
								for next.Add(1) <= int64(b.N) {
									r := &Request{Src: src, Dst: dst}
									if err := s.Do(ctx, r); err != nil {
										b.Error(err)
										return
									}
								}
							}()
						}
						wg.Wait()
					} else {
						const window = 64
						sem := make(chan struct{}, window)
						var wg sync.WaitGroup
						for i := 0; i < b.N; i++ {
							sem <- struct{}{}
							wg.Add(1)
							r := &Request{Src: src}
							if err := s.Submit(ctx, r, func(r *Request) {
								if r.Err != nil {
									b.Error(r.Err)
								}
								<-sem
								wg.Done()
							}); err != nil {
								b.Fatal(err)
							}
						}
						wg.Wait()
					}
					b.StopTimer()
					reportCPU(b, cpu0, size)
				})
			}
		}
	}
}

// BenchmarkPollVsPark: one sync caller, one request at a time (latency
// bound), with spinning allowed (poll) or forbidden (park): ns/op is the
// round-trip latency, cpu-ns/op what it costs.
func BenchmarkPollVsPark(b *testing.B) {
	for _, e := range benchEngines {
		for _, spin := range []time.Duration{0, 200 * time.Microsecond} {
			for _, size := range []int{4 << 10, 128 << 10} {
				name := "park"
				if spin > 0 {
					name = "poll"
				}
				b.Run(fmt.Sprintf("%s/%s/%dK", e.name, name, size>>10), func(b *testing.B) {
					l, err := New(append([]Option{WithThreshold(0, 0), WithSpinLimit(spin)}, e.opts(b)...)...)
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					src := benchData(size)
					s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: -1})
					dst := make([]byte, 0, size+size/8+64)
					b.SetBytes(int64(size))
					cpu0 := cpuTime()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := s.Do(context.Background(), &Request{Src: src, Dst: dst}); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					reportCPU(b, cpu0, size)
				})
			}
		}
	}
}

// BenchmarkCPULatency: one deflate request at a time on the CPU codec alone
// (no session layer), on Go source text: the CPU side of the size
// threshold (see DefaultCompressThreshold).
func BenchmarkCPULatency(b *testing.B) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("no go command: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "src", "net", "http", "server.go"))
	if err != nil || len(src) < 64<<10 {
		b.Skipf("no Go source to measure on: %v", err)
	}
	for _, dir := range []Direction{Compress, Decompress} {
		for _, size := range []int{1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10} {
			b.Run(fmt.Sprintf("%s/%dK", dir, size>>10), func(b *testing.B) {
				raw := src[len(src)/3 : len(src)/3+size]
				comp, err := codec.Compress(codec.Deflate, 0, nil, raw)
				if err != nil {
					b.Fatal(err)
				}
				dst := make([]byte, 0, size+size/8+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if dir == Compress {
						_, err = codec.Compress(codec.Deflate, 0, dst, raw)
					} else {
						_, err = codec.Decompress(codec.Deflate, dst, comp, size)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
