package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
)

// errDamaged: fsck found problems it did not repair (exit code exitDamaged).
var errDamaged = errors.New("the store has problems (run with --repair to drop the damaged blocks, or --rebuild)")

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "verify (and optionally repair or rebuild) an unmounted store",
		ArgsUsage: "BACKING",
		Description: `Checks every record the index references: it must exist, parse, and match its
checksums. --repair drops index entries that point at bad records and reports
the file ranges lost (they read as zeros afterwards) and cleans crash
leftovers. --rebuild rebuilds the whole index from the backing files. The
store must not be mounted. Exit code 0: clean (or repaired), 3: problems
found and not repaired, 1: fsck itself failed.

Examples:
   accelfs fsck /srv/store
   accelfs fsck --repair /srv/store
   accelfs fsck --rebuild --json /srv/store`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "repair", Usage: "drop index entries that point at bad records, clean crash leftovers"},
			&cli.BoolFlag{Name: "rebuild", Usage: "rebuild the index from the backing files"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			if c.Bool("repair") && c.Bool("rebuild") {
				return usagef("fsck: --repair and --rebuild are exclusive")
			}
			backing, err := filepath.Abs(c.Args().First())
			if err != nil {
				return err
			}
			repairing := c.Bool("repair") || c.Bool("rebuild")
			rep, err := runFsck(backing, c.Bool("repair"), c.Bool("rebuild"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, string(b))
			} else {
				fmt.Fprintln(c.App.Writer, rep.String())
			}
			if !rep.Clean() && !repairing {
				return errDamaged
			}
			return nil
		},
	}
}

// runFsck checks the store; --rebuild also works when the index itself is
// unreadable (RebuildIndex keeps the old one aside).
func runFsck(backing string, repair, rebuild bool) (*blockstore.FsckReport, error) {
	opts := &blockstore.Options{CommitInterval: -1}
	if rebuild {
		return blockstore.RebuildIndex(backing, opts)
	}
	store, err := blockstore.Open(backing, opts)
	if err != nil {
		return nil, err
	}
	rep, err := store.Fsck(blockstore.FsckOptions{Repair: repair})
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return rep, err
}
