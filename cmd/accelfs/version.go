package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print the accelfs version",
		ArgsUsage: " ",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, versionLine())
			return nil
		},
	}
}

// versionString is the accelfs version: the -X main.version stamp, else
// the module version Go recorded for a `go install ...@vX` build, else
// "dev"; plus the VCS revision for a build from a checkout.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return versionFrom(version, bi)
}

// versionFrom is versionString on given build info (tested directly).
func versionFrom(stamp string, bi *debug.BuildInfo) string {
	v := stamp
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && !strings.Contains(v, rev) {
		v += " " + rev + dirty
	}
	return v
}

// versionLine is what `accelfs version` and `accelfs --version` print.
func versionLine() string {
	return fmt.Sprintf("accelfs %s (%s, %s/%s)", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
