package main

import (
	"errors"
	"io"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// runArgs runs the app on args with output discarded.
func runArgs(args ...string) error {
	app := newApp(args)
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	for _, c := range app.Commands {
		c.CustomHelpTemplate = " "
	}
	return app.Run(args)
}

// TestFlagMessages: the flag mistakes of issue 8 defect 9 get a usage
// error whose message says what is allowed.
func TestFlagMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--commit-interval", "5"}, "did you mean 5s?"},
		{[]string{"--commit-interval", "-1s"}, "negative"},
		{[]string{"--commit-interval", "1ns"}, "at least 100ms"},
		{[]string{"--commit-interval", "99ms"}, "at least 100ms"},
		{[]string{"--block-size", "1G"}, "power of two from 4K to 1M"},
		{[]string{"--block-size", "0.5K"}, "power of two from 4K to 1M"},
		{[]string{"--block-size", "lots"}, "not a size"},
	} {
		args := append(append([]string{"accelfs", "mount"}, tc.args...), "/nonexistent-a", "/nonexistent-b")
		err := runArgs(args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v; want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestCheckCommitInterval(t *testing.T) {
	for d, ok := range map[time.Duration]bool{0: true, 100 * time.Millisecond: true, 5 * time.Second: true,
		-time.Second: false, time.Nanosecond: false, 99 * time.Millisecond: false} {
		if err := checkCommitInterval(d); (err == nil) != ok {
			t.Errorf("checkCommitInterval(%v) = %v, want ok=%v", d, err, ok)
		}
	}
}

func TestParseBlockSizeFractions(t *testing.T) {
	for in, want := range map[string]int{"0.5M": 512 << 10, "0.25m": 256 << 10, "8 KiB": 8 << 10} {
		if got, err := parseBlockSize(in); err != nil || got != want {
			t.Errorf("parseBlockSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1G", "0.5K", "+4K", "4KK", "99999999999999999999999K", "1E"} {
		if _, err := parseBlockSize(in); err == nil {
			t.Errorf("parseBlockSize(%q) accepted", in)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB", -2048: "-2.0 KiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestVersionFrom: a `go install ...@v1.2.3` build reports v1.2.3, a
// source build "dev" plus its revision.
func TestVersionFrom(t *testing.T) {
	inst := &debug.BuildInfo{Main: debug.Module{Path: "github.com/accelfs/accelfs", Version: "v1.2.3"}}
	if got := versionFrom("dev", inst); got != "v1.2.3" {
		t.Errorf("installed build: %q", got)
	}
	src := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	if got := versionFrom("dev", src); got != "dev 0123456789ab+dirty" {
		t.Errorf("source build: %q", got)
	}
	if got := versionFrom("v2.0.0", inst); got != "v2.0.0" {
		t.Errorf("stamped build: %q", got)
	}
}

func TestVersionFlag(t *testing.T) {
	if err := runArgs("accelfs", "--version"); err != nil {
		t.Errorf("--version: %v", err)
	}
}
