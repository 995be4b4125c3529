package uacce

import (
	"fmt"
	"time"
)

// QueueInfo describes an open queue; it does not change while it is open.
type QueueInfo struct {
	Device     string    // device name, e.g. "hisi_zip-0"
	API        string    // device api attribute, e.g. "hisi_qm_v2"
	APIVersion int       // 1, 2, 3 ... (0 = unknown; qm then uses the v2 doorbell, §2.5)
	QPID       uint16    // hardware qp number returned by QM_SET_QP_CTX (§1.5)
	Direction  Direction // qc_type the queue was started with
	SQESize    int       // bytes per SQE (QM_SET_QP_INFO, or DefaultSQESize)
	SQDepth    int       // entries in the SQ
	CQDepth    int       // entries in the CQ
	// InfoDefaulted is true when QM_SET_QP_INFO is not supported (EINVAL on
	// kernels before ~6.3) and SQESize/SQDepth/CQDepth are the defaults (§1.5).
	InfoDefaulted bool
	PageSize      int // system page size the regions were sized with
	Node          int // NUMA node of the device
}

// Queue is one started hardware queue with its two regions mapped: what
// accel/qm drives. Implemented by the real device queue (Host.Open) and by
// the emulated hisi_zip queue (accel/emu).
//
// MMIO and DUS return the mapped regions; their contents are shared with the
// device, so callers access ring indices and phase words with sync/atomic and
// must not retain the slices after Close. Doorbell is the only way to write
// the MMIO region (the emulator must observe doorbell writes, and real
// hardware needs the barrier and single 64-bit store Doorbell guarantees).
//
// Doorbell and Wait may be called concurrently with each other; Close must
// not race with other calls except Wait. A Wait that starts after Close
// returns ErrClosed; one already parked when Close runs returns within its
// timeout (its result then means nothing; the real queue keeps the file
// descriptor open until that Wait is out of poll()).
type Queue interface {
	Info() QueueInfo
	MMIO() []byte
	DUS() []byte

	// Doorbell issues a full memory barrier (all earlier writes to DUS are
	// visible to the device) and then one 64-bit little-endian store of v at
	// byte offset off of the MMIO region (§2.5: "writeq", mb() before).
	Doorbell(off int, v uint64) error

	// Wait blocks until the device reports that the CQ may hold a completion
	// the driver has not consumed, or until timeout (0 = just check). It
	// returns true when woken by the device. This is poll(fd, POLLIN) on a
	// real queue (§1.6): it only wakes if the driver armed the event with a
	// priority-1 CQ doorbell (§2.5). A false result with a nil error is a
	// timeout. Wait never replaces checking the CQ: it is only a parking aid.
	Wait(timeout time.Duration) (bool, error)

	// Close stops the queue (PUT_Q), unmaps the regions and releases the
	// queue (§1.7). After Close returns the device no longer touches memory
	// referenced by SQEs of this queue. Idempotent.
	Close() error
}

// Mapper is implemented by queues whose "device" resolves the buffer
// addresses in SQEs through a registry instead of through the process page
// tables — the emulator, which as a Go program cannot safely dereference a
// raw address. accel/qm calls Map for every buffer it places into an SQE
// before ringing the doorbell and Unmap after consuming the completion (or
// after failing the request). A real SVA device does not implement Mapper: it
// reads the virtual address directly (§4.5).
type Mapper interface {
	Map(addr uint64, b []byte)
	Unmap(addr uint64)
}

// Provider is a set of devices that can be discovered and opened: the real
// kernel (Host) or an emulator (accel/emu).
type Provider interface {
	// Discover lists the devices (isolated ones included, flagged).
	Discover() ([]Device, error)
	// Open creates, configures and starts one queue of dev with direction dir.
	// Errors wrap ErrBusy (no free queue), ErrIsolated, ErrNoDevice.
	Open(dev Device, dir Direction) (Queue, error)
}

// Host is the Provider for real uacce devices of the running kernel.
type Host struct {
	SysfsRoot string // default DefaultSysfsRoot
	DevRoot   string // default DefaultDevRoot
}

var _ Provider = (*Host)(nil)

// Discover lists the host's uacce devices.
func (h *Host) Discover() ([]Device, error) { return DiscoverIn(h.SysfsRoot, h.DevRoot) }

// Open opens a queue on a real device; see openDevQueue for the exact
// sequence of system calls (Linux only; elsewhere it fails with ErrNoDevice).
func (h *Host) Open(dev Device, dir Direction) (Queue, error) {
	if dev.Isolated || (dev.SysfsPath != "" && ReadIsolated(&dev)) {
		return nil, fmt.Errorf("uacce: open %s: %w", dev.Name, ErrIsolated)
	}
	if dir != Compress && dir != Decompress {
		return nil, fmt.Errorf("uacce: open %s: bad direction %d", dev.Name, dir)
	}
	if !dev.SVA() {
		return nil, fmt.Errorf("uacce: open %s (flags %d): %w: %w", dev.Name, dev.Flags, ErrNoSVA, ErrNoDevice)
	}
	if dev.MMIOSize <= 0 || dev.DUSSize <= 0 {
		return nil, fmt.Errorf("uacce: open %s: region sizes unknown (legacy uacce without region_*_size): %w", dev.Name, ErrNoDevice)
	}
	return openDevQueue(hostKernel, dev, dir)
}

// Notifier is implemented by queues that can call a function whenever the
// device posts a completion (the emulator; a real queue offers Wait/poll()
// instead). fn must not block; it may be called from any goroutine. Passing
// nil removes it.
type Notifier interface {
	SetNotify(fn func())
}
