package uacce

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// kernel is the system-call surface of a real queue. sysKernel (Linux)
// implements it with golang.org/x/sys/unix; tests substitute a fake uacce
// kernel that enforces the queue state machine (§1.7, §6.2), so the exact
// sequence below is exercised without hardware. Errors are syscall.Errno.
type kernel interface {
	Open(path string) (fd int, err error)
	// Ioctl passes arg (the struct in kernel layout, nil for _IO commands).
	Ioctl(fd int, cmd IoctlCmd, arg []byte) error
	// Mmap maps length bytes at page offset pgoff, RW, MAP_SHARED.
	Mmap(fd int, pgoff int64, length int) ([]byte, error)
	Munmap(b []byte) error
	// Poll waits up to timeout for POLLIN; revents is returned.
	Poll(fd int, timeout time.Duration) (ready bool, revErr bool, err error)
	// PollMany is one poll(2) over several descriptors: it waits up to
	// timeout for POLLIN on any; per descriptor readiness and error events.
	PollMany(fds []int, timeout time.Duration) (ready, revErr []bool, err error)
	Close(fd int) error
	PageSize() int
}

// devQueue is a queue on a real uacce character device.
type devQueue struct {
	k    kernel
	fd   int
	info QueueInfo
	mmio []byte // MMIO region (page offset 0), uncached device memory
	dus  []byte // DUS region (page offset 1), DMA-coherent rings

	mu     sync.Mutex // serialises Close (teardown sequence)
	closed atomic.Bool

	// The descriptor outlives Close while a Wait is parked in poll() on it:
	// closing it under the poll would let the number be reused by another
	// file while this queue still polls it. The last of Close and the parked
	// Waits closes it.
	fdMu      sync.Mutex
	waiters   int  // Waits inside poll(); guarded by fdMu
	fdClosing bool // Close ran, the descriptor is not closed yet; guarded by fdMu
}

// openDevQueue follows the queue life cycle of §1.7 (K-UACCE, U-QM
// hisi_qm_alloc_qp): open -> QM_SET_QP_CTX (direction; must precede START,
// which writes alg_type into the SQC) -> QM_SET_QP_INFO (EINVAL on old
// kernels -> defaults) -> mmap MMIO (pgoff 0) and DUS (pgoff 1), sizes from
// sysfs -> START_Q. Any failure undoes the steps done so far (munmap,
// close; no PUT_Q before START).
func openDevQueue(k kernel, dev Device, dir Direction) (q Queue, err error) {
	fd, err := k.Open(dev.DevPath)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EBUSY):
			// "All %u queues of QM are busy!" (K-QM qm_create_qp_nolock).
			return nil, fmt.Errorf("uacce: open %s: %w", dev.DevPath, ErrBusy)
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO):
			return nil, fmt.Errorf("uacce: open %s: %v: %w", dev.DevPath, err, ErrNoDevice)
		}
		return nil, fmt.Errorf("uacce: open %s: %w", dev.DevPath, err)
	}
	dq := &devQueue{k: k, fd: fd}
	defer func() {
		if err != nil {
			dq.teardown(false)
		}
	}()

	ctx := QPCtx{QCType: uint16(dir)}.Marshal()
	if err := k.Ioctl(fd, CmdSetQPCtx, ctx[:]); err != nil {
		return nil, fmt.Errorf("uacce: %s: QM_SET_QP_CTX(qc_type=%d): %w", dev.Name, dir, err)
	}
	qpc := UnmarshalQPCtx(ctx)

	page := k.PageSize()
	info := QueueInfo{
		Device: dev.Name, API: dev.API, APIVersion: dev.APIVersion,
		QPID: qpc.ID, Direction: dir, PageSize: page, Node: dev.Node,
	}
	var qi [SizeofQPInfo]byte
	switch err := k.Ioctl(fd, CmdSetQPInfo, qi[:]); {
	case err == nil:
		i := UnmarshalQPInfo(qi)
		info.SQESize, info.SQDepth, info.CQDepth = int(i.SQESize), int(i.SQDepth), int(i.CQDepth)
		if info.SQESize <= 0 || info.SQESize > 4096 || info.SQDepth < 2 || info.CQDepth < 2 {
			return nil, fmt.Errorf("uacce: %s: QM_SET_QP_INFO returned %+v", dev.Name, i)
		}
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOTTY):
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
	if dq.mmio, err = k.Mmap(fd, RegionMMIO, int(dev.MMIOSize)); err != nil {
		return nil, fmt.Errorf("uacce: %s: mmap MMIO: %w", dev.Name, err)
	}
	if dq.dus, err = k.Mmap(fd, RegionDUS, int(dev.DUSSize)); err != nil {
		return nil, fmt.Errorf("uacce: %s: mmap DUS: %w", dev.Name, err)
	}
	if err := k.Ioctl(fd, CmdStartQ, nil); err != nil {
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
	// page; atomic.StoreUint64 is one 64-bit store (STLR on arm64, a locked
	// XCHGQ on amd64), the writeq the QM doorbell needs.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&q.mmio[off])), v)
	return nil
}

// enterWait takes a waiter reference (the descriptor stays open until
// leaveWait); false when the queue is closed or closing.
func (q *devQueue) enterWait() bool {
	q.fdMu.Lock()
	defer q.fdMu.Unlock()
	if q.closed.Load() || q.fdClosing {
		return false
	}
	q.waiters++
	return true
}

// leaveWait drops a waiter reference; the last one out after Close closes
// the descriptor.
func (q *devQueue) leaveWait() {
	q.fdMu.Lock()
	if q.waiters--; q.waiters == 0 && q.fdClosing {
		q.fdClosing = false
		_ = q.k.Close(q.fd) // Close returned already; nobody to report to
	}
	q.fdMu.Unlock()
}

func (q *devQueue) Wait(timeout time.Duration) (bool, error) {
	if !q.enterWait() {
		return false, ErrClosed
	}
	defer q.leaveWait()
	deadline := time.Now().Add(timeout)
	for {
		ready, revErr, err := q.k.Poll(q.fd, timeout) // §1.6: EPOLLIN when is_q_updated
		if errors.Is(err, syscall.EINTR) {
			// Retry with what is left, so signals cannot stretch the wait.
			timeout = max(time.Until(deadline), 0)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("uacce: %s: poll: %w", q.info.Device, err)
		}
		if revErr {
			return false, fmt.Errorf("uacce: %s: poll error event: %w", q.info.Device, ErrQueueDisabled)
		}
		return ready, nil
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
		if err := q.k.Ioctl(q.fd, CmdPutQ, nil); err != nil {
			errs = append(errs, fmt.Errorf("PUT_Q: %w", err))
		}
	}
	if q.mmio != nil {
		if err := q.k.Munmap(q.mmio); err != nil {
			errs = append(errs, fmt.Errorf("munmap MMIO: %w", err))
		}
		q.mmio = nil
	}
	if q.dus != nil {
		if err := q.k.Munmap(q.dus); err != nil {
			errs = append(errs, fmt.Errorf("munmap DUS: %w", err))
		}
		q.dus = nil
	}
	// PUT_Q above already stopped the device; the descriptor itself is
	// closed now, or by the last parked Wait when its poll() returns.
	q.fdMu.Lock()
	if q.waiters > 0 {
		q.fdClosing = true
	} else if err := q.k.Close(q.fd); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	q.fdMu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("uacce: %s: close: %w", q.info.Device, errors.Join(errs...))
	}
	return nil
}
