package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Why a mount failed, in one exit code per class, the same in both modes.
// Root mounts with mount(2) directly and gets an errno; other users go
// through fusermount3, whose reason is only in what it prints on stderr,
// so that is captured while the mount is made (captureStderr) and put into
// the error.

// checkFUSEDevice tells "FUSE is not usable here" apart before the store
// is opened: /dev/fuse must exist, and root must be able to open it.
func checkFUSEDevice() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return withCode(exitNoFUSE, fmt.Errorf("/dev/fuse: %w (load the fuse module: modprobe fuse; in a container pass --device /dev/fuse)", errors.Unwrap(err)))
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err2 := exec.LookPath("fusermount"); err2 != nil {
				return withCode(exitNoFUSE, errors.New("mounting as a user needs fusermount3 (install the fuse3 package)"))
			}
		}
		return nil
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return withCode(exitNoFUSE, fmt.Errorf("/dev/fuse is not accessible: %w (in a container: --device /dev/fuse and a device cgroup rule that allows it)", errors.Unwrap(err)))
	}
	return f.Close()
}

// classifyMountErr gives a failed mount its exit code and, for
// fusermount3, its own words.
func classifyMountErr(err error, stderr []string) error {
	fm := fusermountLines(stderr)
	reason := err.Error()
	if len(fm) > 0 {
		reason = strings.Join(fm, "; ")
	}
	low := strings.ToLower(reason)
	switch {
	case errors.Is(err, unix.EINVAL) || strings.Contains(low, "unknown option") || strings.Contains(low, "invalid argument"):
		return usagef("the mount options were refused: %s", reason)
	case strings.Contains(low, "/dev/fuse") || strings.Contains(low, "fuse device") || errors.Is(err, exec.ErrNotFound):
		return withCode(exitNoFUSE, fmt.Errorf("FUSE is not usable: %s", reason))
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || len(fm) > 0 ||
		strings.Contains(low, "fusermount"):
		return withCode(exitMountDenied, fmt.Errorf("the mount was refused: %s", reason))
	}
	return fmt.Errorf("mount: %w", err)
}

// fusermountLines keeps the lines fusermount3 printed (they start with
// its name).
func fusermountLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "fusermount") || strings.Contains(l, "fusermount3:") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// captureStderr runs f with fd 2 pointed at a pipe and returns the lines
// written meanwhile (by f, or by a helper such as fusermount3 that f
// runs); they are passed on to the previous stderr as well.
func captureStderr(f func() error) (lines []string, err error) {
	saved, derr := unix.Dup(2)
	if derr != nil {
		return nil, f()
	}
	defer unix.Close(saved)
	var p [2]int
	if perr := unix.Pipe2(p[:], unix.O_CLOEXEC); perr != nil {
		return nil, f()
	}
	if derr := unix.Dup3(p[1], 2, 0); derr != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, f()
	}
	unix.Close(p[1])
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := os.NewFile(uintptr(p[0]), "capture")
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			if len(lines) < 64 {
				lines = append(lines, sc.Text())
			}
			mu.Unlock()
			syscall.Write(saved, append(sc.Bytes(), '\n'))
		}
	}()
	err = f()
	unix.Dup3(saved, 2, 0) // the pipe's last write end closes: the reader ends
	wg.Wait()
	return lines, err
}
