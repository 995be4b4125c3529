//go:build linux

package uacce

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// devQueue is a queue on a real uacce character device.
type devQueue struct {
	fd   int
	info QueueInfo
	mmio []byte // MMIO region (page offset 0), uncached device memory
	dus  []byte // DUS region (page offset 1), DMA-coherent rings

	mu     sync.Mutex // protects closed and the teardown sequence
	closed atomic.Bool
}

// ioctlPtr issues ioctl(fd, cmd, arg) with arg pointing at a small
// fixed-size buffer laid out exactly as the kernel struct (see abi.go).
func ioctlPtr(fd int, cmd IoctlCmd, arg unsafe.Pointer) error {
	// unsafe: arg points at a Go array that lives on the caller's frame or
	// heap for the whole (synchronous) system call; the kernel copies in and
	// out before returning, so no reference is kept.
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

func ioctlNone(fd int, cmd IoctlCmd) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), 0)
	if e != 0 {
		return e
	}
	return nil
}

// openDevQueue follows the queue life cycle of §1.7 (K-UACCE, U-QM
// hisi_qm_alloc_qp): open -> QM_SET_QP_CTX (direction; must precede START,
// which writes alg_type into the SQC) -> QM_SET_QP_INFO (EINVAL on old
// kernels -> defaults) -> mmap MMIO (pgoff 0) and DUS (pgoff 1), sizes from
// sysfs -> START_Q. Any failure undoes the steps done so far.
func openDevQueue(dev Device, dir Direction) (q Queue, err error) {
	fd, err := unix.Open(dev.DevPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			// "All %u queues of QM are busy!" (K-QM qm_create_qp_nolock).
			return nil, fmt.Errorf("uacce: open %s: %w", dev.DevPath, ErrBusy)
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
			return nil, fmt.Errorf("uacce: open %s: %v: %w", dev.DevPath, err, ErrNoDevice)
		}
		return nil, fmt.Errorf("uacce: open %s: %w", dev.DevPath, err)
	}
	dq := &devQueue{fd: fd}
	defer func() {
		if err != nil {
			dq.teardown(false)
		}
	}()

	ctx := QPCtx{QCType: uint16(dir)}.Marshal()
	// unsafe: &ctx is a [4]byte in hisi_qp_ctx layout, alive for the call.
	if err := ioctlPtr(fd, CmdSetQPCtx, unsafe.Pointer(&ctx)); err != nil {
		return nil, fmt.Errorf("uacce: %s: QM_SET_QP_CTX(qc_type=%d): %w", dev.Name, dir, err)
	}
	qpc := UnmarshalQPCtx(ctx)

	page := unix.Getpagesize()
	info := QueueInfo{
		Device: dev.Name, API: dev.API, APIVersion: dev.APIVersion,
		QPID: qpc.ID, Direction: dir, PageSize: page, Node: dev.Node,
	}
	var qi [SizeofQPInfo]byte
	// unsafe: &qi is a [16]byte in hisi_qp_info layout, alive for the call.
	switch err := ioctlPtr(fd, CmdSetQPInfo, unsafe.Pointer(&qi)); {
	case err == nil:
		i := UnmarshalQPInfo(qi)
		info.SQESize, info.SQDepth, info.CQDepth = int(i.SQESize), int(i.SQDepth), int(i.CQDepth)
		if info.SQESize <= 0 || info.SQDepth < 2 || info.CQDepth < 2 {
			return nil, fmt.Errorf("uacce: %s: QM_SET_QP_INFO returned %+v", dev.Name, i)
		}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY):
		// Kernels before ~6.3 do not know the ioctl (§1.5, U-QM fallback).
		info.SQESize, info.SQDepth, info.CQDepth = DefaultSQESize, DefaultDepth, DefaultDepth
		info.InfoDefaulted = true
	default:
		return nil, fmt.Errorf("uacce: %s: QM_SET_QP_INFO: %w", dev.Name, err)
	}
	dq.info = info

	// Region sizes come from sysfs and must be mapped whole (§1.4, U-WD
	// wd_ctx_mmap_qfr: offset = type * page size, MAP_SHARED, RW).
	if dev.MMIOSize > 1<<30 || dev.DUSSize > 1<<30 {
		return nil, fmt.Errorf("uacce: %s: implausible region sizes %d/%d", dev.Name, dev.MMIOSize, dev.DUSSize)
	}
	dq.mmio, err = unix.Mmap(fd, int64(RegionMMIO*page), int(dev.MMIOSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("uacce: %s: mmap MMIO: %w", dev.Name, err)
	}
	dq.dus, err = unix.Mmap(fd, int64(RegionDUS*page), int(dev.DUSSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("uacce: %s: mmap DUS: %w", dev.Name, err)
	}
	if err := ioctlNone(fd, CmdStartQ); err != nil {
		return nil, fmt.Errorf("uacce: %s: START_Q: %w", dev.Name, err)
	}
	return dq, nil
}

func (q *devQueue) Info() QueueInfo { return q.info }
func (q *devQueue) MMIO() []byte    { return q.mmio }
func (q *devQueue) DUS() []byte     { return q.dus }

func (q *devQueue) Doorbell(off int, v uint64) error {
	if q.closed.Load() {
		return ErrClosed
	}
	if off < 0 || off+8 > len(q.mmio) || off%8 != 0 {
		return fmt.Errorf("uacce: %s: doorbell offset %#x outside MMIO region of %d bytes", q.info.Device, off, len(q.mmio))
	}
	FullBarrier() // UADK: mb() between SQE writes and the doorbell (§2.5)
	// unsafe: off is 8-aligned and inside the mapping (checked above), and the
	// mapping is page aligned, so this is an aligned *uint64 into the MMIO
	// page; atomic.StoreUint64 is one 64-bit store (STLR on arm64, MOV on
	// amd64), the writeq the QM doorbell needs.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&q.mmio[off])), v)
	return nil
}

func (q *devQueue) Wait(timeout time.Duration) (bool, error) {
	if q.closed.Load() {
		return false, ErrClosed
	}
	ms := int(timeout / time.Millisecond)
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	fds := []unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, ms) // §1.6: EPOLLIN when is_q_updated
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("uacce: %s: poll: %w", q.info.Device, err)
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return false, fmt.Errorf("uacce: %s: poll revents %#x: %w", q.info.Device, fds[0].Revents, ErrQueueDisabled)
		}
		return n > 0, nil
	}
}

// Close: PUT_Q (releases the hardware qp at once), munmap, close (§1.7,
// U-WD wd_release_ctx_force order).
func (q *devQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Swap(true) {
		return nil
	}
	return q.teardown(true)
}

func (q *devQueue) teardown(started bool) error {
	var errs []error
	if started {
		if err := ioctlNone(q.fd, CmdPutQ); err != nil {
			errs = append(errs, fmt.Errorf("PUT_Q: %w", err))
		}
	}
	if q.mmio != nil {
		if err := unix.Munmap(q.mmio); err != nil {
			errs = append(errs, fmt.Errorf("munmap MMIO: %w", err))
		}
		q.mmio = nil
	}
	if q.dus != nil {
		if err := unix.Munmap(q.dus); err != nil {
			errs = append(errs, fmt.Errorf("munmap DUS: %w", err))
		}
		q.dus = nil
	}
	if err := unix.Close(q.fd); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("uacce: %s: close: %w", q.info.Device, errors.Join(errs...))
	}
	return nil
}
