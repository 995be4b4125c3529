package main

import (
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
	"github.com/accelfs/accelfs/engine"
)

// This file turns the --accel flags into the engine package's Config
// (engine/ does the wiring; the integration tests use it too), and holds the
// helpers the mount, devices and bench subcommands share.

// accelFlags are the flags that choose and tune the compression engines
// (mount, bench, devices).
func accelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "accel",
			Value: "auto",
			Usage: "compression engine: auto (uacce devices offering deflate, zlib, gzip or lz4, else CPU), cpu, emu (emulated hisi_zip device) or a device name such as hisi_zip-0",
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
			Name:  "emu-profile",
			Value: emu.DefaultProfile,
			Usage: "with --accel emu: the device generation emulated: " + profileList(),
			Action: func(c *cli.Context, v string) error {
				if emu.ProfileAbout(v) == "" {
					return usagef("--emu-profile %q: want one of %s", v, strings.Join(emu.Profiles(), ", "))
				}
				return nil
			},
		},
		&cli.BoolFlag{
			Name:  "verify-compression",
			Usage: "decode every block an accelerator compressed on the CPU before storing it; a mismatch is redone on the CPU and counted (fallback bad_output)",
		},
		&cli.BoolFlag{
			Name:   "sync-mode",
			Value:  true,
			Hidden: true,
			Usage:  "single-block requests use sync ctxs (poll while short, park when long); --sync-mode=false sends them async (measurements)",
		},
		&cli.StringFlag{
			Name:   "sysfs-root",
			Value:  uacce.DefaultSysfsRoot,
			Hidden: true,
			Usage:  "where uacce devices are listed (tests)",
		},
	}
}

func profileList() string {
	var b strings.Builder
	for i, p := range emu.Profiles() {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p + " = " + emu.ProfileAbout(p))
	}
	return b.String()
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

// engineConfig turns the flags into the engine package's Config.
func engineConfig(c *cli.Context, logger *slog.Logger) (engine.Config, error) {
	th, err := parseSize(c.String("hw-threshold"))
	if err != nil {
		return engine.Config{}, err
	}
	thd, err := parseSize(c.String("hw-threshold-decompress"))
	if err != nil {
		return engine.Config{}, err
	}
	return engine.Config{
		Accel: c.String("accel"), EmuProfile: c.String("emu-profile"), EmuModel: c.String("emu-model"),
		SysfsRoot: c.String("sysfs-root"), Pollers: c.Int("pollers"), HWQueues: c.Int("hw-queues"),
		CompressThreshold: &th, DecompressThreshold: &thd,
		VerifyCompression: c.Bool("verify-compression"), AsyncOnly: !c.Bool("sync-mode"), Logger: logger,
	}, nil
}

// engineErr turns the engine package's user mistakes into usage errors.
func engineErr(err error) error {
	if errors.Is(err, engine.ErrUsage) {
		return usagef("%v", err)
	}
	return err
}

// selectEngines resolves --accel to devices (engine.Select).
func selectEngines(c *cli.Context) (*engine.Set, error) {
	cfg, err := engineConfig(c, nil)
	if err != nil {
		return nil, err
	}
	set, err := engine.Select(cfg)
	return set, engineErr(err)
}

// newEngine builds the engine --accel asks for (engine.New).
func newEngine(c *cli.Context, logger *slog.Logger, extra ...session.Option) (*engine.Engine, error) {
	cfg, err := engineConfig(c, logger)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(cfg, extra...)
	return e, engineErr(err)
}

// newCompressor builds the engine for a mount from the flags. It returns
// the compressor, the metrics function whose JSON ({"engines": ...,
// "fallbacks": ...}) is merged into `accelfs stats`, and a Closer the server
// calls after the store is closed.
func newCompressor(c *cli.Context) (blockstore.Compressor, func() any, io.Closer, error) {
	e, err := newEngine(c, slog.Default())
	if err != nil {
		return nil, nil, nil, err
	}
	return e.Compressor(), e.Metrics, e, nil
}

// autoAlgo is what `--algo auto` means for comp's engine (engine.AutoAlgo);
// lz4 for any other compressor.
func autoAlgo(comp blockstore.Compressor) codec.ID {
	if e := engine.EngineOf(comp); e != nil {
		return e.AutoAlgo()
	}
	return codec.LZ4
}

// expectAlgo tells comp's engine the store's algorithm for new blocks, so a
// device that does not offer it is reported idle (log line, stats).
func expectAlgo(comp blockstore.Compressor, algo string) {
	if e := engine.EngineOf(comp); e != nil {
		e.Expect(algo)
	}
}
