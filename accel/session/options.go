package session

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Defaults.
//
// The size thresholds are measured, not guessed (commands and raw figures in
// the project notes, notes-D.md; quiet 2-core VM, load ≈1): one synchronous
// device request costs the software path (session + qm + queue: 13µs,
// BenchmarkPollVsPark/emu-noop/poll/4K) plus the device time (≈15µs per
// request at depth 1 for hisi_zip, uadk-spec §5.1), ≈28µs in all. The CPU
// codec alone (BenchmarkCPULatency, Go source text) deflates 2 KiB in 16.5µs,
// 4 KiB in 24.5µs, 8 KiB in 41µs, and inflates 8 KiB in 17µs, 16 KiB in 31µs,
// 32 KiB in 67µs. So the device wins from 8 KiB when compressing and from
// 16 KiB when decompressing; below that a request stays on the CPU. An
// emulated device computes on the host CPU, so its own crossover is noise:
// on a machine with the device run `accelfs bench --accel <device>` and set
// --hw-threshold / --hw-threshold-decompress from what it prints.
const (
	DefaultCompressThreshold   = 8 << 10
	DefaultDecompressThreshold = 16 << 10
	DefaultSpinLimit           = 50 * time.Microsecond
	DefaultTimeout             = 5 * time.Second
	DefaultCPUDepth            = 64
	DefaultHWCtxsPerRegion     = 1
	DefaultPollers             = 1
	DefaultRevive              = time.Second
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
	revive     time.Duration
	logger     *slog.Logger
	engines    []engine
	noOffload  bool
	verify     bool
	noSelfTest bool
	// noSyncSingle: Run sends a one-job batch through the async path too.
	noSyncSingle bool
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
		revive:     DefaultRevive,
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

// WithThreshold sets the smallest request sent to a hardware engine, per
// direction, in raw (uncompressed) bytes: the source length to compress, the
// RawLen to decompress; smaller ones run on the CPU. Defaults
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

// WithCPUOffload sets whether requests the hardware could run may move to
// the CPU because of load: when the hardware region is full, or when the
// device queue would finish later than the CPU (see the package doc), and the
// CPU has a free credit. With false every request the hardware supports and
// whose size passes the threshold runs on it, waiting for credits if needed
// (benchmarks and tests of one engine). Default true.
func WithCPUOffload(on bool) Option {
	return func(c *config) error { c.noOffload = !on; return nil }
}

// WithRevive sets how long after a ctx failed (queue disabled by a reset,
// timeout, ...) its queue is re-opened; each consecutive failure doubles the
// delay (up to 64x). The revival runs in the ctx's poller (or in a
// self-polling caller). 0 disables revival: a failed ctx stays retired.
// Default 1s.
func WithRevive(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: revive delay %v", ErrBadRequest, d)
		}
		c.revive = d
		return nil
	}
}

// WithVerifyCompression makes the layer decode every block a hardware
// engine compressed on the CPU and compare it with the input before the
// result is delivered; a mismatch is counted (fallback "bad_output"),
// logged once, and the block is compressed again on the CPU. It costs one
// CPU decompression per device-compressed block. Default off.
func WithVerifyCompression(on bool) Option {
	return func(c *config) error { c.verify = on; return nil }
}

// WithSelfTest sets whether a device's first queue of each direction runs
// the start-up self-test (selftest.go) before it is used. Default true;
// tests of timeouts on deliberately slow devices turn it off.
func WithSelfTest(on bool) Option {
	return func(c *config) error { c.noSelfTest = !on; return nil }
}

// WithSyncSingle sets whether Run sends a batch of exactly one job (a small
// random read or write) through a sync ctx (poll while the expected time is
// short, park when long) rather than the async path. Default true;
// false is for measuring the difference.
func WithSyncSingle(on bool) Option {
	return func(c *config) error { c.noSyncSingle = !on; return nil }
}
