package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// errDamaged: fsck found problems that remain (exit code exitDamaged).
var errDamaged = errors.New("the store has problems that were not repaired")

// errDataLost: this fsck run dropped data (exit code exitDataLost).
var errDataLost = errors.New("this run dropped data: every byte range it reports as lost (DATA LOST, \"lost\": true) reads as zeros or as an older version now")

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "verify (and optionally repair or rebuild) an unmounted store",
		ArgsUsage: "BACKING",
		Description: `Checks every record the index references: it must exist, parse, and match its
checksums; backing files are scanned for records the index does not know.
Nothing is changed without --repair or --rebuild, and nothing is created: a
directory that is not a store is an error (exit 2).

--repair rewrites a damaged file header from its records, adopts records of
files the index does not know (as a mount would), drops index entries that
point at bad records (THAT DATA IS LOST: each range is reported) and
reclaims crash leftovers. --rebuild moves the index aside and builds a new
one from the backing files; records that fail verification and have no
newer version are reported as lost. The store must not be mounted. On a
read-only backing fsck verifies without writing.

Exit codes: 0 the store is clean and this run lost nothing; 3 problems
remain (not repaired); 4 this run dropped data (every range is listed);
1 fsck itself failed; 2 usage (not a store, bad arguments).

Examples:
   accelfs fsck /srv/store
   accelfs fsck --repair /srv/store
   accelfs fsck --rebuild --json /srv/store`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "repair", Usage: "fix what can be fixed; drops entries of bad records (reported data loss)"},
			&cli.BoolFlag{Name: "rebuild", Usage: "move the index aside and rebuild it from the backing files"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			if c.Bool("repair") && c.Bool("rebuild") {
				return usagef("fsck: --repair and --rebuild are exclusive")
			}
			backing, err := backingArg(c, 1)
			if err != nil {
				return err
			}
			bar := newFsckBar(c.App.ErrWriter)
			rep, err := runFsck(backing, c.Bool("repair"), c.Bool("rebuild"), bar.update)
			bar.finish()
			if err != nil {
				return storeErr(err)
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(c.App.Writer, rep.String())
				if rep.OldIndex != "" {
					fmt.Fprintf(c.App.Writer, "the old index was moved to %s\n", rep.OldIndex)
				}
			}
			return fsckVerdict(rep, c.Bool("repair") || c.Bool("rebuild"))
		},
	}
}

// fsckVerdict is the error (and so the exit code) a report deserves, with
// a hint that never presents a lossy option as harmless.
func fsckVerdict(rep *blockstore.FsckReport, wrote bool) error {
	switch {
	case rep.Lost():
		if n := rep.Unrepaired(); n > 0 {
			return fmt.Errorf("%w; %d problems remain", errDataLost, n)
		}
		return errDataLost
	case rep.Unrepaired() > 0 && wrote:
		return fmt.Errorf("%w (%d remain; see the report)", errDamaged, rep.Unrepaired())
	case rep.Unrepaired() > 0:
		return fmt.Errorf("%w. Copy what you can first (the mount serves every intact block). "+
			"`accelfs fsck --repair` fixes headers and adopts unindexed records without loss, but DROPS the blocks "+
			"reported corrupt (those ranges then read as zeros); `--rebuild` replaces the index from the backing files", errDamaged)
	}
	return nil
}

// runFsck checks the store (never creating one). --rebuild also works when
// the index itself is damaged (RebuildIndex moves it aside). A verify of a
// read-only backing opens the store read-only.
func runFsck(backing string, repair, rebuild bool, progress func(blockstore.FsckProgress)) (*blockstore.FsckReport, error) {
	opts := &blockstore.Options{CommitInterval: -1, NoCreate: true, RebuildProgress: progress, Logger: quietLogger()}
	if rebuild {
		return blockstore.RebuildIndex(backing, opts)
	}
	store, err := blockstore.Open(backing, opts)
	if errors.Is(err, unix.EROFS) {
		if repair {
			return nil, fmt.Errorf("%w: the backing filesystem is read-only; --repair needs it writable (plain fsck verifies read-only)", err)
		}
		opts.ReadOnly = true
		store, err = blockstore.Open(backing, opts)
	}
	if err != nil {
		return nil, err
	}
	rep, err := store.Fsck(blockstore.FsckOptions{Repair: repair, Progress: progress})
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return rep, err
}

// isLocked reports a store in use by another process (mounted).
func isLocked(err error) bool { return errors.Is(err, blockstore.ErrLocked) }

// isTerminal reports whether w is a terminal (the progress bar is shown
// only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
