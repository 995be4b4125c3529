//go:build !linux

package uacce

import (
	"syscall"
	"time"
)

// noKernel: uacce exists only on Linux; every open fails with ENODEV,
// which Open reports as ErrNoDevice.
type noKernel struct{}

var hostKernel kernel = noKernel{}

func (noKernel) Open(string) (int, error)                    { return -1, syscall.ENODEV }
func (noKernel) Ioctl(int, IoctlCmd, []byte) error           { return syscall.ENODEV }
func (noKernel) Mmap(int, int64, int) ([]byte, error)        { return nil, syscall.ENODEV }
func (noKernel) Munmap([]byte) error                         { return nil }
func (noKernel) Poll(int, time.Duration) (bool, bool, error) { return false, false, syscall.ENODEV }
func (noKernel) PollMany([]int, time.Duration) ([]bool, []bool, error) {
	return nil, nil, syscall.ENODEV
}
func (noKernel) Close(int) error { return nil }
func (noKernel) PageSize() int   { return 4096 }
