package emu

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
)

// Queue is one emulated hardware queue: the regions, the device-side ring
// state, the address registry and the engine goroutine. It implements
// uacce.Queue, uacce.Mapper and uacce.Notifier.
type Queue struct {
	d    *Device
	id   uint16
	dir  uacce.Direction
	info uacce.QueueInfo
	lay  qm.Layout
	mmio []byte
	dus  []byte // 8-aligned (backed by a []uint64)

	mu        sync.Mutex // protects the device-side ring state below
	sqTail    uint16     // last SQ doorbell index
	sqHead    uint16     // next SQE the engine fetches (advanced at fetch, before processing)
	arrivals  []time.Time
	cqTail    uint16 // next CQE slot the device writes
	cqPhase   uint32 // phase the device writes; starts 1 (§2.4)
	cqHeadDB  uint16 // last CQ doorbell index
	cqPending int    // CQEs written and not yet acknowledged by CQ doorbells
	armed     bool   // last CQ doorbell had priority 1
	closed    bool
	extra     time.Duration // per-queue added latency (SetLatency)

	// event holds at most one wake-up token, sent (without blocking) on
	// every CQE post and disable. One waiter per queue (the poller);
	// a stale token only causes a spurious, harmless wake-up.
	event chan struct{}

	kick     chan struct{} // engine wake-up, capacity 1
	stop     chan struct{}
	done     chan struct{}
	closeOne sync.Once

	notify atomic.Pointer[func()]

	mapMu   sync.Mutex // protects maps
	mapCond *sync.Cond // signalled when a mapping stops being busy
	maps    map[uint64]mapping

	eng engineState // owned by the engine goroutine
}

// mapping is one registered buffer (see uacce.Mapper).
type mapping struct {
	b    []byte
	refs int // Map calls not yet undone
	busy int // engine uses in progress; Unmap waits for 0
}

var (
	_ uacce.Queue    = (*Queue)(nil)
	_ uacce.Mapper   = (*Queue)(nil)
	_ uacce.Notifier = (*Queue)(nil)
)

func newQueue(d *Device, id uint16, dir uacce.Direction) *Queue {
	words := make([]uint64, d.dusSize/8)
	// unsafe: views the []uint64 backing array as bytes, so the DUS region is
	// 8-aligned like a real page-aligned mapping and atomic u32/u64 accesses
	// at aligned offsets are valid. words stays referenced through dus.
	dus := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), d.dusSize)
	mwords := make([]uint64, d.mmioSize/8)
	// unsafe: same for the MMIO page, whose doorbell word is stored atomically.
	mmio := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(mwords))), d.mmioSize)
	q := &Queue{
		d: d, id: id, dir: dir, lay: d.layout, dus: dus, mmio: mmio,
		cqPhase: 1, armed: true,
		arrivals: make([]time.Time, d.opts.Depth),
		event:    make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		maps:     map[uint64]mapping{},
	}
	q.mapCond = sync.NewCond(&q.mapMu)
	q.info = uacce.QueueInfo{
		Device: d.name, API: d.api, APIVersion: d.opts.APIVersion, QPID: id, Direction: dir,
		SQESize: qm.SQESize, SQDepth: d.opts.Depth, CQDepth: d.opts.Depth,
		InfoDefaulted: d.opts.OldKernel, PageSize: d.opts.PageSize, Node: max(d.opts.Node, 0),
	}
	return q
}

func (q *Queue) start() { go q.run() }

// Info, MMIO and DUS implement uacce.Queue.
func (q *Queue) Info() uacce.QueueInfo { return q.info }
func (q *Queue) MMIO() []byte          { return q.mmio }
func (q *Queue) DUS() []byte           { return q.dus }

// QPID is the queue's hardware qp number.
func (q *Queue) QPID() uint16 { return q.id }

// SetNotify implements uacce.Notifier.
func (q *Queue) SetNotify(fn func()) {
	if fn == nil {
		q.notify.Store(nil)
		return
	}
	q.notify.Store(&fn)
}

// SetLatency adds d to every completion of this queue from now on (the
// "late/reordered completions across queues" knob, §6.9).
func (q *Queue) SetLatency(d time.Duration) {
	q.mu.Lock()
	q.extra = d
	q.mu.Unlock()
}

func (q *Queue) word(off int) *uint32 {
	// unsafe: off is a 4-aligned offset inside the 8-aligned DUS region.
	return (*uint32)(unsafe.Pointer(&q.dus[off]))
}

// Disable sets ds_tx and/or ds_rx to 1, as the kernel does before a reset
// or on CQ overflow (§2.2). With ds_rx the engine stops consuming SQEs;
// with ds_tx alone it finishes those already submitted.
func (q *Queue) Disable(tx, rx bool) {
	if tx {
		atomic.StoreUint32(q.word(q.lay.DsTxOff), 1)
	}
	if rx {
		atomic.StoreUint32(q.word(q.lay.DsRxOff), 1)
	}
	q.wake()
}

// rxDisabled: the kernel stops the queue for good (ds_rx); with only ds_tx
// set the device still completes what was already submitted (the kernel
// sets ds_tx first to stop new sends before a reset, §2.2).
func (q *Queue) rxDisabled() bool {
	return atomic.LoadUint32(q.word(q.lay.DsRxOff)) != 0
}

func (q *Queue) disabled() bool {
	return atomic.LoadUint32(q.word(q.lay.DsTxOff)) != 0 || atomic.LoadUint32(q.word(q.lay.DsRxOff)) != 0
}

// hwError records a hardware error and disables the queue (the kernel's
// response to an AEQ/hardware error for a qp, §2.2, §6.4).
func (q *Queue) hwError() {
	q.d.hwErrors.Add(1)
	q.Disable(true, true)
}

// Doorbell implements uacce.Queue: it decodes the 64-bit value like the QM
// (§2.5) and validates it; a malformed doorbell (wrong offset, qn not this
// queue's, index outside the ring, a kernel-only command, an SQ tail that
// laps unfetched SQEs, a CQ head past the CQEs written) is a hardware error
// (qm_db_random_invalid-like, §6.4) that disables the queue.
func (q *Queue) Doorbell(off int, v uint64) error {
	q.mu.Lock()
	bad, err := q.doorbellLocked(off, v)
	q.mu.Unlock()
	if bad {
		q.hwError()
	}
	return err
}

func (q *Queue) doorbellLocked(off int, v uint64) (hwErr bool, err error) {
	if q.closed {
		return false, uacce.ErrClosed
	}
	if off < 0 || off+8 > len(q.mmio) || off%8 != 0 {
		return false, fmt.Errorf("emu: %s qp %d: doorbell offset %#x outside MMIO", q.d.name, q.id, off)
	}
	// unsafe: off is 8-aligned inside the 8-aligned MMIO page.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&q.mmio[off])), v)
	db := qm.DecodeDoorbell(q.info.APIVersion, v)
	depth := uint16(q.info.SQDepth)
	if off != qm.DoorbellOffset(q.info.APIVersion) || db.QN != q.id || db.Index >= depth {
		return true, nil
	}
	switch db.Cmd {
	case qm.DBSQ:
		// The tail only moves forward over free slots: a new tail that is
		// nearer the device head than the old one went backwards or lapped
		// SQEs the device has not fetched yet (a driver ignoring the
		// depth-1 credit, §2.5).
		pending := (q.sqTail + depth - q.sqHead) % depth
		if (db.Index+depth-q.sqHead)%depth < pending {
			return true, nil
		}
		now := time.Now()
		for i := q.sqTail; i != db.Index; i = (i + 1) % depth {
			q.arrivals[i] = now
		}
		q.sqTail = db.Index
		select {
		case q.kick <- struct{}{}:
		default:
		}
	case qm.DBCQ:
		acked := int((db.Index + uint16(q.info.CQDepth) - q.cqHeadDB) % uint16(q.info.CQDepth))
		if acked > q.cqPending {
			return true, nil // head moved past entries the device never wrote
		}
		q.cqPending -= acked
		q.cqHeadDB = db.Index
		q.armed = db.Priority == 1
	default:
		return true, nil // EQ/AEQ doorbells are the kernel's
	}
	return false, nil
}

// Wait implements uacce.Queue like poll() on the queue fd (§1.6): ready at
// once when posted CQEs are not yet acknowledged (the kernel's is_q_updated
// walks the CQ the same way) or the queue is disabled; otherwise it waits for
// the next CQE. The emulator wakes whether or not the driver armed the event.
func (q *Queue) Wait(timeout time.Duration) (bool, error) {
	// A post after the state check leaves a token in q.event, so no wake-up
	// is lost between the check and the select.
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false, uacce.ErrClosed
	}
	if q.cqPending > 0 || q.disabled() {
		q.mu.Unlock()
		return true, nil
	}
	q.mu.Unlock()
	if timeout <= 0 {
		return false, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-q.event:
		return true, nil
	case <-t.C:
		return false, nil
	case <-q.stop:
		return false, uacce.ErrClosed
	}
}

// wake releases Wait callers and calls the notify hook.
// Safe with or without q.mu held.
func (q *Queue) wake() {
	select {
	case q.event <- struct{}{}:
	default:
	}
	if fn := q.notify.Load(); fn != nil {
		(*fn)()
	}
}

// Map implements uacce.Mapper: registers b under addr (reference counted).
func (q *Queue) Map(addr uint64, b []byte) {
	q.mapMu.Lock()
	defer q.mapMu.Unlock()
	if m, ok := q.maps[addr]; ok {
		m.refs++
		if len(b) > len(m.b) {
			m.b = b
		}
		q.maps[addr] = m
		return
	}
	q.maps[addr] = mapping{b: b, refs: 1}
}

// Unmap implements uacce.Mapper. It waits while the engine is using the
// buffer (like an IOMMU unmap waiting for in-flight DMA), so after it
// returns the device never touches the buffer again.
func (q *Queue) Unmap(addr uint64) {
	q.mapMu.Lock()
	defer q.mapMu.Unlock()
	for q.maps[addr].busy > 0 {
		q.mapCond.Wait()
	}
	m, ok := q.maps[addr]
	if !ok {
		return
	}
	if m.refs--; m.refs <= 0 {
		delete(q.maps, addr)
		return
	}
	q.maps[addr] = m
}

// acquire looks up a registered buffer of at least n bytes at addr and marks
// it busy; ok is false when there is none (a translation fault).
func (q *Queue) acquire(addr uint64, n int) ([]byte, bool) {
	q.mapMu.Lock()
	defer q.mapMu.Unlock()
	m, ok := q.maps[addr]
	if !ok || len(m.b) < n {
		return nil, false
	}
	m.busy++
	q.maps[addr] = m
	return m.b[:n], true
}

// releaseMap ends the engine's use of the buffers acquired at these addresses.
func (q *Queue) releaseMap(addrs ...uint64) {
	q.mapMu.Lock()
	for _, a := range addrs {
		if m, ok := q.maps[a]; ok {
			m.busy--
			q.maps[a] = m
		}
	}
	q.mapMu.Unlock()
	q.mapCond.Broadcast()
}

// Close implements uacce.Queue: PUT_Q semantics — the engine stops and is
// waited for, so no buffer is touched afterwards — then the qp id returns
// to the budget (available_instances goes up). Idempotent.
func (q *Queue) Close() error {
	q.closeOne.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		<-q.done
		q.d.release(q)
	})
	return nil
}

// postCQE writes the CQE for slot after its SQE write-back (§2.3, §6.5):
// sq_head/sq_num first, then the word holding the phase with an atomic store,
// so a driver that sees the phase also sees the write-back. CQ overflow
// disables the queue like the kernel's AEQ handler (§2.2).
func (q *Queue) postCQE(slot uint16) {
	q.mu.Lock()
	if q.cqPending >= q.info.CQDepth {
		q.mu.Unlock()
		q.hwError()
		return
	}
	off := q.lay.CQOff + int(q.cqTail)*qm.CQESize
	binary.LittleEndian.PutUint16(q.dus[off+qm.CQEOffSQHead:], slot)
	qn := q.id
	if q.d.wrongQN.Load() {
		qn ^= 0x200 // another qp number, as a VF may report (§2.3)
	}
	binary.LittleEndian.PutUint16(q.dus[off+qm.CQEOffSQNum:], qn)
	atomic.StoreUint32(q.word(off+qm.CQEOffPhaseWord), q.cqPhase<<16)
	if q.cqTail++; int(q.cqTail) == q.info.CQDepth {
		q.cqTail = 0
		q.cqPhase ^= 1
	}
	q.cqPending++
	q.mu.Unlock()
	q.wake()
}
