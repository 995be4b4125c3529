package qm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/accelfs/accelfs/accel/uacce"
)

// QPOptions configures a QP.
type QPOptions struct {
	// Interrupt makes Recv ring CQ doorbells with priority 1, which arms the
	// completion event so Queue.Wait (poll()) can park (§2.5, §4.4). Polling
	// queues leave it false (UADK: epoll_en = 0).
	Interrupt bool
}

// QP drives the SQ/CQ rings of one uacce queue with the hisi_qm protocol
// (§2): the libhisi_qm role. Send may be called from several goroutines;
// Recv is meant for one poller per queue (UADK: "only support one thread
// poll one queue", §2.5) and is serialised internally so a second poller is
// safe but gains nothing.
type QP struct {
	q     uacce.Queue
	info  uacce.QueueInfo
	dus   []byte
	lay   Layout
	dbOff int
	dbVer int
	prio  uint16 // CQ doorbell priority: 1 in interrupt mode

	sendMu sync.Mutex // protects sqTail and writes into SQ slots
	sqTail uint16

	recvMu sync.Mutex // protects cqHead and phase
	cqHead uint16
	phase  uint32 // expected phase of the entry at cqHead; starts at 1 (§2.4)

	used atomic.Int32 // sent, not yet received; at most SQDepth-1

	// qnMismatch counts CQEs whose sq_num is not this queue's qp id. The
	// kernel and UADK never check that field (a VF may report another
	// number, uadk-spec §2.3), so neither does Recv: it is counted for the
	// caller to log.
	qnMismatch atomic.Uint64
}

// NewQP attaches the protocol state to a started queue.
func NewQP(q uacce.Queue, opts QPOptions) (*QP, error) {
	info := q.Info()
	lay, err := DUSLayout(info.SQESize, info.SQDepth, info.CQDepth, info.PageSize)
	if err != nil {
		return nil, fmt.Errorf("qm: %s qp %d: %w", info.Device, info.QPID, err)
	}
	dus := q.DUS()
	if lay, err = lay.withMappedSize(len(dus)); err != nil {
		return nil, fmt.Errorf("qm: %s qp %d: %w", info.Device, info.QPID, err)
	}
	// unsafe: only the numeric address is inspected (alignment check).
	if uintptr(unsafe.Pointer(unsafe.SliceData(dus)))%8 != 0 {
		return nil, fmt.Errorf("qm: %s qp %d: DUS region not 8-byte aligned", info.Device, info.QPID)
	}
	if info.SQDepth != info.CQDepth {
		// Credits (depth-1 in flight) guarantee no CQ overflow only when the
		// CQ is at least as deep as the SQ.
		if info.CQDepth < info.SQDepth {
			return nil, fmt.Errorf("qm: %s qp %d: CQ depth %d < SQ depth %d", info.Device, info.QPID, info.CQDepth, info.SQDepth)
		}
	}
	dbOff := DoorbellOffset(info.APIVersion)
	if dbOff+8 > len(q.MMIO()) {
		return nil, fmt.Errorf("qm: %s qp %d: MMIO region of %d bytes has no doorbell at %#x", info.Device, info.QPID, len(q.MMIO()), dbOff)
	}
	if (info.APIVersion == 1 && int(info.QPID) >= 4096) || (info.APIVersion != 1 && int(info.QPID) >= 1024) {
		return nil, fmt.Errorf("qm: %s: qp number %d out of range for api %q", info.Device, info.QPID, info.API)
	}
	p := &QP{q: q, info: info, dus: dus, lay: lay, dbOff: dbOff, dbVer: info.APIVersion, phase: 1}
	if opts.Interrupt {
		p.prio = 1
	}
	return p, nil
}

// QNMismatches is how many completions named another qp number than this
// queue's (accepted, as the kernel and UADK accept them).
func (p *QP) QNMismatches() uint64 { return p.qnMismatch.Load() }

// Info returns the queue description.
func (p *QP) Info() uacce.QueueInfo { return p.info }

// Layout returns the DUS layout in use.
func (p *QP) Layout() Layout { return p.lay }

// Queue returns the underlying uacce queue.
func (p *QP) Queue() uacce.Queue { return p.q }

// Capacity is the most SQEs that may be in flight: SQDepth-1 (§2.5).
func (p *QP) Capacity() int { return p.info.SQDepth - 1 }

// InFlight is the number of SQEs sent and not yet received.
func (p *QP) InFlight() int { return int(p.used.Load()) }

// word returns the aligned u32 at off of the DUS region for atomic access.
func (p *QP) word(off int) *uint32 {
	// unsafe: off is 4-aligned and inside DUS (layout offsets are checked in
	// NewQP); the region is 8-aligned, so this is an aligned *uint32 into
	// memory shared with the device, only accessed through sync/atomic.
	return (*uint32)(unsafe.Pointer(&p.dus[off]))
}

// TxDisabled / RxDisabled read ds_tx / ds_rx (§2.2).
func (p *QP) TxDisabled() bool { return atomic.LoadUint32(p.word(p.lay.DsTxOff)) != 0 }
func (p *QP) RxDisabled() bool { return atomic.LoadUint32(p.word(p.lay.DsRxOff)) != 0 }

// Send copies the SQEs (each exactly SQESize bytes) into the SQ at the tail,
// wrapping, and rings the SQ doorbell once with the new tail (§2.5). It is
// all or nothing: ErrBusy when they do not all fit in the depth-1 credit,
// ErrQueueDisabled when ds_tx is set (checked before the doorbell).
func (p *QP) Send(sqes ...[]byte) error {
	n := len(sqes)
	if n == 0 {
		return nil
	}
	for _, s := range sqes {
		if len(s) != p.info.SQESize {
			return fmt.Errorf("qm: SQE of %d bytes, queue wants %d: %w", len(s), p.info.SQESize, ErrBadRequest)
		}
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	// Take the credits first: only Send adds to used (under sendMu), Recv only
	// subtracts, so the check cannot go stale in the unsafe direction.
	if int(p.used.Load())+n > p.Capacity() {
		return fmt.Errorf("qm: %s qp %d: %d in flight + %d > %d: %w", p.info.Device, p.info.QPID, p.used.Load(), n, p.Capacity(), ErrBusy)
	}
	if p.TxDisabled() {
		return fmt.Errorf("qm: %s qp %d: ds_tx set: %w", p.info.Device, p.info.QPID, ErrQueueDisabled)
	}
	depth := uint16(p.info.SQDepth)
	tail := p.sqTail
	for _, s := range sqes {
		off := p.lay.SQOff + int(tail)*p.info.SQESize
		copy(p.dus[off:off+p.info.SQESize], s)
		if tail++; tail == depth {
			tail = 0
		}
	}
	p.used.Add(int32(n))
	// Queue.Doorbell issues the full barrier before the 64-bit store.
	db := EncodeDoorbell(p.dbVer, Doorbell{QN: p.info.QPID, Cmd: DBSQ, Index: tail})
	if err := p.q.Doorbell(p.dbOff, db); err != nil {
		p.used.Add(-int32(n))
		return fmt.Errorf("qm: %s qp %d: SQ doorbell: %w", p.info.Device, p.info.QPID, err)
	}
	p.sqTail = tail
	return nil
}

// Recv consumes at most one completion. If the entry at the CQ head carries
// the expected phase it calls fn with the CQE and the SQE slot the CQE names
// (the device wrote the results back there, §2.3); the slice is only valid
// during fn. Then it advances the head (flipping the expected phase on
// wrap, §2.4), rings the CQ doorbell and returns the credit. It returns
// false when nothing is pending. ErrQueueDisabled when ds_rx is set (checked
// before consuming, hence before the CQ doorbell), or, wrapped with
// ErrProtocol, when the CQE names a slot outside the SQ. A CQE naming
// another qp is accepted and counted (QNMismatches).
func (p *QP) Recv(fn func(cqe CQE, sqe []byte)) (bool, error) {
	p.recvMu.Lock()
	defer p.recvMu.Unlock()
	if p.RxDisabled() {
		return false, fmt.Errorf("qm: %s qp %d: ds_rx set: %w", p.info.Device, p.info.QPID, ErrQueueDisabled)
	}
	off := p.lay.CQOff + int(p.cqHead)*CQESize
	// Acquire load of the phase word: everything the device wrote before
	// publishing it (the SQE write-back, the CQE fields) is visible after
	// (the rmb of §2.4).
	w := atomic.LoadUint32(p.word(off + CQEOffPhaseWord))
	if (w>>16)&1 != p.phase {
		return false, nil
	}
	cqe, err := DecodeCQE(p.dus[off : off+CQESize])
	if err != nil {
		return false, err
	}
	if int(cqe.SQHead) >= p.info.SQDepth {
		return false, fmt.Errorf("qm: %s qp %d: CQE names slot %d of %d: %w: %w",
			p.info.Device, p.info.QPID, cqe.SQHead, p.info.SQDepth, ErrQueueDisabled, ErrProtocol)
	}
	if cqe.SQNum != p.info.QPID {
		p.qnMismatch.Add(1)
	}
	if p.used.Load() <= 0 {
		return false, fmt.Errorf("qm: %s qp %d: completion with nothing in flight: %w: %w",
			p.info.Device, p.info.QPID, ErrQueueDisabled, ErrProtocol)
	}
	soff := p.lay.SQOff + int(cqe.SQHead)*p.info.SQESize
	fn(cqe, p.dus[soff:soff+p.info.SQESize])

	if p.cqHead++; int(p.cqHead) == p.info.CQDepth {
		p.cqHead = 0
		p.phase ^= 1
	}
	db := EncodeDoorbell(p.dbVer, Doorbell{QN: p.info.QPID, Cmd: DBCQ, Index: p.cqHead, Priority: p.prio})
	err = p.q.Doorbell(p.dbOff, db)
	// The credit is returned after the CQ doorbell, so the device never sees
	// more unacknowledged CQEs than the CQ holds.
	p.used.Add(-1)
	if err != nil {
		return true, fmt.Errorf("qm: %s qp %d: CQ doorbell: %w", p.info.Device, p.info.QPID, err)
	}
	return true, nil
}

// Arm rings a CQ doorbell at the current head with priority 1, which
// enables the queue's completion interrupt so a poll() on the queue wakes on
// the next completion (§2.5; the kernel's own poll callback re-arms the same
// way). A poller calls it just before it parks; queues in polling mode
// (Interrupt false) otherwise ring their CQ doorbells with priority 0 and
// raise no interrupts (UADK's epoll_en = 0).
func (p *QP) Arm() error {
	p.recvMu.Lock()
	defer p.recvMu.Unlock()
	if p.RxDisabled() {
		return fmt.Errorf("qm: %s qp %d: ds_rx set: %w", p.info.Device, p.info.QPID, ErrQueueDisabled)
	}
	db := EncodeDoorbell(p.dbVer, Doorbell{QN: p.info.QPID, Cmd: DBCQ, Index: p.cqHead, Priority: 1})
	return p.q.Doorbell(p.dbOff, db)
}

// isDead reports errors after which the queue cannot be used again.
func isDead(err error) bool {
	return errors.Is(err, ErrQueueDisabled) || errors.Is(err, ErrClosed) || errors.Is(err, ErrProtocol)
}
