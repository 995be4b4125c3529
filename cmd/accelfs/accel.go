package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// This file wires the session layer (accel/session) into the CLI: the
// --accel flags, newCompressor (the blockstore.Compressor adapter), and the
// helpers the devices and bench subcommands share.

// accelFlags are the flags that choose and tune the compression engines
// (mount, bench, devices).
func accelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "accel",
			Value: "auto",
			Usage: "compression engine: auto (uacce devices that do deflate, else CPU), cpu, emu (emulated hisi_zip device) or a device name such as hisi_zip-0",
			Action: func(c *cli.Context, v string) error {
				switch {
				case v == "auto", v == "cpu", v == "emu", deviceName.MatchString(v):
					return nil
				}
				return usagef("--accel %q: want auto, cpu, emu or a device name such as hisi_zip-0", v)
			},
		},
		&cli.IntFlag{
			Name:  "pollers",
			Value: session.DefaultPollers,
			Usage: "poller goroutines (each on an OS thread pinned to its NUMA node) per node for accelerator queues",
			Action: func(c *cli.Context, v int) error {
				if v < 1 || v > 64 {
					return usagef("--pollers %d: want 1..64", v)
				}
				return nil
			},
		},
		&cli.IntFlag{
			Name:  "hw-queues",
			Value: session.DefaultHWCtxsPerRegion,
			Usage: "accelerator queues opened per NUMA node, mode (sync/async) and direction",
			Action: func(c *cli.Context, v int) error {
				if v < 1 || v > 64 {
					return usagef("--hw-queues %d: want 1..64", v)
				}
				return nil
			},
		},
		&cli.StringFlag{
			Name:  "hw-threshold",
			Value: strconv.Itoa(session.DefaultCompressThreshold),
			Usage: "smallest block compressed on the accelerator; smaller ones go to the CPU (measure with `accelfs bench`)",
			Action: func(c *cli.Context, v string) error {
				_, err := parseSize(v)
				return err
			},
		},
		&cli.StringFlag{
			Name:  "hw-threshold-decompress",
			Value: strconv.Itoa(session.DefaultDecompressThreshold),
			Usage: "smallest block (uncompressed size) decompressed on the accelerator; smaller ones go to the CPU",
			Action: func(c *cli.Context, v string) error {
				_, err := parseSize(v)
				return err
			},
		},
		&cli.StringFlag{
			Name:  "emu-model",
			Value: "cpu",
			Usage: "with --accel emu: timing of the emulated device: cpu (as fast as the CPU) or hisi_zip (≈15µs per request, 7 GB/s, uadk-spec §5.1)",
			Action: func(c *cli.Context, v string) error {
				if v != "cpu" && v != "hisi_zip" {
					return usagef("--emu-model %q: want cpu or hisi_zip", v)
				}
				return nil
			},
		},
		&cli.StringFlag{
			Name:   "sysfs-root",
			Value:  uacce.DefaultSysfsRoot,
			Hidden: true,
			Usage:  "where uacce devices are listed (tests)",
		},
	}
}

// deviceName is the shape of a uacce device name: <driver>-<id>.
var deviceName = regexp.MustCompile(`^[a-z][a-z0-9_]*-[0-9]+$`)

// parseSize accepts 0, 4096, 4K, 64KiB, 1M (up to 64M).
func parseSize(s string) (int, error) {
	n, mult, err := splitSize(s)
	if err != nil || n < 0 || n*mult > 64<<20 {
		return 0, usagef("size %q: want a number of bytes such as 4096, 4K or 1M", s)
	}
	return n * mult, nil
}

// engineSet is what --accel selected: the providers and devices of the
// hardware engines (none for cpu) and what to close after the layer.
type engineSet struct {
	prov    uacce.Provider
	devs    []uacce.Device
	closers []io.Closer
}

func (e *engineSet) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i].Close())
	}
	return errors.Join(errs...)
}

// selectEngines resolves --accel: "cpu" (no device), "auto" (every usable
// host device with deflate; none is fine), "emu" (an emulated hisi_zip-0),
// or a device name (must exist and be usable).
func selectEngines(c *cli.Context) (*engineSet, error) {
	v := c.String("accel")
	switch v {
	case "cpu":
		return &engineSet{}, nil
	case "emu":
		return emuEngines(c.String("emu-model"))
	}
	host := &uacce.Host{SysfsRoot: c.String("sysfs-root")}
	devs, err := host.Discover()
	if err != nil && v != "auto" {
		return nil, fmt.Errorf("--accel %s: %w", v, err)
	}
	set := &engineSet{prov: host}
	for _, d := range devs {
		switch {
		case v == "auto" && !d.Isolated && d.HasAlgorithm("deflate"):
			set.devs = append(set.devs, d)
		case d.Name == v:
			if d.Isolated {
				return nil, fmt.Errorf("--accel %s: %w", v, uacce.ErrIsolated)
			}
			set.devs = append(set.devs, d)
		}
	}
	if v != "auto" && len(set.devs) == 0 {
		return nil, usagef("--accel %q: no such device (want auto, cpu, emu or one of the names `accelfs devices` lists)", v)
	}
	return set, nil
}

// layerOptions turns the flags into session options.
func layerOptions(c *cli.Context, set *engineSet, logger *slog.Logger) ([]session.Option, error) {
	th, err := parseSize(c.String("hw-threshold"))
	if err != nil {
		return nil, err
	}
	thd, err := parseSize(c.String("hw-threshold-decompress"))
	if err != nil {
		return nil, err
	}
	opts := []session.Option{
		session.WithPollers(c.Int("pollers")),
		session.WithHWCtxsPerRegion(c.Int("hw-queues")),
		session.WithThreshold(th, thd),
	}
	if logger != nil {
		opts = append(opts, session.WithLogger(logger))
	}
	for _, d := range set.devs {
		opts = append(opts, session.WithDevice(set.prov, d))
	}
	return opts, nil
}

// newLayer builds the session layer --accel asks for; closing the returned
// Closer closes the layer and then the emulator, if any.
func newLayer(c *cli.Context, logger *slog.Logger, extra ...session.Option) (*session.Layer, io.Closer, error) {
	set, err := selectEngines(c)
	if err != nil {
		return nil, nil, err
	}
	opts, err := layerOptions(c, set, logger)
	if err != nil {
		set.Close()
		return nil, nil, err
	}
	l, err := session.New(append(opts, extra...)...)
	if err != nil {
		set.Close()
		return nil, nil, err
	}
	// the layer first (it drains its queues), then the emulator
	return l, closerFunc(func() error { return errors.Join(l.Close(), set.Close()) }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// newCompressor builds the engine for a mount from the flags. It returns
// the compressor, the metrics function whose JSON ({"engines": ...,
// "fallbacks": ...}) is merged into `accelfs stats`, and a Closer the server
// calls after the store is closed.
func newCompressor(c *cli.Context) (blockstore.Compressor, func() any, io.Closer, error) {
	l, closer, err := newLayer(c, slog.Default())
	if err != nil {
		return nil, nil, nil, err
	}
	return &sessionCompressor{l: l}, func() any { return l.Metrics() }, closer, nil
}

// autoAlgo is what `--algo auto` means: deflate when a hardware engine
// (hisi_zip or the emulator) can compress it, lz4 on the CPU.
func autoAlgo(comp blockstore.Compressor) codec.ID {
	if sc, ok := comp.(*sessionCompressor); ok && sc.l.HardwareFor(codec.Deflate, session.Compress) {
		return codec.Deflate
	}
	return codec.LZ4
}

// sessionCompressor adapts the session layer to blockstore.Compressor (cmd
// imports both; accel/session must not import blockstore).
type sessionCompressor struct {
	l *session.Layer
}

var _ blockstore.Compressor = (*sessionCompressor)(nil)

// Run maps the jobs to session jobs, runs them as one batch (submit all,
// park, wake on the last completion) and copies the results back.
func (s *sessionCompressor) Run(ctx context.Context, jobs []*blockstore.Job) error {
	sj := make([]session.Job, len(jobs))
	ptrs := make([]*session.Job, len(jobs))
	for i, j := range jobs {
		sj[i] = session.Job{Decompress: j.Decompress, Algo: j.Algo, Level: j.Level,
			Src: j.Src, Dst: j.Dst, RawLen: j.RawLen}
		ptrs[i] = &sj[i]
	}
	err := s.l.Run(ctx, ptrs)
	for i, j := range jobs {
		j.Out, j.Err = sj[i].Out, sj[i].Err
	}
	return err
}

// emuEngines creates the emulated hisi_zip-0 (its sysfs entry in a private
// temporary directory, removed on Close) for --accel emu.
func emuEngines(model string) (*engineSet, error) {
	root, err := os.MkdirTemp("", "accelfs-emu-")
	if err != nil {
		return nil, err
	}
	o := emu.Options{SysfsRoot: root}
	if model == "hisi_zip" {
		o.Model = emu.HisiZipModel()
	}
	d, err := emu.New(o)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	set := &engineSet{prov: d, closers: []io.Closer{closerFunc(func() error { return os.RemoveAll(root) }), d}}
	devs, err := d.Discover()
	if err != nil || len(devs) != 1 {
		set.Close()
		return nil, fmt.Errorf("emulated device not discovered (%d devices): %w", len(devs), err)
	}
	set.devs = devs
	return set, nil
}
