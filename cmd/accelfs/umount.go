package main

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount an accelfs mount",
		ArgsUsage: "MOUNTPOINT",
		Description: `Unmounts MOUNTPOINT. The server then writes and commits the remaining dirty
data and exits. Fails with "device or resource busy" while files are open,
unless --lazy is given (the mount disappears now, the server exits when the
last open file is closed).

Examples:
   accelfs umount /mnt/data
   accelfs umount --lazy /mnt/data`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"z"}, Usage: "detach now even if files are open"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			mnt, err := filepath.Abs(c.Args().First())
			if err != nil {
				return err
			}
			return unmount(mnt, c.Bool("lazy"))
		},
	}
}

// unmount uses umount(2) as root and fusermount otherwise.
func unmount(mnt string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(mnt, flags)
	if err == nil {
		return nil
	}
	if err != unix.EPERM {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	args := []string{"-u", mnt}
	if lazy {
		args = []string{"-u", "-z", mnt}
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if p, lerr := exec.LookPath(bin); lerr == nil {
			out, err := exec.Command(p, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s %v: %w: %s", bin, args, err, out)
			}
			return nil
		}
	}
	return fmt.Errorf("umount %s: %w (and no fusermount found)", mnt, err)
}
