package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad flags, wrong arguments, unknown names
	exitDamaged = 3 // fsck found problems and did not repair them
)

// usageError marks errors that are the caller's (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	err := Main(os.Args)
	os.Exit(exitCode(err))
}

// exitCode reports err on stderr and returns the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "accelfs:", err)
	return exitCodeFor(err)
}

// exitCodeFor classifies err.
func exitCodeFor(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case codeOf(err) != 0:
		return codeOf(err)
	case errors.As(err, &ue), errors.Is(err, blockstore.ErrNotStore):
		return exitUsage
	case errors.Is(err, errDamaged):
		return exitDamaged
	case errors.Is(err, errDataLost):
		return exitDataLost
	}
	return exitFailure
}

// Main runs the accelfs command line (args[0] is the program name).
func Main(args []string) error {
	args, err := normalizeArgs(args, newApp(args).Commands)
	if err != nil {
		return err
	}
	return newApp(args).Run(args)
}

func newApp(args []string) *cli.App {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionLine()) }
	app := &cli.App{
		Name:  "accelfs",
		Usage: "a FUSE filesystem that stores file contents as compressed blocks",
		Description: `accelfs shows at MOUNTPOINT the tree stored in BACKING. Directories, names,
modes, owners, times, symlinks, hardlinks and xattrs live in BACKING as they
are; every regular file's contents are stored block by block, compressed
(lz4, zstd, deflate, zlib, gzip) and checksummed, with an index in
BACKING/.accelfs/.

Examples:
   accelfs mount /srv/store /mnt/data        # mount, returns when ready
   accelfs stats /mnt/data                   # logical vs stored bytes
   accelfs umount /mnt/data
   accelfs fsck /srv/store                   # verify every block (unmounted)`,
		Commands: []*cli.Command{
			mountCommand(args),
			umountCommand(),
			statsCommand(),
			fsckCommand(),
			initCommand(),
			setCommand(),
			getCommand(),
			devicesCommand(),
			benchCommand(),
			versionCommand(),
		},
		Version:         versionString(),
		OnUsageError:    onUsageError,
		ExitErrHandler:  func(*cli.Context, error) {}, // Main's caller picks the exit code
		CommandNotFound: func(c *cli.Context, name string) {},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (see accelfs --help)", c.Args().First())
			}
			cli.ShowAppHelp(c)
			return usagef("no command given")
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
	}
	return app
}

func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	return usageError{hintDuration(err)}
}

// bareDuration matches urfave/cli's message for a duration flag given a
// number without a unit.
var bareDuration = regexp.MustCompile(`^invalid value "([0-9]+(\.[0-9]+)?)" for flag -([a-z-]+)`)

// hintDuration adds "did you mean 5s?" to the parse error of a duration
// flag given a bare number.
func hintDuration(err error) error {
	m := bareDuration.FindStringSubmatch(err.Error())
	if m == nil || !strings.Contains(err.Error(), "duration") && !isDurationFlag(m[3]) {
		return err
	}
	return fmt.Errorf("--%s %s: a duration needs a unit (ms, s, m, h): did you mean %ss?", m[3], m[1], m[1])
}

// isDurationFlag names the duration flags (the error text of urfave/cli
// does not say the flag's type).
func isDurationFlag(name string) bool {
	switch name {
	case "commit-interval", "wait", "time":
		return true
	}
	return false
}

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, n int) error {
	if c.NArg() != n {
		return usagef("%s: want %d argument(s) (%s), got %d; see accelfs %s --help",
			c.Command.Name, n, c.Command.ArgsUsage, c.NArg(), c.Command.Name)
	}
	return nil
}

// absArg is the command's one argument (needArgs), as an absolute path.
func absArg(c *cli.Context) (string, error) {
	if err := needArgs(c, 1); err != nil {
		return "", err
	}
	return filepath.Abs(c.Args().First())
}

// printJSON writes v to w as indented JSON and a newline.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
