package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
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
		Usage: "how often dirty data is written and committed in the background: 0 (off: only on fsync, memory pressure and unmount) or at least 100ms",
		Value: 5 * time.Second,
		Action: func(c *cli.Context, d time.Duration) error {
			return checkCommitInterval(d)
		},
	}
}

// splitSize reads a size such as 4096, 4K, 4k, 64KiB, 1M or 0.5M (parsed
// by go-humanize): the number of bytes and a multiplier of 1 (kept for the
// callers that scale by it). K, M and G are binary (1K = 1024), as block
// sizes always are; fractions are allowed when the result is whole.
func splitSize(s string) (n, mult int, err error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	num := strings.TrimRight(t, "KMGTPEIB")
	unit := strings.TrimSuffix(strings.TrimSuffix(t[len(num):], "B"), "I")
	if num == "" || len(unit) > 1 || strings.HasPrefix(num, "-") || strings.HasPrefix(num, "+") {
		return 0, 0, fmt.Errorf("%q is not a size", s)
	}
	if unit != "" {
		unit += "iB"
	}
	v, err := humanize.ParseBytes(num + unit)
	if err != nil || v > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%q is not a size (or too large)", s)
	}
	return int(v), 1, nil
}

// Block size bounds (the store's format allows these).
const (
	minBlockSize = 4 << 10
	maxBlockSize = 1 << 20
)

// parseBlockSize accepts 4096, 4K, 4k, 4KiB, 1M, 0.5M: a power of two
// from 4K to 1M.
func parseBlockSize(s string) (int, error) {
	const allowed = "a power of two from 4K to 1M (4K 8K 16K 32K 64K 128K 256K 512K 1M)"
	n, _, err := splitSize(s)
	if err != nil {
		return 0, usagef("--block-size %q: not a size; want %s", s, allowed)
	}
	if n < minBlockSize || n > maxBlockSize || n&(n-1) != 0 {
		return 0, usagef("--block-size %q (%s): want %s", s, humanize.IBytes(uint64(n)), allowed)
	}
	return n, nil
}

// minCommitInterval is the shortest background commit interval: shorter
// ones keep an idle server committing (issue 9 item 12).
const minCommitInterval = 100 * time.Millisecond

// checkCommitInterval allows 0 (background commits off) or >= 100ms.
func checkCommitInterval(d time.Duration) error {
	switch {
	case d < 0:
		return usagef("--commit-interval %v: negative; use 0 to switch background commits off, or a duration of at least %v", d, minCommitInterval)
	case d > 0 && d < minCommitInterval:
		return usagef("--commit-interval %v: too short; want 0 (off) or at least %v", d, minCommitInterval)
	}
	return nil
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
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}
