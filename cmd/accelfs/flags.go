package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// Shared flag builders. Flags become option structs only here in cmd/.

func algoFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "algo",
		Usage: "compression for new blocks: lz4, zstd, deflate, zlib, gzip, none, or auto (what the accelerator lists: lz4, else deflate, else zlib; lz4 on the CPU) (default: the store's, lz4 for a new store)",
		Action: func(c *cli.Context, v string) error {
			if v == "auto" {
				return nil
			}
			if _, err := codec.Parse(v); err != nil {
				return usagef("--algo %q: %v", v, err)
			}
			return nil
		},
	}
}

func levelFlag() cli.Flag {
	return &cli.IntFlag{
		Name:  "level",
		Usage: "compression level for new blocks (0 = the algorithm's default)",
	}
}

func blockSizeFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "block-size",
		Usage: "block size of a NEW store: a power of two from 4K to 1M, e.g. 64K (default 128K; an existing store keeps its own)",
		Action: func(c *cli.Context, v string) error {
			_, err := parseBlockSize(v)
			return err
		},
	}
}

func commitIntervalFlag() cli.Flag {
	return &cli.DurationFlag{
		Name:  "commit-interval",
		Usage: "how often dirty data is written and committed in the background",
		Value: 5 * time.Second,
	}
}

// splitSize reads a size such as 4096, 4K, 4k, 64KiB or 1M: the number
// and the multiplier of its suffix (1 without one).
func splitSize(s string) (n, mult int, err error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult = 1
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	}
	n, err = strconv.Atoi(t)
	return n, mult, err
}

// parseBlockSize accepts 4096, 4K, 4k, 4KiB, 1M.
func parseBlockSize(s string) (int, error) {
	n, mult, err := splitSize(s)
	if err != nil || n <= 0 {
		return 0, usagef("--block-size %q: not a size", s)
	}
	n *= mult
	if n < 4<<10 || n > 1<<20 || n&(n-1) != 0 {
		return 0, usagef("--block-size %q: must be a power of two from 4K to 1M", s)
	}
	return n, nil
}

// storeOptions builds blockstore options from the store flags.
func storeOptions(c *cli.Context) (*blockstore.Options, error) {
	o := &blockstore.Options{CommitInterval: c.Duration("commit-interval")}
	if c.IsSet("block-size") {
		bs, err := parseBlockSize(c.String("block-size"))
		if err != nil {
			return nil, err
		}
		o.BlockSize = bs
	}
	if c.IsSet("algo") && c.String("algo") == "auto" {
		// Chosen once the engine is known (serve: autoAlgo); --level is
		// checked against that algorithm by the store.
		o.Level = c.Int("level")
		return o, nil
	}
	if c.IsSet("algo") {
		id, err := codec.Parse(c.String("algo"))
		if err != nil {
			return nil, usagef("--algo: %v", err)
		}
		o.Algo, o.AlgoSet = id, true
	}
	if c.IsSet("level") {
		if !c.IsSet("algo") {
			return nil, usagef("--level needs --algo")
		}
		lvl, err := codec.NormalizeLevel(o.Algo, c.Int("level"))
		if err != nil {
			return nil, usagef("--level %d for %s: %v", c.Int("level"), o.Algo, err)
		}
		o.Level = lvl
	}
	return o, nil
}

// humanBytes formats n as 1.5 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
