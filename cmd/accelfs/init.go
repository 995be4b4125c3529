package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

var filepathAbs = filepath.Abs

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a new store in an empty directory",
		ArgsUsage: "BACKING",
		Description: `Creates a store in BACKING, which must exist and be empty (lost+found is
allowed). The block size is fixed for the life of the store; the algorithm
and level are the store's settings (accelfs set changes them later, a
mount's --algo/--level override them for that mount). An existing store is
left alone (exit 2), as is a directory that holds other files (exit 2).

Examples:
   accelfs init /srv/store
   accelfs init --algo zstd --level 3 --block-size 64K /srv/store`,
		Flags: []cli.Flag{algoFlag(), levelFlag(), blockSizeFlag()},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			backing, err := backingArg(c, 1)
			if err != nil {
				return err
			}
			o, err := initOptions(c)
			if err != nil {
				return err
			}
			if fi, err := os.Stat(backing); err != nil {
				return usagef("init: %v", err)
			} else if !fi.IsDir() {
				return usagef("init: %s is not a directory", backing)
			}
			if err := blockstore.Init(backing, o); err != nil {
				return storeErr(err)
			}
			st, err := blockstore.ReadSettings(backing)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "accelfs: created a store in %s (block size %d, algo %s, level %d)\n",
				backing, st.BlockSize, st.Algo, st.Level)
			return nil
		},
	}
}

// initOptions reads --algo, --level and --block-size for init (--level
// alone applies to the default algorithm, lz4).
func initOptions(c *cli.Context) (*blockstore.Options, error) {
	o := &blockstore.Options{}
	if c.IsSet("block-size") {
		bs, err := parseBlockSize(c.String("block-size"))
		if err != nil {
			return nil, err
		}
		o.BlockSize = bs
	}
	o.Algo, o.AlgoSet = codec.LZ4, true
	if c.IsSet("algo") {
		if c.String("algo") == "auto" {
			return nil, usagef("init: --algo auto is chosen per mount; give an algorithm (lz4, zstd, deflate, zlib, gzip, none)")
		}
		id, err := codec.Parse(c.String("algo"))
		if err != nil {
			return nil, usagef("--algo: %v", err)
		}
		o.Algo = id
	}
	lvl, err := codec.NormalizeLevel(o.Algo, c.Int("level"))
	if err != nil {
		return nil, usagef("--level %d for %s: %v", c.Int("level"), o.Algo, err)
	}
	o.Level = lvl
	return o, nil
}
