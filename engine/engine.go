package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// Config is the engine choice. The zero value (with Accel set) means the
// session layer's defaults.
type Config struct {
	Accel      string // auto, cpu, emu or a device name
	EmuProfile string // with Accel "emu": accel/emu profile ("" = emu.DefaultProfile)
	EmuModel   string // with Accel "emu": "cpu" ("" too) or "hisi_zip"
	SysfsRoot  string // where uacce devices are listed ("" = uacce.DefaultSysfsRoot)
	Pollers    int    // 0 = session.DefaultPollers
	HWQueues   int    // 0 = session.DefaultHWCtxsPerRegion
	// Thresholds: smallest block sent to a device per direction; nil = the
	// session defaults (0 is a valid threshold, hence pointers).
	CompressThreshold, DecompressThreshold *int
	// VerifyCompression decodes every device-compressed block on the CPU
	// before it is delivered (session.WithVerifyCompression).
	VerifyCompression bool
	// AsyncOnly sends single-block requests through the async path too
	// (session.WithSyncSingle(false)); for measuring the sync mode.
	AsyncOnly bool
	Logger    *slog.Logger // nil = slog.Default()
}

// Set is what a mode selected: the provider that opens the devices' queues
// (nil for cpu) and the devices, plus what to close afterwards.
type Set struct {
	Provider uacce.Provider
	Devices  []uacce.Device
	closers  []io.Closer
}

// Close releases the emulator (if any) and its sysfs directory.
func (s *Set) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i].Close())
	}
	return errors.Join(errs...)
}

// ErrUsage marks a Config mistake the user made (a device that does not
// exist, an unknown profile or model): callers map it to a usage error.
var ErrUsage = errors.New("engine: bad choice")

// hwAlgorithms are the algorithms some hisi_zip runs (session's hwEngine).
var hwAlgorithms = []string{"deflate", "zlib", "gzip", "lz4"}

func usable(d uacce.Device) bool {
	for _, a := range hwAlgorithms {
		if d.HasAlgorithm(a) {
			return true
		}
	}
	return false
}

// Select resolves cfg.Accel to devices. "auto" with no devices (or no
// uacce at all) is the CPU only, not an error.
func Select(cfg Config) (*Set, error) {
	switch cfg.Accel {
	case "cpu":
		return &Set{}, nil
	case "emu":
		return Emulated(cfg.EmuProfile, cfg.EmuModel)
	}
	root := cfg.SysfsRoot
	if root == "" {
		root = uacce.DefaultSysfsRoot
	}
	host := &uacce.Host{SysfsRoot: root}
	devs, err := host.Discover()
	if err != nil && cfg.Accel != "auto" {
		return nil, fmt.Errorf("--accel %s: %w", cfg.Accel, err)
	}
	set := &Set{Provider: host}
	for _, d := range devs {
		switch {
		case cfg.Accel == "auto" && !d.Isolated && usable(d):
			set.Devices = append(set.Devices, d)
		case d.Name == cfg.Accel:
			if d.Isolated {
				return nil, fmt.Errorf("--accel %s: %w", cfg.Accel, uacce.ErrIsolated)
			}
			set.Devices = append(set.Devices, d)
		}
	}
	if cfg.Accel != "auto" && len(set.Devices) == 0 {
		return nil, fmt.Errorf("%w: --accel %q: no such device (want auto, cpu, emu or one of the names `accelfs devices` lists)", ErrUsage, cfg.Accel)
	}
	return set, nil
}

// Emulated creates one emulated hisi_zip-0 with the profile and timing
// model, its sysfs entry in a private temporary directory removed on Close.
func Emulated(profile, model string) (*Set, error) {
	o, err := emu.WithProfile(emu.Options{}, profile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	switch model {
	case "", "cpu":
	case "hisi_zip":
		o.Model = emu.HisiZipModel()
	default:
		return nil, fmt.Errorf("%w: emulator model %q: want cpu or hisi_zip", ErrUsage, model)
	}
	root, err := os.MkdirTemp("", "accelfs-emu-")
	if err != nil {
		return nil, err
	}
	o.SysfsRoot = root
	d, err := emu.New(o)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	set := &Set{Provider: d, closers: []io.Closer{closer(func() error { return os.RemoveAll(root) }), d}}
	devs, err := d.Discover()
	if err != nil || len(devs) != 1 {
		set.Close()
		return nil, fmt.Errorf("emulated device not discovered (%d devices): %w", len(devs), err)
	}
	set.Devices = devs
	return set, nil
}

// Options turns cfg into session options over the selected devices.
func (cfg Config) Options(set *Set) []session.Option {
	var opts []session.Option
	if cfg.Pollers > 0 {
		opts = append(opts, session.WithPollers(cfg.Pollers))
	}
	if cfg.HWQueues > 0 {
		opts = append(opts, session.WithHWCtxsPerRegion(cfg.HWQueues))
	}
	if cfg.CompressThreshold != nil || cfg.DecompressThreshold != nil {
		c, d := session.DefaultCompressThreshold, session.DefaultDecompressThreshold
		if cfg.CompressThreshold != nil {
			c = *cfg.CompressThreshold
		}
		if cfg.DecompressThreshold != nil {
			d = *cfg.DecompressThreshold
		}
		opts = append(opts, session.WithThreshold(c, d))
	}
	if cfg.VerifyCompression {
		opts = append(opts, session.WithVerifyCompression(true))
	}
	if cfg.AsyncOnly {
		opts = append(opts, session.WithSyncSingle(false))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts = append(opts, session.WithLogger(log))
	for _, d := range set.Devices {
		opts = append(opts, session.WithDevice(set.Provider, d))
	}
	return opts
}

// Engine is a running session layer over the selected engines.
type Engine struct {
	Layer *session.Layer
	set   *Set
}

// New selects the engines and starts the layer; extra options come last
// (tests, bench). Close the Engine after the store that uses it.
func New(cfg Config, extra ...session.Option) (*Engine, error) {
	set, err := Select(cfg)
	if err != nil {
		return nil, err
	}
	l, err := session.New(append(cfg.Options(set), extra...)...)
	if err != nil {
		set.Close()
		return nil, err
	}
	return &Engine{Layer: l, set: set}, nil
}

// Devices lists the devices the engine was given (in service or not).
func (e *Engine) Devices() []uacce.Device { return e.set.Devices }

// Close closes the layer (it drains its queues), then the emulator.
func (e *Engine) Close() error { return errors.Join(e.Layer.Close(), e.set.Close()) }

// Metrics is the document merged into `accelfs stats` ({"engines": ...,
// "fallbacks": ...}).
func (e *Engine) Metrics() any { return e.Layer.Metrics() }

// Compressor is the blockstore side of the engine.
func (e *Engine) Compressor() blockstore.Compressor { return &compressor{e: e} }

// autoPrefs is --algo auto's order of preference among device algorithms.
var autoPrefs = []codec.ID{codec.LZ4, codec.Deflate, codec.Zlib}

// AutoAlgo is what `--algo auto` means for this engine (see the package
// doc): lz4, deflate or zlib as the devices in service list them, lz4 on
// the CPU.
func (e *Engine) AutoAlgo() codec.ID {
	for _, all := range []bool{true, false} {
		for _, a := range autoPrefs {
			n, live := e.Layer.HardwareSupport(a, session.Compress)
			if n > 0 && (!all || n == live) {
				return a
			}
		}
	}
	return codec.LZ4
}

// Expect tells the engine the store's algorithm for new blocks (by name,
// as blockstore.Stats reports it); a device that does not offer it is
// marked idle and the reason logged once (session.Layer.Expect).
func (e *Engine) Expect(algo string) {
	if id, err := codec.Parse(algo); err == nil {
		e.Layer.Expect(id)
	}
}

// compressor adapts the session layer to blockstore.Compressor (blockstore
// must not import accel/session).
type compressor struct{ e *Engine }

// EngineOf returns the engine behind a Compressor built by this package, nil
// for any other.
func EngineOf(c blockstore.Compressor) *Engine {
	if sc, ok := c.(*compressor); ok {
		return sc.e
	}
	return nil
}

// Run maps the jobs to session jobs, runs them as one batch (submit all,
// park, wake on the last completion) and copies the results back.
func (s *compressor) Run(ctx context.Context, jobs []*blockstore.Job) error {
	sj := make([]session.Job, len(jobs))
	ptrs := make([]*session.Job, len(jobs))
	for i, j := range jobs {
		sj[i] = session.Job{Decompress: j.Decompress, Algo: j.Algo, Level: j.Level,
			Src: j.Src, Dst: j.Dst, RawLen: j.RawLen}
		ptrs[i] = &sj[i]
	}
	err := s.e.Layer.Run(ctx, ptrs)
	for i, j := range jobs {
		j.Out, j.Err = sj[i].Out, sj[i].Err
	}
	return err
}

type closer func() error

func (f closer) Close() error { return f() }
