package fs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// fsyncChildEnv names the file the re-executed test binary writes and
// fsyncs (fsyncChild) instead of running tests.
const fsyncChildEnv = "ACCELFS_TEST_FSYNC_CHILD"

func TestMain(m *testing.M) {
	if p := os.Getenv(fsyncChildEnv); p != "" {
		os.Exit(fsyncChild(p))
	}
	os.Exit(m.Run())
}

// fsyncChild writes to p, says "ready", then fsyncs with the raw system
// call (no EINTR retry) and prints the errno. SIGUSR1 is caught, so that
// it interrupts the call without ending the process.
func fsyncChild(p string) int {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	fd, err := unix.Open(p, unix.O_WRONLY, 0)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	if _, err := unix.Write(fd, bytes.Repeat([]byte("interrupt me "), 1000)); err != nil {
		fmt.Println("write:", err)
		return 1
	}
	fmt.Println("ready")
	err = unix.Fsync(fd)
	fmt.Printf("fsync: %v\n", err)
	io.Copy(io.Discard, os.Stdin) // exit (close: FLUSH) once the parent lets the write-out go
	if err != unix.EINTR {
		return 1
	}
	return 0
}

// gateCompressor holds compress batches while held is set, until their
// context ends (a FUSE interrupt) or the test ends.
type gateCompressor struct {
	inner   blockstore.Compressor
	held    atomic.Bool
	entered chan struct{}
	stop    chan struct{}
	once    sync.Once
}

// release lets every held batch go, now and from now on.
func (c *gateCompressor) release() { c.once.Do(func() { close(c.stop) }) }

func (c *gateCompressor) Run(ctx context.Context, jobs []*blockstore.Job) error {
	if c.held.Load() && len(jobs) > 0 && !jobs[0].Decompress {
		select {
		case c.entered <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		for _, j := range jobs {
			j.Out, j.Err = nil, context.Canceled
		}
		return context.Canceled
	}
	return c.inner.Run(ctx, jobs)
}

// TestKernelInterruptsFsync: through a real mount, a signal to a process
// blocked in fsync(2) makes the kernel send FUSE_INTERRUPT; the store's
// write-out stops and fsync returns EINTR, and the data stays (written at
// the next flush). Needs root and /dev/fuse (skipped without them, unless
// ACCELFS_TEST_STRICT=1).
func TestKernelInterruptsFsync(t *testing.T) {
	if os.Geteuid() != 0 || unix.Access("/dev/fuse", unix.R_OK|unix.W_OK) != nil {
		if os.Getenv("ACCELFS_TEST_STRICT") == "1" {
			t.Fatal("ACCELFS_TEST_STRICT=1 and this test needs root and /dev/fuse")
		}
		t.Skip("needs root and /dev/fuse")
	}
	backing, mnt := t.TempDir(), t.TempDir()
	comp := &gateCompressor{inner: blockstore.NewCPUCompressor(2), entered: make(chan struct{}, 1), stop: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := blockstore.Open(backing, &blockstore.Options{Algo: codec.Zstd, AlgoSet: true, CommitInterval: -1, Compressor: comp, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(mnt, backing, store, &Options{Logger: log})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		comp.release()
		if err := srv.Unmount(); err != nil {
			srv.LazyUnmount()
		}
		srv.Wait()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
		verifyStore(t, backing)
	})
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	comp.held.Store(true)
	out := runFsyncChild(t, p, comp)
	if out != "fsync: interrupted system call" {
		t.Fatalf("child: %q, want fsync: EINTR", out)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat([]byte("interrupt me "), 1000); !bytes.Equal(got, want) {
		t.Fatalf("after the interrupted fsync the file holds %d bytes, want the %d written", len(got), len(want))
	}
}

// runFsyncChild runs fsyncChild on p, waits until its fsync is held in
// comp, signals every thread of the child and returns the child's last
// output line (the fsync's result); the compressor stops holding then, so
// that the child's close(2) can flush. The minute waits are hang guards.
func runFsyncChild(t *testing.T, p string, comp *gateCompressor) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fsyncChildEnv+"="+p)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	exited := make(chan error, 1)
	// The kernel waits for the answer to a request it sent even when the
	// child is killed: the guard lets the held write-out go as well.
	guard := time.AfterFunc(time.Minute, func() { cmd.Process.Kill(); comp.release() })
	defer guard.Stop()
	if l := <-lines; l != "ready" {
		t.Fatalf("child: %q", l)
	}
	select {
	case <-comp.entered:
	case <-time.After(time.Minute):
		t.Fatal("the fsync never reached the compressor")
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil {
			unix.Tgkill(cmd.Process.Pid, tid, unix.SIGUSR1)
		}
	}
	last := <-lines // the fsync's result
	comp.held.Store(false)
	stdin.Close()
	for l := range lines {
		last += "; " + l
	}
	go func() { exited <- cmd.Wait() }()
	if err := <-exited; err != nil {
		t.Fatalf("child: %v (output %q; killed by the hang guard if the fsync never returned)", err, last)
	}
	return last
}
