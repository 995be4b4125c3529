package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// benchResult is one line of `accelfs bench`.
type benchResult struct {
	Engine        string  `json:"engine"`
	Algo          string  `json:"algo"`
	Auto          bool    `json:"auto"` // what --accel auto / --algo auto would use
	CompressMBs   float64 `json:"compress_mb_s"`
	DecompressMBs float64 `json:"decompress_mb_s"`
	Ratio         float64 `json:"ratio"` // stored/raw
}

// latencyPoint is one size of the threshold measurement: median µs of one
// synchronous request (one in flight) per engine and direction.
type latencyPoint struct {
	Size            int     `json:"size"`
	CompressCPUus   float64 `json:"compress_cpu_us"`
	CompressHWus    float64 `json:"compress_hw_us"`
	DecompressCPUus float64 `json:"decompress_cpu_us"`
	DecompressHWus  float64 `json:"decompress_hw_us"`
}

type benchReport struct {
	BlockSize int            `json:"block_size"`
	Results   []benchResult  `json:"results"`
	Latency   []latencyPoint `json:"latency,omitempty"`
	// Threshold and DecompressThreshold are the smallest measured sizes
	// from which one synchronous request finished sooner on the device than
	// on the CPU at that size and every larger one (the values for
	// --hw-threshold and --hw-threshold-decompress); -1 when the device did
	// not win at the largest size.
	Threshold           int `json:"threshold"`
	DecompressThreshold int `json:"decompress_threshold"`
}

func benchCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "size", Value: "128K", Usage: "block size to measure"},
		&cli.DurationFlag{Name: "time", Value: 500 * time.Millisecond, Usage: "duration of each measurement"},
		&cli.BoolFlag{Name: "json", Usage: "print a JSON document"},
	}
	flags = append(flags, accelFlags()...)
	return &cli.Command{
		Name:  "bench",
		Usage: "measure compression engines (MB/s) and the CPU/accelerator size threshold",
		Description: `Measures every engine --accel offers: the CPU (lz4 and deflate) and each
accelerator device (deflate, or zlib on a device that does not list deflate
such as a Kunpeng 920), compressing and decompressing blocks of --size
in batches through the session layer as a mount does, and marks with * the
engine and algorithm 'auto' would pick. With a device it also measures the
median latency of single synchronous requests from 1K to 128K on both engines and
prints the smallest size at which the device wins: the value for
--hw-threshold. Input is this program's binary (compressible, not trivial).

Examples:
   accelfs bench
   accelfs bench --accel emu --emu-model hisi_zip
   accelfs bench --accel hisi_zip-0 --size 64K --json`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			size, err := parseSize(c.String("size"))
			if err != nil || size < 1 || size > 8<<20 {
				return usagef("--size %q: want 1 byte .. 8M", c.String("size"))
			}
			rep, err := runBench(c, size, c.Duration("time"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rep)
			}
			return printBench(c.App.Writer, rep)
		},
	}
}

// benchCorpus returns n bytes of this binary (repeated if short).
func benchCorpus(n int) []byte {
	exe, _ := os.Executable()
	b, _ := os.ReadFile(exe)
	if len(b) == 0 {
		b = []byte("accelfs bench fallback corpus: the binary could not be read. ")
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}

func runBench(c *cli.Context, size int, d time.Duration) (*benchReport, error) {
	rep := &benchReport{BlockSize: size, Threshold: -1, DecompressThreshold: -1}
	const blocks = 32
	corpus := benchCorpus(size * blocks)
	// CPU engine alone.
	cpuL, err := session.New(session.WithPollers(c.Int("pollers")))
	if err != nil {
		return nil, err
	}
	defer cpuL.Close()
	set, err := selectEngines(c)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	hasHW := false
	for _, dev := range set.Devices {
		_, ok := benchAlgo(dev)
		hasHW = hasHW || ok
	}
	for _, algo := range []codec.ID{codec.LZ4, codec.Deflate} {
		r, err := benchEngine(cpuL, "cpu", algo, corpus, size, d)
		if err != nil {
			return nil, err
		}
		r.Auto = !hasHW && algo == codec.LZ4
		rep.Results = append(rep.Results, r)
	}
	// Each device alone with the algorithm it offers (deflate, else zlib),
	// no offload to the CPU, no threshold.
	var hwL *session.Layer
	hwAlgo := codec.Deflate
	for _, dev := range set.Devices {
		algo, ok := benchAlgo(dev)
		if !ok {
			continue
		}
		l, err := session.New(session.WithPollers(c.Int("pollers")), session.WithHWCtxsPerRegion(c.Int("hw-queues")),
			session.WithThreshold(0, 0), session.WithCPUOffload(false), session.WithDevice(set.Provider, dev))
		if err != nil {
			return nil, err
		}
		defer l.Close()
		if !l.HardwareFor(algo, session.Compress) {
			m := l.Metrics()
			return nil, fmt.Errorf("%s: not in service: %s (fallbacks %v)", dev.Name, m.Engines[dev.Name].Idle, m.Fallbacks)
		}
		r, err := benchEngine(l, dev.Name, algo, corpus, size, d)
		if err != nil {
			return nil, err
		}
		r.Auto = hwL == nil
		rep.Results = append(rep.Results, r)
		if hwL == nil {
			hwL, hwAlgo = l, algo
		}
	}
	if hwL != nil {
		var cWins, dWins []bool
		for _, sz := range []int{1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10} {
			raw := corpus[:min(sz, len(corpus))]
			comp, err := codec.Compress(hwAlgo, 0, nil, raw)
			if err != nil {
				return nil, err
			}
			var t [4]time.Duration // compress cpu, hw; decompress cpu, hw
			for i, l := range []*session.Layer{cpuL, hwL, cpuL, hwL} {
				dir, src := session.Compress, raw
				if i >= 2 {
					dir, src = session.Decompress, comp
				}
				if t[i], err = syncLatency(l, hwAlgo, dir, src, len(raw), d/16); err != nil {
					return nil, err
				}
			}
			rep.Latency = append(rep.Latency, latencyPoint{Size: sz,
				CompressCPUus: us(t[0]), CompressHWus: us(t[1]), DecompressCPUus: us(t[2]), DecompressHWus: us(t[3])})
			cWins, dWins = append(cWins, t[1] <= t[0]), append(dWins, t[3] <= t[2])
		}
		rep.Threshold = crossover(rep.Latency, cWins)
		rep.DecompressThreshold = crossover(rep.Latency, dWins)
	}
	return rep, nil
}

// benchAlgo is the algorithm a device is measured with: deflate where it
// lists it, else zlib (a Kunpeng 920); false when it offers neither.
func benchAlgo(dev uacce.Device) (codec.ID, bool) {
	switch {
	case dev.HasAlgorithm("deflate"):
		return codec.Deflate, true
	case dev.HasAlgorithm("zlib"):
		return codec.Zlib, true
	}
	return 0, false
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// benchEngine measures compress and decompress MB/s of algo on l with
// batches of blocks (Layer.Run, as the filesystem submits them).
func benchEngine(l *session.Layer, name string, algo codec.ID, corpus []byte, size int, d time.Duration) (benchResult, error) {
	n := len(corpus) / size
	comp := make([]*session.Job, n)
	for i := range comp {
		comp[i] = &session.Job{Algo: algo, Src: corpus[i*size : (i+1)*size], Dst: make([]byte, 0, size+size/8+64)}
	}
	ctx := context.Background()
	var bytesC, bytesOut int64
	start := time.Now()
	for time.Since(start) < d {
		if err := l.Run(ctx, comp); err != nil {
			return benchResult{}, err
		}
		for _, j := range comp {
			if j.Err != nil {
				return benchResult{}, fmt.Errorf("%s %v compress: %w", name, algo, j.Err)
			}
			bytesC += int64(len(j.Src))
			bytesOut += int64(len(j.Out))
		}
	}
	cElapsed := time.Since(start)
	dec := make([]*session.Job, n)
	for i, j := range comp {
		dec[i] = &session.Job{Decompress: true, Algo: algo, Src: append([]byte(nil), j.Out...), RawLen: size, Dst: make([]byte, 0, size)}
	}
	var bytesD int64
	start = time.Now()
	for time.Since(start) < d {
		if err := l.Run(ctx, dec); err != nil {
			return benchResult{}, err
		}
		for i, j := range dec {
			if j.Err != nil || len(j.Out) != size || string(j.Out) != string(comp[i].Src) {
				return benchResult{}, fmt.Errorf("%s %v decompress block %d: wrong result (%v)", name, algo, i, j.Err)
			}
			bytesD += int64(size)
		}
	}
	dElapsed := time.Since(start)
	return benchResult{Engine: name, Algo: algo.String(),
		CompressMBs:   float64(bytesC) / 1e6 / cElapsed.Seconds(),
		DecompressMBs: float64(bytesD) / 1e6 / dElapsed.Seconds(),
		Ratio:         float64(bytesOut) / float64(bytesC)}, nil
}

// crossover is the smallest size from which the device won at every larger
// measured size, -1 when it lost at the largest.
func crossover(pts []latencyPoint, wins []bool) int {
	th := -1
	for i := len(wins) - 1; i >= 0 && wins[i]; i-- {
		th = pts[i].Size
	}
	return th
}

// syncLatency is the median time of one synchronous request of src with
// algo in direction dir (one request in flight), over about d of repetitions
// (the median, not the mean, so that a busy machine's stalls do not decide
// the threshold).
func syncLatency(l *session.Layer, algo codec.ID, dir session.Direction, src []byte, rawLen int, d time.Duration) (time.Duration, error) {
	s, err := l.NewSession(session.SessionOptions{Algo: algo, Dir: dir, Node: -1})
	if err != nil {
		return 0, err
	}
	dst := make([]byte, 0, rawLen+rawLen/8+64)
	ctx := context.Background()
	var times []time.Duration
	start := time.Now()
	for (time.Since(start) < d || len(times) < 11) && len(times) < 100000 {
		t0 := time.Now()
		if err := s.Do(ctx, &session.Request{Src: src, Dst: dst, RawLen: rawLen}); err != nil {
			return 0, err
		}
		times = append(times, time.Since(t0))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times[len(times)/2], nil
}

func printBench(w io.Writer, rep *benchReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "block size %d bytes; * = what --accel auto --algo auto uses\n", rep.BlockSize)
	fmt.Fprintln(tw, "\tENGINE\tALGO\tCOMPRESS MB/s\tDECOMPRESS MB/s\tSTORED/RAW")
	for _, r := range rep.Results {
		mark := ""
		if r.Auto {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.3f\n", mark, r.Engine, r.Algo, r.CompressMBs, r.DecompressMBs, r.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Latency) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmedian µs per synchronous deflate request (one in flight)")
	fmt.Fprintln(tw, "SIZE\tCOMPRESS CPU\tCOMPRESS DEVICE\tDECOMPRESS CPU\tDECOMPRESS DEVICE")
	for _, p := range rep.Latency {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%.1f\n", p.Size, p.CompressCPUus, p.CompressHWus, p.DecompressCPUus, p.DecompressHWus)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	show := func(th int) string {
		if th < 0 {
			return "never (the CPU won at the largest size)"
		}
		return fmt.Sprintf("from %d bytes", th)
	}
	_, err := fmt.Fprintf(w, "device faster: compress %s (--hw-threshold), decompress %s (--hw-threshold-decompress)\n",
		show(rep.Threshold), show(rep.DecompressThreshold))
	return err
}
