package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLILogJSON (issue 8, logs): --log-format json makes every line of
// the server's log a JSON record, with mount and exit lines that carry
// their timings.
func TestCLILogJSON(t *testing.T) {
	requireFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	logf := filepath.Join(t.TempDir(), "server.log")
	cliMount(t, "", mnt, "--log-format=json", "--log="+logf, backing, mnt)
	writeFile(t, filepath.Join(mnt, "f"), text(64<<10, 'j'))
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: %s", out)
	}
	seen := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(logf)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON record: %q", l)
			continue
		}
		seen[fmt.Sprint(rec["msg"])] = rec
	}
	for msg, key := range map[string]string{"mounted": "took", "server exits": "uptime", "store closed (final commit done)": "took"} {
		if rec, ok := seen[msg]; !ok || rec[key] == nil {
			t.Errorf("no %q record with %q in the log:\n%s", msg, key, readFile(logf))
		}
	}
}

// TestCLILogCap: the log file cannot grow without bound: past
// --log-max-size it is rotated to LOG.1 (one old file kept).
func TestCLILogCap(t *testing.T) {
	requireFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	logf := filepath.Join(t.TempDir(), "server.log")
	const max = 64 << 10
	cliMount(t, "", mnt, "--debug", "--log-max-size=64K", "--log="+logf, backing, mnt)
	for i := 0; i < 300; i++ { // --debug logs every FUSE request: ~ 1 MB of log
		writeFile(t, filepath.Join(mnt, fmt.Sprintf("f%d", i)), []byte("x"))
	}
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: %s", out)
	}
	for _, p := range []string{logf, logf + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		if fi.Size() > max {
			t.Errorf("%s: %d bytes, cap %d", p, fi.Size(), max)
		}
	}
	if _, err := os.Stat(logf + ".2"); err == nil {
		t.Error("more than one old log file kept")
	}
}

// TestCLILogMissingDir (issue 9 item 12): --log in a directory that does
// not exist is refused (exit 2) and the directory is not created.
func TestCLILogMissingDir(t *testing.T) {
	requireFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	missing := filepath.Join(t.TempDir(), "no", "such")
	detachAtCleanup(t, mnt)
	out, code := cliRun(t, "", "mount", "--accel="+accelMode(), "--log="+filepath.Join(missing, "x.log"), backing, mnt)
	wantCode(t, "--log in a missing directory", out, code, 2, missing)
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("%s was created", missing)
	}
	if mounted(mnt) {
		t.Error("mounted anyway")
	}
}
