package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
)

func setCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "change a store's settings (the compression of new blocks)",
		ArgsUsage: "BACKING KEY=VALUE...",
		Description: `Changes the settings kept in BACKING/.accelfs/format (written atomically).
Keys: algo (lz4, zstd, deflate, zlib, gzip, none) and level (0 = the
algorithm's default; changing algo without level resets it to 0).
block_size is fixed when the store is created. The store must not be
mounted (exit 1: a running server would not see the change; use the mount's
--algo/--level for one mount). Existing blocks keep their compression; new
blocks use the new settings from the next mount on.

Examples:
   accelfs set /srv/store algo=zstd level=3
   accelfs set /srv/store level=9`,
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("set: want BACKING and at least one KEY=VALUE, got %d argument(s); see accelfs set --help", c.NArg())
			}
			backing, err := backingArg(c, 2)
			if err != nil {
				return err
			}
			old, cur, err := blockstore.UpdateSettings(backing, c.Args().Slice()[1:], 0)
			if err != nil {
				if isLocked(err) {
					return fmt.Errorf("set: %w; unmount it first (or use --algo/--level for one mount)", err)
				}
				return storeErr(err)
			}
			for _, k := range blockstore.SettingKeys {
				a, _ := old.Get(k)
				b, _ := cur.Get(k)
				if a != b {
					fmt.Fprintf(c.App.Writer, "%s: %s -> %s\n", k, a, b)
				}
			}
			return nil
		},
	}
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a store's settings",
		ArgsUsage: "BACKING [KEY]",
		Description: `Prints the settings kept in BACKING/.accelfs/format as key=value lines, or
the value of one KEY (algo, level, block_size). Works while mounted.

Examples:
   accelfs get /srv/store
   accelfs get /srv/store algo`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the settings as JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("get: want BACKING [KEY], got %d argument(s); see accelfs get --help", c.NArg())
			}
			backing, err := backingArg(c, 1)
			if err != nil {
				return err
			}
			st, err := blockstore.ReadSettings(backing)
			if err != nil {
				return storeErr(err)
			}
			if key := c.Args().Get(1); key != "" {
				v, err := st.Get(key)
				if err != nil {
					return storeErr(err)
				}
				fmt.Fprintln(c.App.Writer, v)
				return nil
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, st)
			}
			var b strings.Builder
			for _, k := range blockstore.SettingKeys {
				v, _ := st.Get(k)
				fmt.Fprintf(&b, "%s=%s\n", k, v)
			}
			fmt.Fprint(c.App.Writer, b.String())
			return nil
		},
	}
}
