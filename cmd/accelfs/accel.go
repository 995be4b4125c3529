package main

import (
	"io"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
)

// This file is the seam for the session layer (stream D replaces its
// body): the --accel flags and newCompressor.

// accelFlags are the mount flags that choose the compression engine.
func accelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "accel",
			Value: "auto",
			Usage: "compression engine: auto (accelerator devices if any, else CPU) or cpu",
			Action: func(c *cli.Context, v string) error {
				switch v {
				case "auto", "cpu":
					return nil
				}
				return usagef("--accel %q: want auto or cpu", v)
			},
		},
	}
}

// newCompressor builds the engine for a mount from the flags. It returns
// the compressor, an optional metrics function whose JSON object is merged
// into `accelfs stats` (keys "engines", "fallbacks"), and a Closer the
// server calls after the store is closed.
func newCompressor(c *cli.Context) (blockstore.Compressor, func() any, io.Closer, error) {
	switch v := c.String("accel"); v {
	case "auto", "cpu":
		// No session layer yet: auto finds no device and uses the CPU.
		return blockstore.NewCPUCompressor(runtime.GOMAXPROCS(0)), nil, nopCloser{}, nil
	default:
		return nil, nil, nil, usagef("--accel %q: want auto or cpu", v)
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
