package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIFlagMessages (issue 8 defect 9, issue 9 item 12): flag mistakes
// exit 2 with a message that says what is allowed, before anything is
// created; --version works.
func TestCLIFlagMessages(t *testing.T) {
	requireFUSE(t)
	for _, tc := range []struct {
		flags []string
		says  string
	}{
		{[]string{"--commit-interval", "5"}, "did you mean 5s?"},
		{[]string{"--commit-interval", "-1s"}, "negative"},
		{[]string{"--commit-interval", "1ns"}, "at least 100ms"},
		{[]string{"--block-size", "1G"}, "power of two from 4K to 1M"},
		{[]string{"--block-size", "0.5K"}, "power of two from 4K to 1M"},
		{[]string{"--log-format", "xml"}, "text or json"},
		{[]string{"--log-level", "chatty"}, "debug, info, warn or error"},
	} {
		backing, mnt := t.TempDir(), t.TempDir()
		detachAtCleanup(t, mnt)
		args := append(append([]string{"mount", "--accel=" + accelMode()}, tc.flags...), backing, mnt)
		out, code := cliRun(t, "", args...)
		wantCode(t, strings.Join(tc.flags, " "), out, code, 2, tc.says)
		if _, err := os.Stat(filepath.Join(backing, ".accelfs")); err == nil {
			t.Errorf("%v: a store was created", tc.flags)
		}
	}
	// 0.5M is a valid block size; 0 switches background commits off.
	backing, mnt := t.TempDir(), t.TempDir()
	cliMount(t, "", mnt, "--block-size=0.5M", "--commit-interval=0", backing, mnt)
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: %s", out)
	}
	out, code := cliRun(t, "", "--version")
	wantCode(t, "--version", out, code, 0, "accelfs ")
}
