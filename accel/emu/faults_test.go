package emu

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

func textBlock(n int) []byte {
	return bytes.Repeat([]byte("fault injection is a seam "), n/26+1)[:n]
}

func TestInjectedErrorStatus(t *testing.T) {
	d := newTestDevice(t, Options{})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	d.SetFaults(Faults{ErrorEvery: 3, ErrorStatus: qm.StatusCRC})
	var reqs []*qm.ZipRequest
	for i := 0; i < 30; i++ {
		reqs = append(reqs, &qm.ZipRequest{Alg: qm.AlgZlib, Src: textBlock(4096), Dst: make([]byte, 0, 8192)})
	}
	runAll(t, cz, reqs)
	bad := 0
	for _, r := range reqs {
		var se *qm.StatusError
		switch {
		case r.Err == nil:
			if _, err := codec.Decompress(codec.Zlib, nil, r.Out, 4096); err != nil {
				t.Fatal("good request has bad output")
			}
		case errors.As(r.Err, &se) && errors.Is(r.Err, qm.ErrHardware) && se.Status == qm.StatusCRC && r.Out == nil:
			bad++
		default:
			t.Fatalf("unexpected error %v", r.Err)
		}
	}
	if bad != 10 || d.Stats().Injected != 10 {
		t.Fatalf("%d injected errors, want 10 (stats %+v)", bad, d.Stats())
	}
	d.SetFaults(Faults{ErrorRate: 1})
	r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(100), Dst: make([]byte, 0, 200)}
	do(t, cz, r)
	if !errors.Is(r.Err, qm.ErrHardware) || r.Status != qm.StatusInDIF {
		t.Fatalf("ErrorRate 1: %v status %#x", r.Err, r.Status)
	}
}

func TestOutputTooSmall(t *testing.T) {
	d := newTestDevice(t, Options{})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
	rnd := make([]byte, 4096)
	for i := range rnd {
		rnd[i] = byte(rand.Uint32())
	}
	// real: random data does not fit in 1 KiB
	r := &qm.ZipRequest{Alg: qm.AlgGzip, Src: rnd, Dst: make([]byte, 0, 1024)}
	do(t, cz, r)
	if !errors.Is(r.Err, qm.ErrOutputTooSmall) || r.Status != qm.StatusDstLenOut {
		t.Fatalf("compress too small: %v %#x", r.Err, r.Status)
	}
	// decompression into too little space: ctx_st DECOMPING_NO_SPACE
	src := textBlock(50000)
	cc, _ := codec.Compress(codec.Deflate, 0, nil, src)
	r = &qm.ZipRequest{Alg: qm.AlgDeflate, Src: cc, Dst: make([]byte, 0, 49999)}
	do(t, dz, r)
	if !errors.Is(r.Err, qm.ErrOutputTooSmall) || r.CtxSt != qm.CtxStDecompingNS {
		t.Fatalf("decompress too small: %v ctx_st %d", r.Err, r.CtxSt)
	}
	// exactly enough space works
	r = &qm.ZipRequest{Alg: qm.AlgDeflate, Src: cc, Dst: make([]byte, 0, 50000)}
	do(t, dz, r)
	if r.Err != nil || !bytes.Equal(r.Out, src) {
		t.Fatalf("exact space: %v", r.Err)
	}
	// injected
	d.SetFaults(Faults{TooSmallRate: 1})
	r = &qm.ZipRequest{Alg: qm.AlgDeflate, Src: src, Dst: make([]byte, 0, 60000)}
	do(t, cz, r)
	if !errors.Is(r.Err, qm.ErrOutputTooSmall) {
		t.Fatalf("injected too small: %v", r.Err)
	}
}

func TestBadCompressedInput(t *testing.T) {
	d := newTestDevice(t, Options{})
	dz := openZip(t, d, uacce.Decompress, qm.ZipOptions{})
	src := textBlock(20000)
	for _, a := range algs {
		cc, _ := codec.Compress(a.id, 0, nil, src)
		// truncated body: the input ends before the end of the stream
		r := &qm.ZipRequest{Alg: a.alg, Src: cc[:len(cc)/2], Dst: make([]byte, 0, len(src))}
		do(t, dz, r)
		if !errors.Is(r.Err, qm.ErrIncomplete) {
			t.Errorf("%v truncated: %v (status %#x)", a.alg, r.Err, r.Status)
		}
		// missing trailer (zlib/gzip)
		if a.alg != qm.AlgDeflate {
			r = &qm.ZipRequest{Alg: a.alg, Src: cc[:len(cc)-2], Dst: make([]byte, 0, len(src))}
			do(t, dz, r)
			if !errors.Is(r.Err, qm.ErrIncomplete) {
				t.Errorf("%v no trailer: %v", a.alg, r.Err)
			}
			// checksum mismatch -> 0x10
			bad := bytes.Clone(cc)
			if a.alg == qm.AlgZlib {
				bad[len(bad)-1] ^= 0xff // Adler-32
			} else {
				bad[len(bad)-5] ^= 0xff // CRC-32
			}
			r = &qm.ZipRequest{Alg: a.alg, Src: bad, Dst: make([]byte, 0, len(src))}
			do(t, dz, r)
			var se *qm.StatusError
			if !errors.As(r.Err, &se) || se.Status != qm.StatusCRC {
				t.Errorf("%v bad checksum: %v", a.alg, r.Err)
			}
		}
	}
	// garbage
	r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: []byte{0xff, 0xff, 0xff, 0xff, 0xff}, Dst: make([]byte, 0, 100)}
	do(t, dz, r)
	if !errors.Is(r.Err, qm.ErrHardware) || r.Status != StatusBadData {
		t.Fatalf("garbage: %v", r.Err)
	}
	// an algorithm the device does not offer
	d2 := newTestDevice(t, Options{Algorithms: []string{"deflate"}})
	cz2 := openZip(t, d2, uacce.Compress, qm.ZipOptions{})
	r = &qm.ZipRequest{Alg: qm.AlgGzip, Src: src, Dst: make([]byte, 0, len(src))}
	do(t, cz2, r)
	if !errors.Is(r.Err, qm.ErrHardware) || r.Status != StatusUnsupported {
		t.Fatalf("unsupported alg: %v", r.Err)
	}
}

// emuQueue digs the emulated queue out of a ZipQueue's device.
func emuQueue(t *testing.T, d *Device, z *qm.ZipQueue) *Queue {
	t.Helper()
	q := d.Queue(z.Info().QPID)
	if q == nil {
		t.Fatal("no such queue")
	}
	return q
}

// fill submits n requests and returns them; the device is slowed so they
// stay in flight.
func fill(t *testing.T, z *qm.ZipQueue, n int) []*qm.ZipRequest {
	t.Helper()
	var reqs []*qm.ZipRequest
	for i := 0; i < n; i++ {
		r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(1000 + i), Dst: make([]byte, 0, 4096)}
		if err := z.Submit(r); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// drain polls until every request is delivered (bounded) and returns the
// poll error seen.
func drain(t *testing.T, z *qm.ZipQueue, reqs []*qm.ZipRequest) error {
	t.Helper()
	seen := map[*qm.ZipRequest]int{}
	var last error
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for len(seen) < len(reqs) {
		n, err := z.Poll(0, func(r *qm.ZipRequest) { seen[r]++ })
		if err != nil {
			last = err
		}
		if n == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d delivered", len(seen), len(reqs))
			}
			z.Wait(time.Millisecond)
		}
	}
	for r, c := range seen {
		if c != 1 {
			t.Fatalf("request delivered %d times", c)
		}
		_ = r
	}
	return last
}

func TestQueueFullIsBusy(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 4})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	emuQueue(t, d, cz).SetLatency(time.Hour)
	reqs := fill(t, cz, 3) // depth-1
	if err := cz.Submit(&qm.ZipRequest{Alg: qm.AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}); !errors.Is(err, qm.ErrBusy) || !errors.Is(err, uacce.ErrBusy) {
		t.Fatalf("4th request on depth 4: %v", err)
	}
	if n, _ := cz.SubmitBatch([]*qm.ZipRequest{{Alg: qm.AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}}); n != 0 {
		t.Fatal("batch accepted beyond capacity")
	}
	// Close gets the buffers back: every request is delivered with ErrClosed.
	start := time.Now()
	cz.Close()
	if err := drain(t, cz, reqs); !errors.Is(err, qm.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	for _, r := range reqs {
		if !errors.Is(r.Err, qm.ErrClosed) {
			t.Fatalf("in-flight request: %v", r.Err)
		}
	}
	if time.Since(start) > time.Minute { // the latency is an hour
		t.Fatal("close waited for the modelled latency")
	}
}

func TestQueueDisabled(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 16})
	// ds_tx: sending refused before the doorbell
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	q := emuQueue(t, d, cz)
	q.SetLatency(20 * time.Millisecond)
	inflight := fill(t, cz, 5)
	q.Disable(true, false)
	if err := cz.Submit(&qm.ZipRequest{Alg: qm.AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}); !errors.Is(err, qm.ErrQueueDisabled) {
		t.Fatalf("ds_tx: %v", err)
	}
	// what was submitted before ds_tx still completes (the device drains)
	drain(t, cz, inflight)
	for i, r := range inflight {
		if r.Err != nil {
			t.Fatalf("in-flight request %d after ds_tx: %v", i, r.Err)
		}
	}
	// ds_rx with requests in flight: all delivered once, with the error
	cz2 := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	q2 := emuQueue(t, d, cz2)
	q2.SetLatency(time.Hour)
	reqs := fill(t, cz2, 10)
	q2.Disable(false, true)
	if err := drain(t, cz2, reqs); !errors.Is(err, qm.ErrQueueDisabled) {
		t.Fatalf("ds_rx: %v", err)
	}
	for _, r := range reqs {
		if !errors.Is(r.Err, qm.ErrQueueDisabled) || r.Out != nil {
			t.Fatalf("request: %v", r.Err)
		}
	}
	if err := cz2.Submit(&qm.ZipRequest{Alg: qm.AlgDeflate, Src: []byte("x"), Dst: make([]byte, 0, 64)}); !errors.Is(err, qm.ErrQueueDisabled) {
		t.Fatalf("submit after disable: %v", err)
	}
}

// DisableAfter resets the queue in the middle of a stream of requests:
// every request is delivered exactly once, the completed ones are correct,
// the rest carry ErrQueueDisabled.
func TestDisableMidStream(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 64})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	d.SetFaults(Faults{DisableAfter: 40})
	var reqs []*qm.ZipRequest
	for i := 0; i < 63; i++ {
		reqs = append(reqs, &qm.ZipRequest{Alg: qm.AlgGzip, Src: textBlock(3000 + i), Dst: make([]byte, 0, 8192)})
	}
	if n, err := cz.SubmitBatch(reqs); n != 63 {
		t.Fatal(n, err)
	}
	if err := drain(t, cz, reqs); !errors.Is(err, qm.ErrQueueDisabled) {
		t.Fatalf("poll error %v", err)
	}
	ok := 0
	for i, r := range reqs {
		switch {
		case r.Err == nil:
			ok++
			back, err := codec.Decompress(codec.Gzip, nil, r.Out, 3000+i)
			if err != nil || !bytes.Equal(back, textBlock(3000+i)) {
				t.Fatal("completed request has wrong bytes")
			}
		case !errors.Is(r.Err, qm.ErrQueueDisabled):
			t.Fatalf("request %d: %v", i, r.Err)
		}
	}
	// The 40th request disables the queue before it completes; of the 39
	// before it, those qm had not consumed when it saw ds_rx fail too.
	if ok > 39 {
		t.Fatalf("%d completed: the disable did not happen at the 40th request", ok)
	}
}

func TestIsolate(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 8})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	emuQueue(t, d, cz).SetLatency(time.Hour)
	reqs := fill(t, cz, 5)
	if err := d.Isolate(); err != nil {
		t.Fatal(err)
	}
	devs, _ := d.Discover()
	if len(devs) != 1 || !devs[0].Isolated {
		t.Fatalf("discover after isolate: %+v", devs)
	}
	if _, err := uacce.Choose(devs, uacce.Want{Algorithm: "deflate"}); !errors.Is(err, uacce.ErrIsolated) {
		t.Fatalf("choose: %v", err)
	}
	if _, err := d.Open(devs[0], uacce.Compress); !errors.Is(err, uacce.ErrIsolated) {
		t.Fatalf("open: %v", err)
	}
	if err := drain(t, cz, reqs); !errors.Is(err, qm.ErrQueueDisabled) {
		t.Fatalf("open queue after isolate: %v", err)
	}
}

func TestQueueBudget(t *testing.T) {
	root := t.TempDir()
	sys, err := NewSystem(root, Options{ID: 0, Node: 0, Queues: 3}, Options{ID: 1, Node: 1, Queues: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	devs, err := sys.Discover()
	if err != nil || len(devs) != 2 || devs[0].Node != 0 || devs[1].Node != 1 {
		t.Fatalf("discover %+v %v", devs, err)
	}
	dev0 := devs[0]
	// Many openers at once: exactly the budget succeeds.
	var wg sync.WaitGroup
	var got, busy atomic.Int32
	var mu sync.Mutex
	var qs []uacce.Queue
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, err := sys.Open(dev0, uacce.Direction(i%2))
			switch {
			case err == nil:
				got.Add(1)
				mu.Lock()
				qs = append(qs, q)
				mu.Unlock()
			case errors.Is(err, uacce.ErrBusy):
				busy.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 3 || busy.Load() != 7 {
		t.Fatalf("opened %d, busy %d", got.Load(), busy.Load())
	}
	if n, err := uacce.ReadAvailable(&dev0); n != 0 || err != nil {
		t.Fatalf("available_instances %d %v", n, err)
	}
	ids := map[uint16]bool{}
	for _, q := range qs {
		ids[q.Info().QPID] = true
	}
	if len(ids) != 3 {
		t.Fatal("qp ids not unique")
	}
	// Choose with a fresh read now prefers the other node's device.
	if c, err := uacce.Choose(devs, uacce.Want{Algorithm: "zlib", Node: 0, Refresh: true}); err != nil || c.Name != "hisi_zip-1" {
		t.Fatalf("choose with full device: %s %v", c.Name, err)
	}
	qs[0].Close()
	qs[0].Close() // idempotent
	if n, _ := uacce.ReadAvailable(&dev0); n != 1 {
		t.Fatalf("available after close %d", n)
	}
	if _, err := sys.Open(uacce.Device{Name: "hisi_zip-7"}, uacce.Compress); !errors.Is(err, uacce.ErrNoDevice) {
		t.Fatalf("unknown device: %v", err)
	}
}

// rawQueue opens a queue without qm to play a misbehaving driver.
func rawQueue(t *testing.T, d *Device) (*Queue, qm.Layout) {
	q := openQueue(t, d, uacce.Compress).(*Queue)
	t.Cleanup(func() { q.Close() })
	return q, q.lay
}

func dsWords(q *Queue) (rx, tx uint32) {
	rx = atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.dus[q.lay.DsRxOff])))
	tx = atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.dus[q.lay.DsTxOff])))
	return
}

func TestBadDoorbells(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 8, Queues: 8})
	for i, db := range []struct {
		off int
		v   func(qn uint16) uint64
	}{
		{qm.DoorbellOffV2, func(qn uint16) uint64 { return qm.EncodeDoorbell(2, qm.Doorbell{QN: qn + 1, Cmd: qm.DBSQ, Index: 1}) }},
		{qm.DoorbellOffV2, func(qn uint16) uint64 { return qm.EncodeDoorbell(2, qm.Doorbell{QN: qn, Cmd: qm.DBSQ, Index: 8}) }},
		{qm.DoorbellOffV2, func(qn uint16) uint64 { return qm.EncodeDoorbell(2, qm.Doorbell{QN: qn, Cmd: qm.DBEQ, Index: 1}) }},
		{qm.DoorbellOffV1, func(qn uint16) uint64 { return qm.EncodeDoorbell(1, qm.Doorbell{QN: qn, Cmd: qm.DBSQ, Index: 1}) }},
		{qm.DoorbellOffV2, func(qn uint16) uint64 { return qm.EncodeDoorbell(2, qm.Doorbell{QN: qn, Cmd: qm.DBCQ, Index: 3}) }}, // acks CQEs never written
	} {
		q, _ := rawQueue(t, d)
		before := d.Stats().HWErrors
		if err := q.Doorbell(db.off, db.v(q.QPID())); err != nil {
			t.Fatal(err)
		}
		if rx, tx := dsWords(q); rx != 1 || tx != 1 || d.Stats().HWErrors != before+1 {
			t.Errorf("case %d: ds_rx %d ds_tx %d hw errors %d", i, rx, tx, d.Stats().HWErrors-before)
		}
	}
}

// A driver that never rings CQ doorbells overflows the CQ: the device
// disables the queue as the kernel does on the AEQ overflow event.
func TestCQOverflow(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 4})
	q, _ := rawQueue(t, d)
	ring := func(idx uint16) {
		q.Doorbell(qm.DoorbellOffV2, qm.EncodeDoorbell(2, qm.Doorbell{QN: q.QPID(), Cmd: qm.DBSQ, Index: idx}))
	}
	// All-zero SQEs (type 0, alg 0) complete with StatusUnsupported; each
	// still produces a CQE.
	ring(3)
	waitFor(t, func() bool { return d.Stats().Requests+d.Stats().HWErrors >= 3 })
	ring(0) // 4 outstanding CQEs: CQ full, not yet overflowing
	ring(1) // 5th completion has nowhere to go
	waitFor(t, func() bool { rx, tx := dsWords(q); return rx == 1 && tx == 1 })
	if d.Stats().HWErrors != 1 {
		t.Fatalf("hw errors %d", d.Stats().HWErrors)
	}
}

// An SQE naming memory nobody registered gets a translation fault status,
// and the device writes nothing.
func TestTranslationFault(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 4})
	q, lay := rawQueue(t, d)
	s := qm.ZipSQE{Type: qm.SQETypeV3, Alg: qm.AlgDeflate, InputLen: 10, DestAvailOut: 100, Finish: true, NewStream: true, Src: 0x1000, Dst: 0x2000, Tag: 42}
	s.Encode(q.dus[lay.SQOff:])
	q.Doorbell(qm.DoorbellOffV2, qm.EncodeDoorbell(2, qm.Doorbell{QN: q.QPID(), Cmd: qm.DBSQ, Index: 1}))
	waitFor(t, func() bool {
		return atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.dus[lay.CQOff+qm.CQEOffPhaseWord])))>>16 == 1
	})
	got, err := qm.DecodeZipSQE(q.dus[lay.SQOff:])
	if err != nil || got.Code() != StatusTranslation || got.Tag != 42 || got.Produced != 0 {
		t.Fatalf("write-back %+v %v", got, err)
	}
	if c, _ := qm.DecodeCQE(q.dus[lay.CQOff:]); c.SQHead != 0 || c.SQNum != q.QPID() || !c.Phase {
		t.Fatalf("CQE %+v", c)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 60s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Completions across queues arrive in any order: a slow queue's request
// submitted first completes after a fast queue's request submitted later;
// within a queue the order is the submit order.
func TestReorderAcrossQueues(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 32})
	slow := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	fast := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	emuQueue(t, d, slow).SetLatency(time.Second) // wide margin for loaded CI machines
	var order []string
	var mu sync.Mutex
	mk := func(name string) *qm.ZipRequest {
		return &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(500), Dst: make([]byte, 0, 1024), Priv: name}
	}
	for i := 0; i < 3; i++ {
		slow.Submit(mk("slow" + string(rune('0'+i))))
	}
	fast.Submit(mk("fast"))
	fn := func(r *qm.ZipRequest) {
		mu.Lock()
		order = append(order, r.Priv.(string))
		mu.Unlock()
	}
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for len(order) < 4 && time.Now().Before(deadline) {
		// fast first: when a stalled poll loop finds both done, the order
		// of the polls must not decide the outcome
		fast.Poll(0, fn)
		slow.Poll(0, fn)
		time.Sleep(100 * time.Microsecond)
	}
	want := []string{"fast", "slow0", "slow1", "slow2"}
	if len(order) != 4 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] || order[3] != want[3] {
		t.Fatalf("completion order %v, want %v", order, want)
	}
	// Late completions (LateRate) keep per-queue order too.
	d.SetFaults(Faults{LateRate: 0.3, LateBy: 2 * time.Millisecond})
	var reqs []*qm.ZipRequest
	for i := 0; i < 20; i++ {
		reqs = append(reqs, &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(100), Dst: make([]byte, 0, 256), Priv: i})
	}
	var got []int
	fast.SubmitBatch(reqs)
	deadline = time.Now().Add(60 * time.Second)
	for len(got) < 20 && time.Now().Before(deadline) {
		fast.Poll(0, func(r *qm.ZipRequest) { got = append(got, r.Priv.(int)) })
		fast.Wait(time.Millisecond)
	}
	if len(got) != 20 {
		t.Fatalf("%d of 20 late requests delivered in 60s: %v", len(got), got)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("in-queue order broken: %v", got)
		}
	}
}

func TestDoCancelReturnsBuffers(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 8})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{AbandonAfter: 20 * time.Millisecond})
	emuQueue(t, d, cz).SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(100), Dst: make([]byte, 0, 256)}
	start := time.Now()
	err := cz.Do(ctx, r)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(r.Err, qm.ErrClosed) {
		t.Fatalf("Do: %v, req %v", err, r.Err)
	}
	if el := time.Since(start); el > time.Minute { // the latency is an hour
		t.Fatalf("Do took %v", el)
	}
	if d.Stats().OpenQueues != 0 {
		t.Fatal("queue still open")
	}
}

func TestNotifyAndWait(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 8})
	q := openQueue(t, d, uacce.Compress)
	var calls atomic.Int32
	q.(uacce.Notifier).SetNotify(func() { calls.Add(1) })
	z, err := qm.NewZipQueue(q, qm.ZipOptions{Interrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if ok, err := z.Wait(0); ok || err != nil {
		t.Fatal("idle queue reported ready")
	}
	r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: textBlock(100), Dst: make([]byte, 0, 256)}
	z.Submit(r)
	if ok, err := z.Wait(5 * time.Second); !ok || err != nil {
		t.Fatalf("wait: %v %v", ok, err)
	}
	if n, _ := z.Poll(0, func(*qm.ZipRequest) {}); n != 1 {
		t.Fatalf("poll %d", n)
	}
	// notify runs right after the wake-up token, possibly after Wait returned
	waitFor(t, func() bool { return calls.Load() >= 1 })
	z.Close()
	if _, err := z.Wait(time.Millisecond); !errors.Is(err, uacce.ErrClosed) {
		t.Fatalf("wait after close: %v", err)
	}
}

// TestModel: the latency floor and the device throughput cap are honoured.
func TestModel(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 128, Engine: EngineNoop, Model: Model{Latency: 2 * time.Millisecond, CompressBps: 50e6}})
	cz := openZip(t, d, uacce.Compress, qm.ZipOptions{})
	r := &qm.ZipRequest{Alg: qm.AlgDeflate, Src: make([]byte, 1000), Dst: make([]byte, 0, 64)}
	start := time.Now()
	do(t, cz, r)
	if el := time.Since(start); el < 2*time.Millisecond {
		t.Fatalf("latency %v < 2ms", el)
	}
	var reqs []*qm.ZipRequest
	for i := 0; i < 100; i++ {
		reqs = append(reqs, &qm.ZipRequest{Alg: qm.AlgDeflate, Src: make([]byte, 50000), Dst: make([]byte, 0, 64)})
	}
	start = time.Now()
	runAll(t, cz, reqs) // 5 MB at 50 MB/s
	if el := time.Since(start); el < 95*time.Millisecond {
		t.Fatalf("100 x 50 KB took %v at 50 MB/s", el)
	}
}

// TestNoGoroutineLeak: closing queues and the device stops every engine.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	d, err := New(Options{SysfsRoot: t.TempDir(), Queues: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		q := openQueue(t, d, uacce.Direction(i%2))
		if i%2 == 0 {
			q.Close()
		}
	}
	d.Close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	if _, err := d.Open(uacce.Device{Name: d.Name()}, uacce.Compress); !errors.Is(err, uacce.ErrNoDevice) {
		t.Fatalf("open after close: %v", err)
	}
}

func TestNoSVADeviceRefused(t *testing.T) {
	d := newTestDevice(t, Options{NoSVA: true})
	devs, _ := d.Discover()
	if len(devs) != 1 || devs[0].SVA() {
		t.Fatalf("%+v", devs)
	}
	if _, err := uacce.Choose(devs, uacce.Want{Algorithm: "deflate"}); !errors.Is(err, uacce.ErrNoDevice) {
		t.Fatalf("choose: %v", err)
	}
	c, err := uacce.Choose(devs, uacce.Want{Algorithm: "deflate", AllowNoSVA: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(c, uacce.Compress); !errors.Is(err, uacce.ErrNoSVA) || !errors.Is(err, uacce.ErrNoDevice) {
		t.Fatalf("open: %v", err)
	}
	if _, err := (&uacce.Host{}).Open(c, uacce.Compress); !errors.Is(err, uacce.ErrNoSVA) {
		t.Fatalf("host open: %v", err)
	}
}

// A driver that rings an SQ tail past SQEs the device has not fetched yet
// (more than depth-1 in flight) gets a hardware error, not silently lost
// requests.
func TestSQOverrun(t *testing.T) {
	d := newTestDevice(t, Options{Depth: 4})
	q, _ := rawQueue(t, d)
	q.SetLatency(time.Hour) // the engine holds the first SQE
	ring := func(idx uint16) {
		q.Doorbell(qm.DoorbellOffV2, qm.EncodeDoorbell(2, qm.Doorbell{QN: q.QPID(), Cmd: qm.DBSQ, Index: idx}))
	}
	ring(3) // 3 = depth-1 SQEs: fine
	waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.sqHead == 1 })
	if rx, tx := dsWords(q); rx != 0 || tx != 0 {
		t.Fatal("legal doorbell disabled the queue")
	}
	ring(1) // laps slots 1 and 2, still unfetched
	if rx, tx := dsWords(q); rx != 1 || tx != 1 || d.Stats().HWErrors != 1 {
		t.Fatalf("overrun: ds_rx %d ds_tx %d hw errors %d", rx, tx, d.Stats().HWErrors)
	}
}
