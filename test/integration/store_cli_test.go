package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cli runs the accelfs binary and returns its combined output and exit code.
func cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(accelfsBinary(t), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("accelfs %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func wantExit(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, code := cli(t, args...)
	if code != want {
		t.Fatalf("accelfs %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func noMetaDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(dir, ".accelfs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s/.accelfs exists (%v): nothing should have created it", dir, err)
	}
}

// Defect 3 and the init must-have: only init (or mounting an empty
// directory) creates a store; fsck, get and set on a non-store exit 2 and
// create nothing.
func TestStoreInitAndNonStore(t *testing.T) {
	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, dir := range []string{plain, empty} {
		for _, args := range [][]string{{"fsck", dir}, {"fsck", "--repair", dir}, {"fsck", "--rebuild", dir}, {"get", dir}, {"set", dir, "algo=zstd"}} {
			out := wantExit(t, 2, args...)
			if !strings.Contains(out, "accelfs init") && !strings.Contains(out, "not an accelfs store") {
				t.Fatalf("accelfs %v: message does not say what is wrong: %s", args, out)
			}
			noMetaDir(t, dir)
		}
	}
	wantExit(t, 2, "init", plain)
	noMetaDir(t, plain)
	out := wantExit(t, 0, "init", "--algo", "zstd", "--level", "5", "--block-size", "64K", empty)
	if !strings.Contains(out, "created a store") {
		t.Fatalf("init output: %s", out)
	}
	wantExit(t, 2, "init", empty) // a store exists: nothing re-initialised
	if got := wantExit(t, 0, "get", empty); got != "algo=zstd\nlevel=5\nblock_size=65536\n" {
		t.Fatalf("get after init: %q", got)
	}
	wantExit(t, 0, "fsck", empty)
}

// storeWithFile mounts a new store in process, writes name, unmounts.
func storeWithFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	m := newMount(t, nil)
	writeFile(t, m.path(name), data)
	m.unmount(t)
	return m.Backing
}

// damageInline flips a payload byte of the inline record (block 0 of a
// small file lives right after the 64-byte file header).
func damageInline(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	const off = 64 + 64 + 3
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Defect 4: a rebuild or repair that drops a record says so and exits 4;
// verify exits 3 with a hint that does not call the repair harmless; the
// JSON report lists the lost range and uses [] for empty lists.
func TestStoreFsckTellsTheTruth(t *testing.T) {
	data := []byte(strings.Repeat("a small file that fits in the inline slot\n", 40))
	for _, mode := range []string{"--rebuild", "--repair"} {
		backing := storeWithFile(t, "f", data)
		damageInline(t, filepath.Join(backing, "f"))
		out := wantExit(t, 3, "fsck", backing)
		if !strings.Contains(out, "DROPS") {
			t.Fatalf("verify hint presents repair as harmless:\n%s", out)
		}
		cmd := exec.Command(accelfsBinary(t), "fsck", mode, "--json", backing)
		stdout, _ := cmd.Output() // the JSON alone (logs go to stderr)
		if code := cmd.ProcessState.ExitCode(); code != 4 {
			t.Fatalf("fsck %s of a store with a damaged record: exit %d, want 4\n%s", mode, code, stdout)
		}
		var rep struct {
			Problems []struct {
				Path   string `json:"path"`
				Offset int64  `json:"offset"`
				Length int64  `json:"length"`
				Lost   bool   `json:"lost"`
			} `json:"problems"`
			Cleanups []json.RawMessage `json:"cleanups"`
		}
		if err := json.Unmarshal(stdout, &rep); err != nil {
			t.Fatalf("%s --json: %v\n%s", mode, err, stdout)
		}
		if len(rep.Problems) != 1 || !rep.Problems[0].Lost || rep.Problems[0].Path != filepath.Join(backing, "f") ||
			rep.Problems[0].Offset != 0 || rep.Problems[0].Length != int64(len(data)) || rep.Cleanups == nil {
			t.Fatalf("%s report: %+v\n%s", mode, rep, stdout)
		}
		wantExit(t, 0, "fsck", backing) // one pass reached a clean store
	}
}

// Defect 8: settings persist across mounts; flags override for one mount;
// set is refused while mounted; the mount log states what is in effect.
func TestStoreSettingsPersist(t *testing.T) {
	requireFUSE(t)
	backing := t.TempDir()
	wantExit(t, 0, "init", backing)
	if out := wantExit(t, 0, "set", backing, "algo=zstd", "level=3"); !strings.Contains(out, "algo: lz4 -> zstd") {
		t.Fatalf("set output: %q", out)
	}
	wantExit(t, 2, "set", backing, "colour=blue")
	wantExit(t, 2, "set", backing, "level=99")
	wantExit(t, 2, "get", backing, "colour")
	if got := wantExit(t, 0, "get", backing, "level"); got != "3\n" {
		t.Fatalf("get level: %q", got)
	}
	mountStats := func(extra ...string) (string, int) {
		mnt := t.TempDir()
		args := append([]string{"mount", "--accel", "cpu"}, extra...)
		wantExit(t, 0, append(args, backing, mnt)...)
		defer func() {
			if _, code := cli(t, "umount", mnt); code != 0 {
				unix.Unmount(mnt, unix.MNT_DETACH)
			}
		}()
		_, code := cli(t, "set", backing, "algo=lz4")
		var st struct {
			Algo  string `json:"algo"`
			Level int    `json:"level"`
		}
		out := wantExit(t, 0, "stats", "--json", mnt)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("stats --json: %v\n%s", err, out)
		}
		if st.Algo == "zstd" && st.Level != 3 {
			t.Fatalf("level %d, want 3", st.Level)
		}
		return st.Algo, code
	}
	algo, setCode := mountStats()
	if algo != "zstd" {
		t.Fatalf("mount without --algo uses %s, want the store's zstd", algo)
	}
	if setCode != 1 {
		t.Fatalf("set while mounted: exit %d, want 1", setCode)
	}
	if algo, _ := mountStats("--algo", "gzip"); algo != "gzip" {
		t.Fatalf("mount --algo gzip uses %s", algo)
	}
	if got := wantExit(t, 0, "get", backing, "algo"); got != "zstd\n" {
		t.Fatalf("a mount flag was persisted: get algo = %q", got)
	}
	log, _ := os.ReadFile(filepath.Join(backing, ".accelfs", "mount.log"))
	if !strings.Contains(string(log), "algo=gzip") || !strings.Contains(string(log), "compression_from") {
		t.Fatalf("mount.log does not state the settings in effect:\n%s", log)
	}
}

// Issue 9 item 9: on a read-only backing fsck verifies (it does not claim
// index corruption) and `mount -o ro` serves the files.
func TestStoreReadOnlyBacking(t *testing.T) {
	requireFUSE(t)
	data := text(300<<10, 'R')
	backing := storeWithFile(t, "f", data)
	ro := t.TempDir()
	if err := unix.Mount(backing, ro, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	out := wantExit(t, 0, "fsck", ro)
	if strings.Contains(out, "rebuild") || strings.Contains(out, "corrupt") {
		t.Fatalf("fsck of a read-only backing: %s", out)
	}
	out = wantExit(t, 1, "fsck", "--repair", ro)
	if !strings.Contains(out, "read-only") {
		t.Fatalf("fsck --repair on EROFS: %s", out)
	}
	s := startServer(t, ro, "-o", "ro")
	wantContent(t, filepath.Join(s.Dir, "f"), data)
	if err := os.WriteFile(filepath.Join(s.Dir, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("create on a read-only mount: %v, want EROFS", err)
	}
	if err := s.stop(t, unix.SIGTERM); err != nil {
		t.Fatalf("server exit: %v", err)
	}
}

// Issue 9 item 6: a file whose header is damaged stays visible and can be
// removed through the mount (stat, rm and mv used to give EIO); opening it
// gives EIO, never wrong bytes.
func TestStoreDamagedHeaderRemovable(t *testing.T) {
	backing := storeWithFile(t, "f", text(100<<10, 'H'))
	f, err := os.OpenFile(filepath.Join(backing, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad}, 20); err != nil { // inside the file ID
		t.Fatal(err)
	}
	f.Close()
	m := remount(t, backing, nil)
	if _, err := os.ReadFile(m.path("f")); !errors.Is(err, unix.EIO) {
		t.Fatalf("reading a file with a damaged header: %v, want EIO", err)
	}
	if err := os.Rename(m.path("f"), m.path("g")); err != nil {
		t.Fatalf("mv through the mount: %v", err)
	}
	if err := os.Remove(m.path("g")); err != nil {
		t.Fatalf("rm through the mount: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(backing, "g")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backing file still there: %v", err)
	}
}

// Issue 9 item 3: with a server running, renaming .accelfs away does not
// let a second server mount the same backing directory, and a symlink
// planted as lock.pid is refused rather than followed.
func TestStoreLockSurvivesMetaRename(t *testing.T) {
	backing := t.TempDir()
	s := startServer(t, backing)
	writeFile(t, filepath.Join(s.Dir, "f"), []byte("served once"))
	if err := os.Rename(filepath.Join(backing, ".accelfs"), filepath.Join(backing, "moved")); err != nil {
		t.Fatal(err)
	}
	// A fresh, empty .accelfs gets past the mount's "is this a store" check:
	// only the lock on the backing root can refuse the second server now.
	if err := os.Mkdir(filepath.Join(backing, ".accelfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	// Background mode: it returns either way (a foreground server that
	// wrongly mounted would never return).
	out, code := cli(t, "mount", "--accel", "cpu", "--log", filepath.Join(t.TempDir(), "log"), backing, mnt)
	if code == 0 || mounted(mnt) {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Fatalf("a second server mounted the store after .accelfs was renamed: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "in use") {
		t.Fatalf("second mount: exit %d, message does not say the store is in use:\n%s", code, out)
	}
	if err := s.stop(t, unix.SIGTERM); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	os.RemoveAll(filepath.Join(backing, ".accelfs"))
	if err := os.Rename(filepath.Join(backing, "moved"), filepath.Join(backing, ".accelfs")); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o644)
	os.Remove(filepath.Join(backing, ".accelfs", "lock.pid"))
	if err := os.Symlink(victim, filepath.Join(backing, ".accelfs", "lock.pid")); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, "fsck", backing)
	if code == 0 || !strings.Contains(out, "symlink") {
		t.Fatalf("fsck with a lock.pid symlink: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the symlink target was written: %q", b)
	}
}
