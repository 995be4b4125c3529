package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
)

// Exit code 4 (fsck): this run dropped data (repair or rebuild gave up byte
// ranges, every one of them in the report).
const exitDataLost = 4

// storeErr makes the store errors that are the caller's mistake (a
// directory that is not a store, a store that already exists, a bad
// setting) usage errors: exit code 2.
func storeErr(err error) error {
	if errors.Is(err, blockstore.ErrNotStore) || errors.Is(err, blockstore.ErrExists) || errors.Is(err, blockstore.ErrInvalid) {
		return usageError{err}
	}
	return err
}

// backingArg is the command's BACKING argument (absolute) after needArgs.
func backingArg(c *cli.Context, n int) (string, error) {
	if c.NArg() < n {
		return "", needArgs(c, n)
	}
	return absArgAt(c, 0)
}

func absArgAt(c *cli.Context, i int) (string, error) {
	p := c.Args().Get(i)
	if p == "" {
		return "", usagef("%s: empty BACKING argument", c.Command.Name)
	}
	abs, err := filepathAbs(p)
	if err != nil {
		return "", usagef("%s: %v", c.Command.Name, err)
	}
	return abs, nil
}
