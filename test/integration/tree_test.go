package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	accelfs "github.com/accelfs/accelfs/fs"
)

// srcSubset is the real tree the tests extract: parts of the Go
// toolchain's own sources (text, testdata binaries, symlinks).
func srcSubset(t *testing.T) (root string, dirs []string) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("no go toolchain to find a source tree: %v", err)
	}
	root = filepath.Join(strings.TrimSpace(string(out)), "src")
	dirs = []string{"net", "crypto", "go", "encoding"}
	if os.Getenv("ACCELFS_TEST_KEEP_TREE") == "0" {
		dirs = []string{"go"}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Skipf("no Go source tree to extract: %v", err)
		}
	}
	return root, dirs
}

// extract pipes `tar -c` of dirs under root into `tar -x` under dst.
func extract(t *testing.T, root string, dirs []string, dst string) {
	t.Helper()
	args := append([]string{"-C", root, "-cf", "-"}, dirs...)
	c := exec.Command("tar", args...)
	x := exec.Command("tar", "-C", dst, "-xf", "-")
	pipe, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	x.Stdin = pipe
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("tar -c: %v", err)
	}
}

func diffTree(t *testing.T, root string, dirs []string, dst string) {
	t.Helper()
	for _, d := range dirs {
		run(t, "diff", "-r", "--no-dereference", filepath.Join(root, d), filepath.Join(dst, d))
	}
}

func readStatsDoc(t *testing.T, dir string) map[string]any {
	t.Helper()
	buf := make([]byte, 1<<20)
	n, err := unix.Getxattr(dir, accelfs.StatsXattr, buf)
	if err != nil {
		t.Fatalf("getxattr %s: %v", accelfs.StatsXattr, err)
	}
	doc := map[string]any{}
	if err := json.Unmarshal(buf[:n], &doc); err != nil {
		t.Fatalf("stats JSON: %v\n%s", err, buf[:n])
	}
	return doc
}

// TestSourceTree extracts a real source tree, compares it with the
// original, remounts and compares again, and checks that the stats show
// it compressed.
func TestSourceTree(t *testing.T) {
	root, dirs := srcSubset(t)
	m := newMount(t, nil)
	extract(t, root, dirs, m.Dir)
	diffTree(t, root, dirs, m.Dir)
	m.unmount(t)

	m2 := remount(t, m.Backing, nil)
	diffTree(t, root, dirs, m2.Dir)
	sameMtimes(t, root, dirs, m2.Dir)
	doc := readStatsDoc(t, m2.Dir)
	for _, k := range []string{"logical_bytes", "stored_bytes", "ratio", "blocks", "raw_blocks", "zero_blocks"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("stats document lacks %q: %v", k, doc)
		}
	}
	logical, _ := doc["logical_bytes"].(float64)
	ratio, _ := doc["ratio"].(float64)
	if logical < 1<<20 || ratio <= 0 || ratio >= 0.8 {
		t.Errorf("stats after extracting source code: logical %v ratio %v; want > 1 MiB and a ratio in (0, 0.8)", logical, ratio)
	}
	t.Logf("source tree: logical %.0f bytes, ratio %.3f", logical, ratio)
}

// sameMtimes checks that every regular file kept the mtime tar gave it
// (whole seconds, what the tar format carries), after the store's commits
// and a remount.
func sameMtimes(t *testing.T, root string, dirs []string, dst string) {
	t.Helper()
	bad := 0
	for _, d := range dirs {
		filepath.WalkDir(filepath.Join(root, d), func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			want, err1 := os.Lstat(p)
			got, err2 := os.Lstat(filepath.Join(dst, rel))
			if err1 != nil || err2 != nil {
				t.Errorf("stat %s: %v %v", rel, err1, err2)
				return nil
			}
			if got.ModTime().Unix() != want.ModTime().Unix() {
				if bad++; bad <= 5 {
					t.Errorf("%s: mtime %v, want %v", rel, got.ModTime(), want.ModTime())
				}
			}
			return nil
		})
	}
	if bad > 5 {
		t.Errorf("... %d files with a wrong mtime in all", bad)
	}
}
