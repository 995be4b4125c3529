//go:build linux

package uacce

import (
	"math"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysKernel is the real kernel (golang.org/x/sys/unix).
type sysKernel struct{}

var hostKernel kernel = sysKernel{}

func (sysKernel) Open(path string) (int, error) {
	return unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
}

func (sysKernel) Ioctl(fd int, cmd IoctlCmd, arg []byte) error {
	var p unsafe.Pointer
	if len(arg) > 0 {
		if uint32(len(arg)) != cmd.Size() {
			return unix.EINVAL
		}
		// unsafe: arg is a live Go byte slice of exactly the struct size the
		// command encodes, laid out as the kernel struct (abi.go); the kernel
		// copies in and out during the synchronous call and keeps no reference.
		p = unsafe.Pointer(&arg[0])
	}
	// The pointer is converted to uintptr in the Syscall argument list itself
	// (unsafe.Pointer rule 4), so arg is kept alive and in place for the call.
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

func (sysKernel) Mmap(fd int, pgoff int64, length int) ([]byte, error) {
	return unix.Mmap(fd, pgoff*int64(unix.Getpagesize()), length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (sysKernel) Munmap(b []byte) error { return unix.Munmap(b) }

func (k sysKernel) Poll(fd int, timeout time.Duration) (bool, bool, error) {
	ready, bad, err := k.PollMany([]int{fd}, timeout)
	if err != nil {
		return false, false, err
	}
	return ready[0], bad[0], nil
}

func (sysKernel) PollMany(fds []int, timeout time.Duration) ([]bool, []bool, error) {
	// Whole milliseconds, rounded up, within poll(2)'s int: a negative
	// timeout is 0 (poll would take a negative one as "forever").
	ms := 0
	if timeout > 0 {
		ms = int(min(timeout/time.Millisecond+1, math.MaxInt32))
		if timeout%time.Millisecond == 0 {
			ms--
		}
	}
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	if _, err := unix.Poll(pfds, ms); err != nil {
		return nil, nil, err
	}
	ready, bad := make([]bool, len(fds)), make([]bool, len(fds))
	for i, p := range pfds {
		ready[i] = p.Revents&unix.POLLIN != 0
		bad[i] = p.Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0
	}
	return ready, bad, nil
}

func (sysKernel) Close(fd int) error { return unix.Close(fd) }
func (sysKernel) PageSize() int      { return unix.Getpagesize() }
