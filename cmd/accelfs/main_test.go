package main

import (
	"errors"
	"io"
	"testing"
)

func TestParseBlockSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4K": 4096, "64k": 64 << 10, "128KiB": 128 << 10, "1M": 1 << 20, "1MB": 1 << 20} {
		if got, err := parseBlockSize(in); err != nil || got != want {
			t.Errorf("parseBlockSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3000", "2K", "2M", "-4K", "K", "12x"} {
		if _, err := parseBlockSize(in); err == nil {
			t.Errorf("parseBlockSize(%q) accepted", in)
		}
	}
}

// TestUsageExitCodes: bad invocations exit 2 without touching anything.
func TestUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{
		{"accelfs", "mount", "one"},
		{"accelfs", "mount", "--algo", "bogus", "a", "b"},
		{"accelfs", "mount", "--level", "3", "a", "b"},
		{"accelfs", "mount", "--block-size", "5K", "a", "b"},
		{"accelfs", "mount", "--accel", "nope", "a", "b"},
		{"accelfs", "mount", "--nope", "a", "b"},
		{"accelfs", "umount"},
		{"accelfs", "stats", "a", "b"},
		{"accelfs", "version", "extra"},
		{"accelfs", "no-such-command"},
		{"accelfs"},
	} {
		app := newApp(args)
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		for _, c := range app.Commands {
			c.CustomHelpTemplate = " "
		}
		err := app.Run(args)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
		if code := exitCodeFor(err); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", args, code, exitUsage)
		}
	}
}
