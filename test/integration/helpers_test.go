package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
	accelfs "github.com/accelfs/accelfs/fs"
)

// Environment knobs:
//
//	ACCELFS_TEST_STRICT=1     a missing root or /dev/fuse fails instead of skipping (CI sets it)
//	ACCELFS_TEST_ACCEL=cpu    compression engine for every mount of the suite (cpu, emu, ...);
//	                          in-process mounts get it from newCompressor (accel_test.go),
//	                          server processes as `accelfs mount --accel MODE`.
//	ACCELFS_TEST_WRITEBACK=1  in-process mounts use the kernel writeback cache (--writeback)
//	ACCELFS_TEST_BIN=path     use this accelfs binary instead of building cmd/accelfs
//	ACCELFS_TEST_KEEP_TREE=0  extract a smaller source tree (quicker local runs)

// accelMode is the engine the suite runs with.
func accelMode() string {
	if m := os.Getenv("ACCELFS_TEST_ACCEL"); m != "" {
		return m
	}
	return "cpu"
}

// skipOrFail skips the test with reason, or fails it under
// ACCELFS_TEST_STRICT=1.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("ACCELFS_TEST_STRICT") == "1" {
		t.Fatalf("ACCELFS_TEST_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// requireFUSE skips (or fails, when strict) unless we can mount FUSE
// filesystems directly: root and /dev/fuse.
func requireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "integration tests mount with mount(2) and need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skipOrFail(t, "no /dev/fuse: "+err.Error())
	}
}

// mnt is one in-process mount of a store.
type mnt struct {
	Backing string
	Dir     string
	srv     *accelfs.Server
	store   *blockstore.Store
	engine  io.Closer
	done    bool
}

// mountOpts tunes a test mount.
type mountOpts struct {
	fs    accelfs.Options
	store blockstore.Options
}

// newMount mounts a new store in a fresh temp directory.
func newMount(t testing.TB, o *mountOpts) *mnt {
	t.Helper()
	return remount(t, t.TempDir(), o)
}

// remount mounts the store in backing at a fresh mount point. The mount is
// unmounted and the store closed in t.Cleanup if the test has not done it.
func remount(t testing.TB, backing string, o *mountOpts) *mnt {
	t.Helper()
	requireFUSE(t)
	if o == nil {
		o = &mountOpts{}
	}
	comp, metrics, engine, err := newCompressor(accelMode())
	if err != nil {
		t.Fatalf("engine %q: %v", accelMode(), err)
	}
	so := o.store
	if !so.AlgoSet && so.Algo == 0 {
		// The mode's natural algorithm (--algo auto): what its device
		// lists (zlib on the default emulator profile, a Kunpeng 920), so
		// the emulated or real device does the work; lz4 on the CPU.
		so.Algo, so.AlgoSet = autoAlgo(comp), true
	}
	so.Compressor = comp
	store, err := blockstore.Open(backing, &so)
	if err != nil {
		engine.Close()
		t.Fatalf("open store: %v", err)
	}
	fo := o.fs
	if os.Getenv("ACCELFS_TEST_WRITEBACK") == "1" {
		fo.Writeback = true
	}
	if fo.ExtraStats == nil {
		fo.ExtraStats = metrics
	}
	dir := t.TempDir()
	srv, err := accelfs.Mount(dir, backing, store, &fo)
	if err != nil {
		store.Close()
		engine.Close()
		t.Fatalf("mount: %v", err)
	}
	m := &mnt{Backing: backing, Dir: dir, srv: srv, store: store, engine: engine}
	t.Cleanup(func() { m.unmount(t) })
	return m
}

// unmount unmounts (lazily if files are still open), waits for the server,
// checks the store with fsck and closes it. Idempotent.
func (m *mnt) unmount(t testing.TB) {
	t.Helper()
	if m.done {
		return
	}
	m.done = true
	if err := m.srv.Unmount(); err != nil {
		t.Errorf("unmount %s: %v (detaching lazily)", m.Dir, err)
		m.srv.LazyUnmount()
	}
	m.srv.Wait()
	m.closeStore(t)
}

// closeStore verifies the store with fsck (every record against the index
// and its checksums), then closes it and the engine.
func (m *mnt) closeStore(t testing.TB) {
	t.Helper()
	rep, err := m.store.Fsck(blockstore.FsckOptions{})
	if err != nil {
		t.Errorf("fsck after unmount: %v", err)
	} else if !rep.Clean() {
		t.Errorf("fsck after unmount: %s", rep)
	}
	if err := m.store.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
	m.engine.Close()
}

// path joins names under the mount point.
func (m *mnt) path(names ...string) string {
	return filepath.Join(append([]string{m.Dir}, names...)...)
}

var (
	binOnce sync.Once
	binPath string
	binDir  string // built here; removed by TestMain
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// accelfsBinary builds cmd/accelfs once per test binary run.
func accelfsBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("ACCELFS_TEST_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "accelfs-bin-")
		if err != nil {
			binErr = err
			return
		}
		binDir, binPath = dir, filepath.Join(dir, "accelfs")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/accelfs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serverProc is a mount served by a separate accelfs process (the real
// binary, `mount --foreground`), so it can be killed.
type serverProc struct {
	Backing, Dir string
	cmd          *exec.Cmd
	exited       chan error
	log          string
}

// startServer runs `accelfs mount --foreground --accel MODE` in a child and
// waits for its readiness report. Cleanup kills it and detaches the mount.
func startServer(t *testing.T, backing string, extra ...string) *serverProc {
	t.Helper()
	requireFUSE(t)
	bin := accelfsBinary(t)
	dir := t.TempDir()
	logf := filepath.Join(t.TempDir(), "server.log")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := append([]string{"mount", "--foreground", "--notify-fd=3", "--log=" + logf, "--accel=" + accelMode(), "--algo=auto"}, extra...)
	args = append(args, backing, dir)
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	s := &serverProc{Backing: backing, Dir: dir, cmd: cmd, exited: make(chan error, 1), log: logf}
	go func() { s.exited <- cmd.Wait() }()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if !strings.HasPrefix(line, "ok") {
		cmd.Process.Kill()
		<-s.exited
		t.Fatalf("server did not mount: %q (log %s)", line, readFile(logf))
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
		}
		unix.Unmount(s.Dir, unix.MNT_DETACH)
	})
	return s
}

// kill SIGKILLs the server and detaches its dead mount.
func (s *serverProc) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	if err := unix.Unmount(s.Dir, unix.MNT_DETACH); err != nil {
		t.Errorf("detach killed mount: %v", err)
	}
}

// stop sends sig and waits (bounded) for a clean exit.
func (s *serverProc) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("server did not exit within 30s after %v; log:\n%s", sig, readFile(s.log))
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// mounted reports whether dir is a mount point in /proc/mounts.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// run runs a command and fails the test with its output on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tryRemount is remount that returns the store-open error instead of
// failing (used to wait for a server process to release the store).
func tryRemount(t *testing.T, backing string) (*mnt, error) {
	t.Helper()
	s, err := blockstore.Open(backing, &blockstore.Options{LockTimeout: time.Millisecond})
	if err != nil {
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return remount(t, backing, nil), nil
}
