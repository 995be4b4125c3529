package qm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/accelfs/accelfs/accel/uacce"
)

// ZipRequest is one block-mode hisi_zip request (flush = FINISH, new
// stream, flat buffers: what wd_do_comp_sync/async send, §3.5). The
// direction is the queue's. The caller owns the request again only when Poll
// (or Do) has delivered it; until then Src and Dst must not be touched.
type ZipRequest struct {
	// Alg is AlgDeflate, AlgZlib or AlgGzip.
	Alg Alg
	// Src is the input: raw data to compress, or a complete compressed
	// stream (with its zlib/gzip header) to decompress. 1 byte .. 8 MiB.
	Src []byte
	// Dst provides the output space: the device may write all of
	// Dst[:cap(Dst)]. For zlib/gzip compression the software header goes to
	// Dst[0:2] / Dst[0:10] and the device writes after it (§3.4).
	Dst []byte
	// Priv is for the caller (the session layer's pending request); qm
	// never looks at it.
	Priv any

	// Results, set before delivery.
	Out       []byte // Dst[:Produced] on success, nil otherwise
	Consumed  int    // input bytes consumed, header included (§3.4)
	Produced  int    // output bytes, header included
	Status    uint16 // dw3[8:0] as written back
	CtxSt     uint8  // ctx_dw0[3:0]
	Checksum  uint32 // dw31: Adler-32 (zlib) / CRC-32 (gzip) of the raw data
	Err       error  // nil, or ErrOutputTooSmall / ErrIncomplete / *StatusError / ErrQueueDisabled / ErrClosed ...
	Submitted time.Time

	// In-flight state (owned by the ZipQueue between Submit and delivery).
	tag     uint32
	hdr     int // header bytes written (compress) or skipped (decompress)
	avail   int // dest_avail_out
	inLen   int // input bytes given to the device
	srcAddr uint64
	dstAddr uint64
	pin     runtime.Pinner
}

// ZipOptions configures a ZipQueue.
type ZipOptions struct {
	// Interrupt: ring CQ doorbells with priority 1 so Wait can park in
	// poll() (§2.5, §1.6). Sync queues may use it; async queues poll.
	Interrupt bool
	// SpinFor is how long Do polls before it starts sleeping/parking.
	// Default 50µs.
	SpinFor time.Duration
	// AbandonAfter bounds how long Do waits for its request after ctx is
	// cancelled before it closes the queue to get the buffers back.
	// Default 2s.
	AbandonAfter time.Duration
}

// ZipQueue runs hisi_zip requests on one queue: the per-queue object the
// session layer drives. Submit and Poll may run concurrently (one poller per
// queue; Poll serialises callers). Every request Submit accepts is delivered
// exactly once by Poll, also when the queue dies or is closed (then with
// Err set).
//
// Always Close a ZipQueue: its in-flight requests hold runtime.Pinner pins
// that only delivery or Close releases, and a queue dropped with pins held
// makes the runtime panic when the garbage collector finds them.
type ZipQueue struct {
	qp     *QP
	info   uacce.QueueInfo
	mapper uacce.Mapper // non-nil for the emulator (address registry)
	opts   ZipOptions

	// Lock order: syncMu -> pollMu -> submitMu -> tagMu.
	syncMu   sync.Mutex // serialises Do (one sync request per queue, §4.4)
	pollMu   sync.Mutex // one poller at a time; protects failed
	submitMu sync.Mutex // serialises Submit (SQ tail and SQE scratch)
	tagMu    sync.Mutex // protects table, gens, free
	table    []*ZipRequest
	gens     []uint16
	free     []uint16
	failed   []*ZipRequest // killed in-flight requests awaiting delivery by Poll
	sqeBuf   [][]byte      // scratch SQE encodings, guarded by submitMu

	dead        atomic.Pointer[error] // first fatal error (disabled, protocol, closed)
	outstanding atomic.Int64          // accepted by Submit, not yet delivered
}

// NewZipQueue attaches the zip protocol to a started queue. The queue's SQE
// size must be 128 bytes (§2.1).
func NewZipQueue(q uacce.Queue, opts ZipOptions) (*ZipQueue, error) {
	qp, err := NewQP(q, QPOptions{Interrupt: opts.Interrupt})
	if err != nil {
		return nil, err
	}
	info := qp.Info()
	if info.SQESize != SQESize {
		return nil, fmt.Errorf("qm: %s qp %d: SQE size %d, hisi_zip needs %d", info.Device, info.QPID, info.SQESize, SQESize)
	}
	if opts.SpinFor <= 0 {
		opts.SpinFor = 50 * time.Microsecond
	}
	if opts.AbandonAfter <= 0 {
		opts.AbandonAfter = 2 * time.Second
	}
	n := qp.Capacity()
	z := &ZipQueue{qp: qp, info: info, opts: opts,
		table: make([]*ZipRequest, n), gens: make([]uint16, n), free: make([]uint16, n)}
	for i := range z.free {
		z.free[i] = uint16(n - 1 - i)
	}
	z.mapper, _ = q.(uacce.Mapper)
	return z, nil
}

// Info describes the queue (device, qp id, direction, depth ...).
func (z *ZipQueue) Info() uacce.QueueInfo { return z.info }

// Direction is the queue's fixed direction (qc_type).
func (z *ZipQueue) Direction() uacce.Direction { return z.info.Direction }

// Arm enables the completion interrupt before the caller parks (QP.Arm).
func (z *ZipQueue) Arm() error {
	if err := z.Err(); err != nil {
		return err
	}
	return z.qp.Arm()
}

// Queue is the uacce queue under z (for uacce.WaitAny).
func (z *ZipQueue) Queue() uacce.Queue { return z.qp.q }

// QNMismatches is how many completions named another qp number (QP.QNMismatches).
func (z *ZipQueue) QNMismatches() uint64 { return z.qp.QNMismatches() }

// Capacity is the most requests in flight (SQ depth - 1).
func (z *ZipQueue) Capacity() int { return z.qp.Capacity() }

// InFlight counts requests accepted by Submit and not yet delivered by Poll.
func (z *ZipQueue) InFlight() int { return int(z.outstanding.Load()) }

// Err returns the error that killed the queue, or nil while it is usable.
func (z *ZipQueue) Err() error {
	if p := z.dead.Load(); p != nil {
		return *p
	}
	return nil
}

// Submit sends one request without waiting. ErrBusy when the queue is full
// (poll and retry), ErrBadRequest for a request this queue cannot take,
// ErrQueueDisabled when ds_tx is set (requests already in flight still
// complete unless ds_rx is set too) or the queue died, ErrClosed after
// Close. On error the request was not accepted and will not be delivered.
func (z *ZipQueue) Submit(req *ZipRequest) error {
	n, err := z.SubmitBatch([]*ZipRequest{req})
	if n == 1 {
		return nil
	}
	return err
}

// SubmitBatch sends as many of reqs as the queue has room for, with one SQ
// doorbell, and returns how many it accepted (a prefix of reqs). err
// explains why it stopped early (ErrBusy when full).
func (z *ZipQueue) SubmitBatch(reqs []*ZipRequest) (int, error) {
	z.submitMu.Lock()
	defer z.submitMu.Unlock()
	if err := z.Err(); err != nil {
		return 0, err
	}
	room := z.qp.Capacity() - z.qp.InFlight()
	if room <= 0 {
		return 0, fmt.Errorf("qm: %s qp %d: %w", z.info.Device, z.info.QPID, ErrBusy)
	}
	var stop error
	k := 0
	for k < len(reqs) && k < room {
		if err := z.prepare(reqs[k]); err != nil {
			stop = err
			break
		}
		if k == len(z.sqeBuf) {
			z.sqeBuf = append(z.sqeBuf, make([]byte, SQESize))
		}
		z.encode(reqs[k], z.sqeBuf[k])
		k++
	}
	if k < len(reqs) && stop == nil {
		stop = fmt.Errorf("qm: %s qp %d: %w", z.info.Device, z.info.QPID, ErrBusy)
	}
	if k == 0 {
		return 0, stop
	}
	// Counted before the doorbell: once it rings, a fast device and a
	// concurrent poller may deliver the requests before Send returns.
	z.outstanding.Add(int64(k))
	if err := z.qp.Send(z.sqeBuf[:k]...); err != nil {
		z.outstanding.Add(-int64(k))
		for _, r := range reqs[:k] {
			z.release(r)
		}
		// ds_tx alone stops new sends only: requests already submitted still
		// complete (the kernel sets ds_tx first, before a reset), so the
		// queue is not dead yet; Poll sees ds_rx when the kernel sets it.
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrProtocol) {
			z.setDead(err)
		}
		return 0, err
	}
	return k, stop
}

// prepare validates req, writes the software header, pins and maps the
// buffers and takes a tag. On error nothing is held.
func (z *ZipQueue) prepare(r *ZipRequest) error {
	if r.tag != 0 {
		return fmt.Errorf("qm: request already in flight: %w", ErrBadRequest)
	}
	// lz4 is block-mode compression only on hisi_zip (§3.5): its output is
	// one standard lz4 block, decoded in software.
	lz4c := r.Alg == AlgLZ4 && z.info.Direction == uacce.Compress
	if r.Alg != AlgDeflate && r.Alg != AlgZlib && r.Alg != AlgGzip && !lz4c {
		return fmt.Errorf("qm: algorithm %v not supported for %v: %w", r.Alg, z.info.Direction, ErrBadRequest)
	}
	if len(r.Src) == 0 || len(r.Src) > maxFlatInput {
		return fmt.Errorf("qm: input of %d bytes (1..%d): %w", len(r.Src), maxFlatInput, ErrBadRequest)
	}
	dst := r.Dst[:cap(r.Dst)]
	r.Out, r.Consumed, r.Produced, r.Status, r.CtxSt, r.Checksum, r.Err = nil, 0, 0, 0, 0, 0, nil
	in, out := r.Src, dst
	if z.info.Direction == uacce.Compress {
		h := compHeader(r.Alg)
		if len(dst) <= len(h) {
			return fmt.Errorf("qm: output space %d <= header %d: %w", len(dst), len(h), ErrBadRequest)
		}
		r.hdr = copy(dst, h)
		out = dst[r.hdr:]
	} else {
		h, err := headerLen(r.Alg, r.Src)
		if err != nil {
			return err
		}
		if h >= len(r.Src) || len(dst) == 0 {
			return fmt.Errorf("qm: no compressed body after %d header bytes or no output space: %w", h, ErrBadRequest)
		}
		r.hdr = h
		in = r.Src[h:]
	}
	r.avail = min(len(out), maxDestAvail)
	if SQETypeFor(z.info.APIVersion, r.Alg) == SQETypeV1 && r.avail < minDestAvailV1 {
		return fmt.Errorf("qm: output space %d < %d is ignored by v1 hardware: %w", r.avail, minDestAvailV1, ErrBadRequest)
	}
	r.inLen = len(in)

	z.tagMu.Lock()
	if len(z.free) == 0 { // cannot happen while credits match the table size
		z.tagMu.Unlock()
		return fmt.Errorf("qm: %s qp %d: no free tag: %w", z.info.Device, z.info.QPID, ErrBusy)
	}
	idx := z.free[len(z.free)-1]
	z.free = z.free[:len(z.free)-1]
	z.gens[idx]++
	// tag = generation<<16 | table index: unique among in-flight requests,
	// and a stale write-back of an earlier use of the index is detected.
	r.tag = uint32(z.gens[idx])<<16 | uint32(idx) | 1<<31
	z.table[idx] = r
	z.tagMu.Unlock()

	// The SQE carries raw addresses the GC cannot see: pin the buffers (and
	// the table keeps them reachable) until the completion is consumed.
	r.pin.Pin(&in[0])
	r.pin.Pin(&out[0])
	// unsafe: &in[0] and &out[0] are pinned above, so their addresses stay
	// valid device-visible virtual addresses until release() unpins them.
	r.srcAddr = uint64(uintptr(unsafe.Pointer(&in[0])))
	r.dstAddr = uint64(uintptr(unsafe.Pointer(&out[0])))
	if z.mapper != nil {
		z.mapper.Map(r.srcAddr, in)
		z.mapper.Map(r.dstAddr, out[:r.avail])
	}
	r.Submitted = time.Now()
	return nil
}

func (z *ZipQueue) encode(r *ZipRequest, b []byte) {
	typ := SQETypeFor(z.info.APIVersion, r.Alg)
	s := ZipSQE{
		Type:         typ,
		InputLen:     uint32(r.inLen),
		Finish:       true, // block mode: FINISH, new stream, stateless (§3.5)
		NewStream:    true,
		Alg:          r.Alg,
		Tag:          r.tag,
		DestAvailOut: uint32(r.avail),
		Src:          r.srcAddr,
		Dst:          r.dstAddr,
	}
	if typ == SQETypeV3 {
		// dw9[15:12] window size, wd_comp_winsz_type 4 = 32 KiB: the full
		// deflate window, so any standard stream decodes (§3.1). The v1
		// layout is left at 0 as the old kernel driver fills only the
		// request type into dw9 (K-ZIPC old version).
		s.WinSize = 4
	}
	s.Encode(b)
}

// release undoes prepare: unmap, unpin, free the tag. Reports whether the
// request was still in the table.
func (z *ZipQueue) release(r *ZipRequest) bool {
	z.tagMu.Lock()
	idx := int(r.tag & 0xffff)
	held := r.tag != 0 && idx < len(z.table) && z.table[idx] == r
	if held {
		z.table[idx] = nil
		z.free = append(z.free, uint16(idx))
		r.tag = 0 // under tagMu: complete compares tags under it
	}
	z.tagMu.Unlock()
	if !held {
		return false
	}
	if z.mapper != nil {
		z.mapper.Unmap(r.srcAddr)
		z.mapper.Unmap(r.dstAddr)
	}
	r.pin.Unpin()
	return true
}

// complete looks up and finishes the request whose SQE the device wrote back.
func (z *ZipQueue) complete(sqe []byte) (*ZipRequest, error) {
	s, err := DecodeZipSQE(sqe)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", err, ErrQueueDisabled, ErrProtocol)
	}
	idx := int(s.Tag & 0xffff)
	z.tagMu.Lock()
	var r *ZipRequest
	if idx < len(z.table) && z.table[idx] != nil && z.table[idx].tag == s.Tag {
		r = z.table[idx]
	}
	z.tagMu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("qm: %s qp %d: completion with unknown tag %#x: %w: %w", z.info.Device, z.info.QPID, s.Tag, ErrQueueDisabled, ErrProtocol)
	}
	tag := s.Tag
	z.release(r)
	r.Status, r.CtxSt, r.Checksum = s.Status, uint8(s.CtxDW0&0xf), s.Checksum
	if int(s.Produced) > r.avail || int(s.Consumed) > r.inLen {
		err := fmt.Errorf("qm: %s qp %d: tag %#x: produced %d of %d, consumed %d of %d: %w: %w",
			z.info.Device, z.info.QPID, tag, s.Produced, r.avail, s.Consumed, r.inLen, ErrQueueDisabled, ErrProtocol)
		r.Err = err
		return r, err
	}
	code, last := s.Code(), s.LastBlock()
	serr := &StatusError{Status: s.Status, CtxSt: r.CtxSt, Tag: tag}
	if z.info.Direction == uacce.Compress {
		switch {
		case code == StatusOK || code == StatusNegComp: // 0x0d is success (§3.2)
			if int(s.Consumed) != r.inLen {
				r.Err = serr
				break
			}
			r.Consumed, r.Produced = int(s.Consumed), r.hdr+int(s.Produced)
			r.Out = r.Dst[:r.Produced]
		case code == StatusDstLenOut:
			r.Err = fmt.Errorf("qm: compress %d bytes into %d: %w", r.inLen, r.avail, ErrOutputTooSmall)
		default:
			r.Err = serr
		}
		return r, nil
	}
	noSpace := r.CtxSt == CtxStNoSpace || r.CtxSt == CtxStDecompingNS
	switch {
	case code == StatusDstLenOut, (code == StatusOK || code == StatusDecompEnd) && noSpace:
		r.Err = fmt.Errorf("qm: decompress into %d bytes: %w", r.avail, ErrOutputTooSmall)
	case code == StatusDecompEnd && last, // WD_STREAM_END (§3.2)
		// A block-mode request that consumed all its input may complete
		// with plain status 0: UADK's parse_zip_sqe reports that as
		// success, and the old kernel driver (K-ZIPC) accepted only 0 and
		// 0x0d for decompression too. The caller checks the output length
		// against what it expects, so a stream cut short is still caught.
		code == StatusOK && int(s.Consumed) == r.inLen:
		r.Consumed, r.Produced = r.hdr+int(s.Consumed), int(s.Produced)
		r.Out = r.Dst[:r.Produced]
	case code == StatusOK || code == StatusDecompEnd:
		r.Err = fmt.Errorf("qm: decompress consumed %d of %d bytes: %w", s.Consumed, r.inLen, ErrIncomplete)
	default:
		r.Err = serr
	}
	return r, nil
}

func (z *ZipQueue) setDead(err error) { z.dead.CompareAndSwap(nil, &err) }

// kill marks the queue dead, stops it (PUT_Q, unmap, close: afterwards the
// device touches no buffer, even one that broke the protocol) and moves
// every in-flight request to the failed list with err. It returns the
// queue's Close error. Caller holds pollMu, so no Recv is running; kill
// takes submitMu before closing, so no Send is copying SQEs into the DUS or
// ringing the doorbell while the regions are unmapped (uacce.Queue: Close
// must not race with Doorbell). Nothing touches the regions after this:
// Submit and Poll check Err first.
func (z *ZipQueue) kill(err error) error {
	z.setDead(err)
	err = z.Err()
	z.submitMu.Lock()
	defer z.submitMu.Unlock()
	cerr := z.qp.q.Close() // idempotent
	z.tagMu.Lock()
	var victims []*ZipRequest
	for _, r := range z.table {
		if r != nil {
			victims = append(victims, r)
		}
	}
	z.tagMu.Unlock()
	for _, r := range victims {
		z.release(r)
		r.Out, r.Err = nil, err
		z.failed = append(z.failed, r)
	}
	return cerr
}

// pollBatch bounds how many completions Poll gathers under its lock before
// running callbacks outside it.
const pollBatch = 64

// Poll delivers up to max completed requests (max <= 0: all that are ready)
// to fn, in completion order, and returns how many. fn runs on the caller's
// goroutine after the request's credit is returned, so it may Submit (but
// must not call Poll or Do on this queue). A non-nil error means the queue
// is dead (ErrQueueDisabled, ErrProtocol, ErrClosed): the requests that were
// in flight are delivered with Err set (by the same call or the next ones;
// the count includes them), and once none are left every Poll returns
// (0, err). Close the queue then.
func (z *ZipQueue) Poll(max int, fn func(*ZipRequest)) (int, error) {
	if max <= 0 {
		max = int(^uint(0) >> 1)
	}
	done := 0
	var batch [pollBatch]*ZipRequest
	for done < max {
		n, err := z.pollSome(batch[:min(pollBatch, max-done)])
		for _, r := range batch[:n] {
			z.outstanding.Add(-1)
			fn(r)
		}
		clear(batch[:n])
		done += n
		if err != nil && n == 0 {
			return done, err
		}
		if n == 0 {
			break
		}
	}
	return done, nil
}

func (z *ZipQueue) pollSome(out []*ZipRequest) (int, error) {
	z.pollMu.Lock()
	defer z.pollMu.Unlock()
	if err := z.Err(); err != nil && len(z.failed) == 0 {
		z.kill(err) // whatever path killed the queue, flush its tag table
	}
	n := z.takeFailed(out, 0)
	if n > 0 || z.Err() != nil {
		return n, z.Err()
	}
	for n < len(out) {
		var r *ZipRequest
		var cerr error
		ok, err := z.qp.Recv(func(_ CQE, sqe []byte) { r, cerr = z.complete(sqe) })
		if r != nil {
			out[n] = r
			n++
		}
		if err == nil {
			err = cerr
		}
		if err != nil {
			if isDead(err) {
				z.kill(err)
				n = z.takeFailed(out, n)
			}
			return n, err
		}
		if !ok {
			break
		}
	}
	return n, nil
}

// takeFailed moves failed requests into out[n:]; caller holds pollMu.
func (z *ZipQueue) takeFailed(out []*ZipRequest, n int) int {
	for n < len(out) && len(z.failed) > 0 {
		out[n] = z.failed[0]
		z.failed[0] = nil
		z.failed = z.failed[1:]
		n++
	}
	return n
}

// Wait parks until the device signals a completion or timeout passes (see
// uacce.Queue.Wait; only wakes early in Interrupt mode on real hardware).
func (z *ZipQueue) Wait(timeout time.Duration) (bool, error) { return z.qp.q.Wait(timeout) }

// Do runs one request synchronously: submit, poll for SpinFor, then park
// (Wait in Interrupt mode, short sleeps otherwise) until it completes. It is
// UADK's sync mode (one request per queue at a time, §4.4): do not mix Do
// with Submit/Poll on the same queue. If ctx is cancelled Do keeps waiting
// for AbandonAfter, then closes the queue, so that it never returns while
// the device may still write into req.Dst. Returns req.Err or ctx.Err().
func (z *ZipQueue) Do(ctx context.Context, req *ZipRequest) error {
	z.syncMu.Lock()
	defer z.syncMu.Unlock()
	if n := z.InFlight(); n != 0 {
		return fmt.Errorf("qm: Do on a queue with %d async requests in flight: %w", n, ErrBadRequest)
	}
	if err := z.Submit(req); err != nil {
		return err
	}
	got := false
	fn := func(r *ZipRequest) { got = got || r == req }
	start := time.Now()
	sleep := 5 * time.Microsecond
	var abandon time.Time
	var ctxErr error
	for {
		n, err := z.Poll(1, fn)
		if got {
			if ctxErr != nil {
				return ctxErr
			}
			return req.Err
		}
		if err != nil && n == 0 && z.InFlight() == 0 {
			return err
		}
		if n > 0 || err != nil {
			continue
		}
		if ctxErr == nil && ctx.Err() != nil {
			ctxErr = ctx.Err()
			abandon = time.Now().Add(z.opts.AbandonAfter)
		}
		if ctxErr != nil && time.Now().After(abandon) {
			_ = z.Close() // stops the device; Poll then delivers req with ErrClosed
			continue
		}
		switch {
		case time.Since(start) < z.opts.SpinFor:
			runtime.Gosched()
		case z.opts.Interrupt:
			if _, err := z.Wait(time.Millisecond); err != nil && !errors.Is(err, ErrClosed) {
				z.pollMu.Lock()
				z.kill(err)
				z.pollMu.Unlock()
			}
		default:
			time.Sleep(sleep)
			sleep = min(2*sleep, time.Millisecond)
		}
	}
}

// Close stops and releases the queue (PUT_Q, unmap, close), after which the
// device no longer touches request buffers; requests still in flight are
// then delivered by Poll with ErrClosed. Idempotent.
func (z *ZipQueue) Close() error {
	z.pollMu.Lock()
	defer z.pollMu.Unlock()
	return z.kill(fmt.Errorf("qm: %s qp %d: %w", z.info.Device, z.info.QPID, ErrClosed))
}
