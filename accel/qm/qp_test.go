package qm

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/accelfs/accelfs/accel/uacce"
)

// fakeQueue is a scripted device for protocol tests: the test plays the
// hardware by writing CQEs itself.
type fakeQueue struct {
	info   uacce.QueueInfo
	dus    []byte
	mmio   []byte
	dbs    []uint64
	closed bool
	// device-side CQ state
	cqTail  int
	cqPhase uint16
}

func newFake(t *testing.T, depth, api int) *fakeQueue {
	t.Helper()
	lay, err := DUSLayout(SQESize, depth, depth, 4096)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]uint64, lay.Size/8)
	m := make([]uint64, 8192/8)
	return &fakeQueue{
		info:    uacce.QueueInfo{Device: "fake-0", APIVersion: api, QPID: 5, SQESize: SQESize, SQDepth: depth, CQDepth: depth, PageSize: 4096},
		dus:     unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), lay.Size),
		mmio:    unsafe.Slice((*byte)(unsafe.Pointer(&m[0])), 8192),
		cqPhase: 1,
	}
}

func (f *fakeQueue) Info() uacce.QueueInfo { return f.info }
func (f *fakeQueue) MMIO() []byte          { return f.mmio }
func (f *fakeQueue) DUS() []byte           { return f.dus }
func (f *fakeQueue) Doorbell(off int, v uint64) error {
	if off != DoorbellOffset(f.info.APIVersion) {
		panic("wrong doorbell offset")
	}
	f.dbs = append(f.dbs, v)
	return nil
}
func (f *fakeQueue) Wait(time.Duration) (bool, error) { return false, nil }
func (f *fakeQueue) Close() error                     { f.closed = true; return nil }

// post writes a CQE naming slot for qp qn with the device's phase.
func (f *fakeQueue) post(slot, qn uint16) {
	lay, _ := DUSLayout(SQESize, f.info.SQDepth, f.info.CQDepth, 4096)
	off := lay.CQOff + f.cqTail*CQESize
	binary.LittleEndian.PutUint16(f.dus[off+CQEOffSQHead:], slot)
	binary.LittleEndian.PutUint16(f.dus[off+CQEOffSQNum:], qn)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&f.dus[off+CQEOffPhaseWord])), uint32(f.cqPhase)<<16)
	if f.cqTail++; f.cqTail == f.info.CQDepth {
		f.cqTail, f.cqPhase = 0, f.cqPhase^1
	}
}

func (f *fakeQueue) setDS(off int) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&f.dus[off])), 1)
}

func TestQPCreditsPhaseAndDoorbells(t *testing.T) {
	for _, api := range []int{1, 2, 3} {
		f := newFake(t, 4, api)
		p, err := NewQP(f, QPOptions{Interrupt: true})
		if err != nil {
			t.Fatal(err)
		}
		sqe := make([]byte, SQESize)
		// 5 rounds of filling the 4-deep ring with 3 (= depth-1) SQEs wrap both rings.
		slot := uint16(0)
		for round := 0; round < 5; round++ {
			for i := 0; i < 3; i++ {
				sqe[0] = byte(round*3 + i)
				if err := p.Send(sqe); err != nil {
					t.Fatalf("api %d round %d send %d: %v", api, round, i, err)
				}
			}
			if err := p.Send(sqe); !errors.Is(err, ErrBusy) {
				t.Fatalf("4th send on depth 4: %v", err)
			}
			last := DecodeDoorbell(api, f.dbs[len(f.dbs)-1])
			if last.Cmd != DBSQ || last.QN != 5 || last.Index != (slot+3)%4 || last.Priority != 0 {
				t.Fatalf("SQ doorbell %+v", last)
			}
			if ok, err := p.Recv(func(CQE, []byte) { t.Fatal("nothing posted yet") }); ok || err != nil {
				t.Fatal("empty CQ reported an entry")
			}
			for i := 0; i < 3; i++ {
				f.post(slot, 5)
				var got byte
				ok, err := p.Recv(func(c CQE, b []byte) { got = b[0] })
				if !ok || err != nil || got != byte(round*3+i) {
					t.Fatalf("round %d recv %d: ok=%v err=%v got %d", round, i, ok, err, got)
				}
				slot = (slot + 1) % 4
				cq := DecodeDoorbell(api, f.dbs[len(f.dbs)-1])
				if cq.Cmd != DBCQ || cq.Priority != 1 || int(cq.Index) != f.cqTail {
					t.Fatalf("CQ doorbell %+v (device tail %d)", cq, f.cqTail)
				}
			}
			if p.InFlight() != 0 {
				t.Fatal("credits not returned")
			}
		}
	}
}

func TestQPDisabledAndProtocol(t *testing.T) {
	f := newFake(t, 8, 2)
	p, _ := NewQP(f, QPOptions{})
	sqe := make([]byte, SQESize)
	p.Send(sqe)
	f.post(9, 5) // a slot outside the SQ
	if _, err := p.Recv(func(CQE, []byte) {}); !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("CQE outside the SQ: %v", err)
	}
	f.setDS(p.Layout().DsTxOff)
	if err := p.Send(sqe); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("ds_tx: %v", err)
	}
	f.setDS(p.Layout().DsRxOff)
	if _, err := p.Recv(func(CQE, []byte) {}); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("ds_rx: %v", err)
	}
	if err := p.Send(make([]byte, 64)); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("short SQE: %v", err)
	}
}

// Arm rings a CQ doorbell at the current head with priority 1 on a polling
// queue (whose own CQ doorbells carry priority 0).
func TestQPArm(t *testing.T) {
	f := newFake(t, 4, 2)
	p, _ := NewQP(f, QPOptions{})
	p.Send(make([]byte, SQESize))
	f.post(0, 5)
	p.Recv(func(CQE, []byte) {})
	if db := DecodeDoorbell(2, f.dbs[len(f.dbs)-1]); db.Cmd != DBCQ || db.Priority != 0 {
		t.Fatalf("polling CQ doorbell %+v", db)
	}
	if err := p.Arm(); err != nil {
		t.Fatal(err)
	}
	if db := DecodeDoorbell(2, f.dbs[len(f.dbs)-1]); db.Cmd != DBCQ || db.Priority != 1 || db.Index != 1 || db.QN != 5 {
		t.Fatalf("arm doorbell %+v", db)
	}
	f.setDS(p.Layout().DsRxOff)
	if err := p.Arm(); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("arm on ds_rx: %v", err)
	}
}

// A completion whose CQE names another qp number completes normally and is
// counted: the kernel and UADK ignore sq_num (a VF may report another
// number), so treating it as a protocol error would kill healthy queues.
func TestQPForeignQNAccepted(t *testing.T) {
	f := newFake(t, 8, 2)
	p, _ := NewQP(f, QPOptions{})
	sqe := make([]byte, SQESize)
	sqe[0] = 42
	if err := p.Send(sqe); err != nil {
		t.Fatal(err)
	}
	f.post(0, 6) // another qp number
	var got byte
	ok, err := p.Recv(func(_ CQE, b []byte) { got = b[0] })
	if !ok || err != nil || got != 42 {
		t.Fatalf("CQE with qn 6 on qp 5: ok=%v err=%v got %d", ok, err, got)
	}
	if p.QNMismatches() != 1 || p.InFlight() != 0 {
		t.Fatalf("mismatches %d, in flight %d", p.QNMismatches(), p.InFlight())
	}
}

// A completion whose write-back carries a tag the queue never issued kills
// the queue, and the request in flight is still delivered exactly once.
func TestZipQueueUnknownTag(t *testing.T) {
	f := newFake(t, 8, 3)
	z, err := NewZipQueue(f, ZipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &ZipRequest{Alg: AlgDeflate, Src: []byte("hello"), Dst: make([]byte, 0, 64)}
	if err := z.Submit(r); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(f.dus[4*DWTagV3:], 0x80000007) // device scribbles the tag
	f.post(0, 5)
	var got []*ZipRequest
	n, err := z.Poll(0, func(r *ZipRequest) { got = append(got, r) })
	if n != 1 || !errors.Is(err, ErrProtocol) || len(got) != 1 || got[0] != r || !errors.Is(r.Err, ErrQueueDisabled) {
		t.Fatalf("poll: n=%d err=%v req.Err=%v", n, err, r.Err)
	}
	if n, err := z.Poll(0, func(*ZipRequest) {}); n != 0 || !errors.Is(err, ErrProtocol) {
		t.Fatalf("dead queue: %v", err)
	}
	if err := z.Submit(&ZipRequest{Alg: AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("submit on dead queue: %v", err)
	}
	if z.InFlight() != 0 {
		t.Fatal("in-flight count")
	}
}

// The device claims more output than the space it was given.
func TestZipQueueProducedOverflow(t *testing.T) {
	f := newFake(t, 8, 3)
	z, _ := NewZipQueue(f, ZipOptions{})
	r := &ZipRequest{Alg: AlgDeflate, Src: []byte("hello"), Dst: make([]byte, 0, 64)}
	z.Submit(r)
	binary.LittleEndian.PutUint32(f.dus[4*DWProduced:], 65)
	binary.LittleEndian.PutUint32(f.dus[4*DWConsumed:], 5)
	f.post(0, 5)
	var got *ZipRequest
	z.Poll(0, func(r *ZipRequest) { got = r })
	if got != r || !errors.Is(r.Err, ErrProtocol) || r.Out != nil {
		t.Fatalf("overflow not caught: %v", r.Err)
	}
}

func TestZipQueueBadRequests(t *testing.T) {
	f := newFake(t, 8, 2)
	z, _ := NewZipQueue(f, ZipOptions{})
	for i, r := range []*ZipRequest{
		{Alg: AlgLZ77Zstd, Src: []byte("x"), Dst: make([]byte, 64)},
		{Alg: AlgDeflate, Src: nil, Dst: make([]byte, 64)},
		{Alg: AlgDeflate, Src: make([]byte, 8<<20+1), Dst: make([]byte, 64)},
		{Alg: AlgGzip, Src: []byte("x"), Dst: make([]byte, 10)}, // no room after the header
		{Alg: AlgZlib, Src: []byte("x"), Dst: make([]byte, 12)}, // v1 layout needs >= 16 bytes of space
	} {
		if err := z.Submit(r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if z.InFlight() != 0 || z.qp.InFlight() != 0 {
		t.Fatal("rejected requests hold credits")
	}
	fd := newFake(t, 8, 2)
	fd.info.Direction = uacce.Decompress
	zd, _ := NewZipQueue(fd, ZipOptions{})
	for i, r := range []*ZipRequest{
		{Alg: AlgZlib, Src: []byte{0x78, 0x9c}, Dst: make([]byte, 64)},                        // header only
		{Alg: AlgGzip, Src: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, Dst: make([]byte, 64)}, // bad magic
		{Alg: AlgDeflate, Src: []byte{1}, Dst: nil},                                           // no output space
		{Alg: AlgLZ4, Src: []byte{0x10, 'x'}, Dst: make([]byte, 64)},                          // lz4 is compression-only
	} {
		if err := zd.Submit(r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("decompress case %d: %v", i, err)
		}
	}
}

// ds_tx refuses new requests, but those in flight still complete; ds_rx
// then fails whatever is left, exactly once.
func TestZipQueueTxThenRx(t *testing.T) {
	f := newFake(t, 8, 3)
	z, _ := NewZipQueue(f, ZipOptions{})
	mk := func() *ZipRequest { return &ZipRequest{Alg: AlgDeflate, Src: []byte("abc"), Dst: make([]byte, 0, 64)} }
	a, b := mk(), mk()
	if z.Submit(a) != nil || z.Submit(b) != nil {
		t.Fatal("submit")
	}
	lay := z.qp.Layout()
	f.setDS(lay.DsTxOff)
	if err := z.Submit(mk()); !errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("ds_tx submit: %v", err)
	}
	// the device completes a: consumed all, produced 2, status 0
	binary.LittleEndian.PutUint32(f.dus[0:], 3)
	binary.LittleEndian.PutUint32(f.dus[4:], 2)
	f.post(0, 5)
	var got []*ZipRequest
	n, err := z.Poll(0, func(r *ZipRequest) { got = append(got, r) })
	if n != 1 || err != nil || got[0] != a || a.Err != nil || len(a.Out) != 2 {
		t.Fatalf("completion after ds_tx: n=%d err=%v a.Err=%v", n, err, a.Err)
	}
	f.setDS(lay.DsRxOff)
	n, err = z.Poll(0, func(r *ZipRequest) { got = append(got, r) })
	if n != 1 || !errors.Is(err, ErrQueueDisabled) || got[1] != b || !errors.Is(b.Err, ErrQueueDisabled) {
		t.Fatalf("ds_rx: n=%d err=%v b.Err=%v", n, err, b.Err)
	}
	if z.InFlight() != 0 {
		t.Fatal("in flight")
	}
}

// slowDBQueue is a fakeQueue whose SQ doorbell takes a while and whose
// Close records whether it ran while a doorbell was in progress: on a real
// queue Close unmaps the regions, so a Send still copying SQEs or ringing
// the doorbell would fault (uacce.Queue: Close must not race with Doorbell).
type slowDBQueue struct {
	*fakeQueue
	inDB     atomic.Bool
	entered  chan struct{}
	overlaps atomic.Int32
}

func (s *slowDBQueue) Doorbell(off int, v uint64) error {
	s.inDB.Store(true)
	defer s.inDB.Store(false)
	if DecodeDoorbell(s.info.APIVersion, v).Cmd == DBSQ {
		close(s.entered)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (s *slowDBQueue) Close() error {
	if s.inDB.Load() {
		s.overlaps.Add(1)
	}
	return nil
}

// Closing (or killing) a ZipQueue while a Submit is ringing the SQ doorbell
// waits for the Submit: the uacce queue is never closed under it.
func TestZipQueueCloseWaitsForSubmit(t *testing.T) {
	q := &slowDBQueue{fakeQueue: newFake(t, 8, 3), entered: make(chan struct{})}
	z, err := NewZipQueue(q, ZipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &ZipRequest{Alg: AlgDeflate, Src: []byte("hello"), Dst: make([]byte, 0, 64)}
	done := make(chan error, 1)
	go func() { done <- z.Submit(r) }()
	select {
	case <-q.entered:
	case <-time.After(60 * time.Second): // hang guard
		t.Fatal("submit never rang the doorbell")
	}
	z.Close()
	if err := <-done; err != nil {
		t.Fatalf("submit: %v", err)
	}
	if q.overlaps.Load() != 0 {
		t.Fatal("queue closed while a Submit was ringing its doorbell")
	}
	var got []*ZipRequest
	if n, err := z.Poll(0, func(r *ZipRequest) { got = append(got, r) }); n != 1 || got[0] != r || !errors.Is(r.Err, ErrClosed) || !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: n=%d err=%v req.Err=%v", n, err, r.Err)
	}
}

// Values the device writes are untrusted: a CQE naming a slot outside the
// SQ, a completion with nothing in flight, consumed beyond the input and a
// stale tag (right index, old generation) are protocol errors, never a
// panic or a wrong request completed.
func TestUntrustedDeviceValues(t *testing.T) {
	f := newFake(t, 8, 2)
	p, _ := NewQP(f, QPOptions{})
	f.post(8, 5) // slot == depth
	if _, err := p.Recv(func(CQE, []byte) { t.Fatal("fn called") }); !errors.Is(err, ErrProtocol) {
		t.Fatalf("sq_head out of range: %v", err)
	}
	f = newFake(t, 8, 2)
	p, _ = NewQP(f, QPOptions{})
	f.post(0, 5) // nothing was sent
	if _, err := p.Recv(func(CQE, []byte) { t.Fatal("fn called") }); !errors.Is(err, ErrProtocol) {
		t.Fatalf("completion with nothing in flight: %v", err)
	}

	f = newFake(t, 8, 3)
	z, _ := NewZipQueue(f, ZipOptions{})
	r := &ZipRequest{Alg: AlgDeflate, Src: []byte("hello"), Dst: make([]byte, 0, 64)}
	z.Submit(r)
	binary.LittleEndian.PutUint32(f.dus[4*DWConsumed:], 6) // > 5 bytes given
	f.post(0, 5)
	z.Poll(0, func(*ZipRequest) {})
	if !errors.Is(r.Err, ErrProtocol) || r.Out != nil {
		t.Fatalf("consumed > input: %v", r.Err)
	}

	f = newFake(t, 8, 3)
	z, _ = NewZipQueue(f, ZipOptions{})
	a := &ZipRequest{Alg: AlgDeflate, Src: []byte("a"), Dst: make([]byte, 0, 64)}
	z.Submit(a)
	stale := binary.LittleEndian.Uint32(f.dus[4*DWTagV3:])
	binary.LittleEndian.PutUint32(f.dus[4*DWConsumed:], 1)
	f.post(0, 5)
	if n, err := z.Poll(0, func(*ZipRequest) {}); n != 1 || err != nil || a.Err != nil {
		t.Fatalf("first request: n=%d err=%v req %v", n, err, a.Err)
	}
	b := &ZipRequest{Alg: AlgDeflate, Src: []byte("b"), Dst: make([]byte, 0, 64)}
	z.Submit(b) // reuses a's table index with a new generation, in slot 1
	if now := binary.LittleEndian.Uint32(f.dus[SQESize+4*DWTagV3:]); now&0xffff != stale&0xffff || now == stale {
		t.Fatalf("tags %#x then %#x: want same index, new generation", stale, now)
	}
	binary.LittleEndian.PutUint32(f.dus[SQESize+4*DWTagV3:], stale) // device writes back a's old tag
	f.post(1, 5)
	if n, err := z.Poll(0, func(*ZipRequest) {}); n != 1 || !errors.Is(err, ErrProtocol) || !errors.Is(b.Err, ErrQueueDisabled) {
		t.Fatalf("stale tag: n=%d err=%v req %v", n, err, b.Err)
	}
}

// instantQueue completes every request inside the SQ doorbell and polls it
// right there, as a fast device with a concurrent poller can: the poller
// may deliver a request before Submit has returned.
type instantQueue struct {
	*fakeQueue
	z        *ZipQueue
	inFlight []int // z.InFlight() seen by the poller after each delivery
}

func (q *instantQueue) Doorbell(off int, v uint64) error {
	q.fakeQueue.Doorbell(off, v)
	d := DecodeDoorbell(q.info.APIVersion, v)
	if d.Cmd != DBSQ {
		return nil
	}
	slot := (d.Index + uint16(q.info.SQDepth) - 1) % uint16(q.info.SQDepth)
	binary.LittleEndian.PutUint32(q.dus[int(slot)*SQESize+4*DWConsumed:], 1)
	q.post(slot, 5)
	q.z.Poll(0, func(*ZipRequest) { q.inFlight = append(q.inFlight, q.z.InFlight()) })
	return nil
}

// InFlight never goes negative: a request is counted before the doorbell
// that lets the device complete it.
func TestInFlightCountedBeforeDoorbell(t *testing.T) {
	q := &instantQueue{fakeQueue: newFake(t, 8, 3)}
	z, err := NewZipQueue(q, ZipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.z = z
	for i := 0; i < 3; i++ {
		r := &ZipRequest{Alg: AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}
		if err := z.Submit(r); err != nil {
			t.Fatal(err)
		}
		if r.Err != nil || z.InFlight() != 0 {
			t.Fatalf("request %d: err %v, in flight %d after delivery", i, r.Err, z.InFlight())
		}
	}
	for i, n := range q.inFlight {
		if n != 0 {
			t.Fatalf("delivery %d: InFlight() = %d while Submit was still running", i, n)
		}
	}
	if len(q.inFlight) != 3 {
		t.Fatalf("%d deliveries", len(q.inFlight))
	}
}

// TestDecompressCompletionStatus pins how a decompression completion is
// judged (§3.2): 0x13 + last block, or plain 0 with all input consumed, is
// success (real block-mode hardware may report 0, see zip.go); running out
// of input or of output space is an error, never a short success.
func TestDecompressCompletionStatus(t *testing.T) {
	src := []byte("0123456789")
	for _, c := range []struct {
		name     string
		status   uint16
		consumed uint32
		ctxSt    uint32
		want     error // nil = success
	}{
		{"end of stream", StatusDecompEnd | StatusLastBlock, 10, 0, nil},
		{"plain success, all consumed", StatusOK, 10, 0, nil},
		{"plain 0, input left over", StatusOK, 6, 0, ErrIncomplete},
		{"0x13 without last block", StatusDecompEnd, 10, 0, ErrIncomplete},
		{"no space (ctx_st 1)", StatusOK, 10, CtxStNoSpace, ErrOutputTooSmall},
		{"no space (ctx_st 2)", StatusDecompEnd | StatusLastBlock, 10, CtxStDecompingNS, ErrOutputTooSmall},
		{"dst too small status", StatusDstLenOut, 10, 0, ErrOutputTooSmall},
		{"crc error", StatusCRC, 10, 0, ErrHardware},
	} {
		f := newFake(t, 8, 3)
		f.info.Direction = uacce.Decompress
		z, err := NewZipQueue(f, ZipOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := &ZipRequest{Alg: AlgDeflate, Src: src, Dst: make([]byte, 0, 64)}
		if err := z.Submit(r); err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		le.PutUint32(f.dus[4*DWStatus:], uint32(c.status))
		le.PutUint32(f.dus[4*DWConsumed:], c.consumed)
		le.PutUint32(f.dus[4*DWProduced:], 20)
		le.PutUint32(f.dus[4*DWCtx0:], c.ctxSt)
		f.post(0, 5)
		var got *ZipRequest
		if _, err := z.Poll(0, func(r *ZipRequest) { got = r }); err != nil || got != r {
			t.Fatalf("%s: poll: %v", c.name, err)
		}
		switch {
		case c.want == nil && (r.Err != nil || len(r.Out) != 20):
			t.Errorf("%s: err %v, %d bytes out; want success with 20", c.name, r.Err, len(r.Out))
		case c.want != nil && !errors.Is(r.Err, c.want):
			t.Errorf("%s: err %v, want %v", c.name, r.Err, c.want)
		}
		z.Close()
	}
}
