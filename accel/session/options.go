package session

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Defaults. DefaultThreshold* come from BenchmarkSyncLatency (see
// /work/plan/notes-D.md and the bench subcommand): below them the CPU finished
// a single request sooner than a hardware round trip on the measured engine.
const (
	DefaultCompressThreshold   = 4096
	DefaultDecompressThreshold = 4096
	DefaultSpinLimit           = 50 * time.Microsecond
	DefaultTimeout             = 5 * time.Second
	DefaultCPUDepth            = 64
	DefaultHWCtxsPerRegion     = 1
	DefaultPollers             = 1
)

type config struct {
	sysRoot    string
	topo       *Topology
	cpuWorkers int
	cpuDepth   int
	pollers    int
	hwCtxs     int
	threshold  [2]int
	spinLimit  time.Duration
	timeout    time.Duration
	logger     *slog.Logger
	engines    []engine
	noOffload  bool
}

func defaultConfig() config {
	return config{
		sysRoot:    "/sys",
		cpuWorkers: runtime.GOMAXPROCS(0),
		cpuDepth:   DefaultCPUDepth,
		pollers:    DefaultPollers,
		hwCtxs:     DefaultHWCtxsPerRegion,
		threshold:  [2]int{DefaultCompressThreshold, DefaultDecompressThreshold},
		spinLimit:  DefaultSpinLimit,
		timeout:    DefaultTimeout,
	}
}

// Option configures New.
type Option func(*config) error

// WithSysRoot sets the sysfs root the NUMA topology is read from
// (<root>/devices/system/node). Default "/sys". Tests use a directory that
// models two nodes.
func WithSysRoot(root string) Option {
	return func(c *config) error { c.sysRoot = root; return nil }
}

// WithTopology sets the topology directly (overrides WithSysRoot).
func WithTopology(t Topology) Option {
	return func(c *config) error {
		if len(t.Nodes) == 0 {
			return fmt.Errorf("%w: no nodes", ErrTopology)
		}
		c.topo = &t
		return nil
	}
}

// WithCPUWorkers sets the number of CPU engine workers. Default GOMAXPROCS.
func WithCPUWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 4096 {
			return fmt.Errorf("%w: cpu workers %d", ErrBadRequest, n)
		}
		c.cpuWorkers = n
		return nil
	}
}

// WithCPUDepth sets the credits of each CPU ctx. Default 64.
func WithCPUDepth(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 4096 {
			return fmt.Errorf("%w: cpu depth %d", ErrBadRequest, n)
		}
		c.cpuDepth = n
		return nil
	}
}

// WithPollers sets the number of poller goroutines per NUMA node for the
// hardware ctxs (the CPU engine's ctxs get one per node). 0 starts no
// pollers at all: callers drive completions with Layer.Poll (Do and Run then
// poll for themselves). Default 1.
func WithPollers(n int) Option {
	return func(c *config) error {
		if n < 0 || n > 256 {
			return fmt.Errorf("%w: pollers %d", ErrBadRequest, n)
		}
		c.pollers = n
		return nil
	}
}

// WithHWCtxsPerRegion sets how many hardware queues are opened per (node,
// mode, direction) region of each device. Default 1 (UADK's default), so a
// device gives 4 queues per node.
func WithHWCtxsPerRegion(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("%w: ctxs per region %d", ErrBadRequest, n)
		}
		c.hwCtxs = n
		return nil
	}
}

// WithThreshold sets the smallest request (source bytes) sent to a hardware
// engine, per direction; smaller ones run on the CPU. Defaults
// DefaultCompressThreshold, DefaultDecompressThreshold.
func WithThreshold(compress, decompress int) Option {
	return func(c *config) error {
		if compress < 0 || decompress < 0 {
			return fmt.Errorf("%w: negative threshold", ErrBadRequest)
		}
		c.threshold = [2]int{compress, decompress}
		return nil
	}
}

// WithSpinLimit bounds how long a sync caller polls before it parks; a
// request whose expected time exceeds it parks at once. 0 = always park.
// Default 50µs.
func WithSpinLimit(d time.Duration) Option {
	return func(c *config) error { c.spinLimit = d; return nil }
}

// WithTimeout sets how long a hardware request may stay in flight before its
// ctx is retired and its requests are redone on the CPU. Default 5s.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v", ErrBadRequest, d)
		}
		c.timeout = d
		return nil
	}
}

// WithLogger sets the logger (fallbacks are logged once per cause). Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// withEngine adds a hardware engine (hw.go builds them from devices; tests
// add fault-injecting fakes).
func withEngine(e engine) Option {
	return func(c *config) error {
		if e == nil {
			return fmt.Errorf("%w: nil engine", ErrNoDevice)
		}
		c.engines = append(c.engines, e)
		return nil
	}
}

// WithCPUOffload sets whether a request whose hardware region is full is
// sent to the CPU when the CPU has a free credit (load balancing). With
// false such a request waits for a hardware credit: every request the
// hardware supports runs on it (benchmarks of one engine). Default true.
func WithCPUOffload(on bool) Option {
	return func(c *config) error { c.noOffload = !on; return nil }
}
