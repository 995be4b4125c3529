package integration

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCLIStatsNotAMount (issue 8, must have: stats never creates anything
// and exits 2 on a non-store): stats of a plain directory or a missing
// path exits 2; of a backing directory it says where the store is mounted.
func TestCLIStatsNotAMount(t *testing.T) {
	requireFUSE(t)
	plain := t.TempDir()
	out, code := cliRun(t, "", "stats", plain)
	wantCode(t, "stats of a plain directory", out, code, 2, "not an accelfs mount")
	if _, err := os.Stat(filepath.Join(plain, ".accelfs")); err == nil {
		t.Error("stats created a store")
	}
	out, code = cliRun(t, "", "stats", filepath.Join(plain, "missing"))
	wantCode(t, "stats of a missing path", out, code, 2, "no such file")

	backing, mnt := t.TempDir(), t.TempDir()
	cliMount(t, "", mnt, backing, mnt)
	out, code = cliRun(t, "", "stats", backing)
	wantCode(t, "stats of the backing directory", out, code, 2, "accelfs stats "+mnt)
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: %s", out)
	}
}
