package emu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"hash/crc32"
	"io"
	"runtime"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// Status codes the emulator writes for requests real hardware would reject
// in ways the sources do not pin down (§3.2 lists only the codes below
// 0x14). qm treats every unknown non-zero code as a hardware error.
const (
	// StatusUnsupported: SGL buffers, stateful or SYNC_FLUSH requests, an
	// algorithm the device does not offer, or one the emulator does not
	// implement (lz4, lz77).
	StatusUnsupported = 0x1c
	// StatusTranslation: an SQE address that is not a registered buffer of
	// the needed length (an SMMU translation fault on real hardware).
	StatusTranslation = 0x1d
	// StatusBadData: the compressed input is not valid deflate.
	StatusBadData = 0x1e
)

// engineState is the engine goroutine's private scratch.
type engineState struct {
	out   []byte // output scratch, copied into the destination under mapMu
	fr    io.ReadCloser
	br    bytes.Reader
	probe [1]byte
}

// run is the queue's engine: it consumes SQEs in order from the device head
// up to the last SQ doorbell tail (§2.4 "orders = 1"; §6.5), writes each
// result back into its SQE slot and then posts the CQE. It stops when
// ds_rx is set (until Close) or the queue is closed.
func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.stop:
			return
		case <-q.kick:
		}
		for {
			q.mu.Lock()
			head, tail, extra := q.sqHead, q.sqTail, q.extra
			arrival := q.arrivals[head]
			fetch := head != tail && !q.rxDisabled()
			if fetch {
				// Fetched: the slot stays the driver's-to-not-touch until
				// its CQE is consumed, but the SQ head moves now, as on
				// hardware (the doorbell check counts from it).
				q.sqHead = (head + 1) % uint16(q.info.SQDepth)
			}
			q.mu.Unlock()
			if !fetch {
				break
			}
			if !q.process(head, arrival, extra) {
				return
			}
		}
	}
}

// process handles one SQE; false means the queue was closed meanwhile.
func (q *Queue) process(slot uint16, arrival time.Time, extra time.Duration) bool {
	sqe := q.dus[q.lay.SQOff+int(slot)*qm.SQESize:][:qm.SQESize]
	s, err := qm.DecodeZipSQE(sqe)
	var res result
	if err != nil {
		res.status = StatusUnsupported
	} else {
		q.d.requests.Add(1)
		q.d.bytesIn.Add(int64(s.InputLen))
		p := q.d.schedule(q.dir, int(s.InputLen), arrival, extra)
		switch {
		case p.disable:
			q.Disable(true, true) // reset in the middle of the request
			return true
		case p.status != 0:
			q.d.injected.Add(1)
			res.status = uint16(p.status)
		default:
			res = q.execute(&s)
			if p.corrupt && res.produced > 0 {
				q.corrupt(&s, res)
			}
		}
		q.d.bytesOut.Add(int64(res.produced))
		if !q.sleepUntil(p.due) {
			return false
		}
	}
	// Write-back into the same SQE slot (§2.3): output fields only, the tag
	// and the driver's fields stay as they were (§6.6).
	le := binary.LittleEndian
	le.PutUint32(sqe[4*qm.DWConsumed:], res.consumed)
	le.PutUint32(sqe[4*qm.DWProduced:], res.produced)
	le.PutUint32(sqe[4*qm.DWStatus:], uint32(res.status))
	le.PutUint32(sqe[4*qm.DWCtx0:], uint32(res.ctxSt))
	le.PutUint32(sqe[4*qm.DWISize:], res.isize)
	le.PutUint32(sqe[4*qm.DWChecksum:], res.checksum)
	q.postCQE(slot)
	return true
}

// spinWindow is how much of a modelled wait is spent yielding in a loop
// rather than on a timer: Go timers on a loaded 2-core machine fire up to
// ~1 ms late (stream D measured Timer.Reset(20µs) ≈ 1.06 ms), which would
// turn a 15 µs model latency into a millisecond. The engine goroutine
// therefore sleeps on a timer only until spinWindow before the due time and
// yields (runtime.Gosched) for the rest. Spinning costs host CPU that real
// hardware would not; it only happens when a Model is set.
const spinWindow = 1500 * time.Microsecond

// sleepUntil waits until due; false when the queue was closed meanwhile.
func (q *Queue) sleepUntil(due time.Time) bool {
	if d := time.Until(due) - spinWindow; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-q.stop:
			t.Stop()
			return false
		case <-t.C:
		}
	}
	for {
		select {
		case <-q.stop:
			return false
		default:
		}
		if !time.Now().Before(due) {
			return true
		}
		runtime.Gosched()
	}
}

type result struct {
	consumed, produced uint32
	status             uint16
	ctxSt              uint8
	isize, checksum    uint32
}

func (q *Queue) offers(alg qm.Alg) bool {
	name := alg.String()
	for _, a := range q.d.opts.Algorithms {
		if a == name {
			return true
		}
	}
	return false
}

// execute runs one validated block-mode request.
func (q *Queue) execute(s *qm.ZipSQE) result {
	lz4c := s.Alg == qm.AlgLZ4 && q.dir == uacce.Compress // lz4 is compression-only (§3.5)
	if s.BufType != 0 || s.Stateful || !s.Finish || !q.offers(s.Alg) ||
		(s.Alg != qm.AlgDeflate && s.Alg != qm.AlgZlib && s.Alg != qm.AlgGzip && !lz4c) {
		return result{status: StatusUnsupported}
	}
	avail := int(min(s.DestAvailOut, 8<<20))
	if q.d.opts.Engine == EngineNoop {
		r := result{consumed: s.InputLen}
		if q.dir == uacce.Decompress {
			r.status = qm.StatusDecompEnd | qm.StatusLastBlock
		}
		return r
	}
	src, okS := q.acquire(s.Src, int(s.InputLen))
	dst, okD := q.acquire(s.Dst, avail)
	defer q.releaseMap(acquired(okS, s.Src), acquired(okD, s.Dst))
	if !okS || !okD {
		q.d.hwErrors.Add(1)
		return result{status: StatusTranslation}
	}
	if lz4c {
		return q.compressLZ4(src, dst)
	}
	if q.dir == uacce.Compress {
		return q.compress(s.Alg, src, dst)
	}
	return q.decompress(s.Alg, src, dst)
}

// compress emits the deflate body and, for zlib/gzip, the trailer — never
// the header, which software writes (§3.4, §6.8).
func (q *Queue) compress(alg qm.Alg, src, dst []byte) result {
	e := &q.eng
	out, err := codec.Compress(codec.Deflate, q.d.opts.Level, e.out[:0], src)
	if err != nil {
		return result{status: StatusBadData}
	}
	r := result{consumed: uint32(len(src)), status: qm.StatusOK}
	if len(out) > len(src) {
		// Negative compression: emit stored blocks and report 0x0d, which
		// drivers treat as success (§3.2).
		out = appendStored(out[:0], src)
		r.status = qm.StatusNegComp
	}
	switch alg {
	case qm.AlgZlib:
		r.checksum = adler32.Checksum(src)
		out = binary.BigEndian.AppendUint32(out, r.checksum)
	case qm.AlgGzip:
		r.checksum = crc32.ChecksumIEEE(src)
		r.isize = uint32(len(src))
		out = binary.LittleEndian.AppendUint32(out, r.checksum)
		out = binary.LittleEndian.AppendUint32(out, r.isize)
	}
	e.out = out[:0]
	if len(out) > len(dst) {
		return result{status: qm.StatusDstLenOut}
	}
	if !q.copyOut(dst, out) {
		return result{status: StatusTranslation}
	}
	r.produced = uint32(len(out))
	return r
}

// compressLZ4 emits one standard lz4 block (what the kernel's lz4 acomp
// gets from the device and decodes in software); no header, no trailer.
func (q *Queue) compressLZ4(src, dst []byte) result {
	e := &q.eng
	out, err := codec.Compress(codec.LZ4, 0, e.out[:0], src)
	if err != nil {
		return result{status: StatusBadData}
	}
	e.out = out[:0]
	if len(out) > len(dst) {
		return result{status: qm.StatusDstLenOut}
	}
	if !q.copyOut(dst, out) {
		return result{status: StatusTranslation}
	}
	return result{consumed: uint32(len(src)), produced: uint32(len(out)), status: qm.StatusOK}
}

// corrupt flips one byte in the middle of a written output (Faults.CorruptRate).
func (q *Queue) corrupt(s *qm.ZipSQE, res result) {
	dst, ok := q.acquire(s.Dst, int(res.produced))
	if !ok {
		return
	}
	defer q.releaseMap(acquired(ok, s.Dst))
	dst[len(dst)/2] ^= 0x5a
	q.d.injected.Add(1)
}

// inputEnded is the result for input that ends before the end of the
// stream. The emulator reports it as 0x13 without the last-block bit: real
// hardware may report a complete block-mode stream as plain status 0 (the
// old kernel driver accepts only 0 and 0x0d in both directions, K-ZIPC), so
// qm accepts 0 with all input consumed as success and the emulator must not
// use 0 for truncation.
func inputEnded(consumed, produced int) result {
	return result{status: qm.StatusDecompEnd, consumed: uint32(consumed), produced: uint32(produced)}
}

// decompress inflates one complete stream body and checks the zlib/gzip
// trailer. It reports 0x13 + last block at the end of the stream (§3.2),
// ctx_st DECOMPING_NO_SPACE when the output space runs out, 0x13 without the
// last-block bit when the input ends first, 0x10 on a checksum mismatch.
func (q *Queue) decompress(alg qm.Alg, src, dst []byte) result {
	e := &q.eng
	e.br.Reset(src)
	if e.fr == nil {
		e.fr = flate.NewReader(&e.br)
	} else if err := e.fr.(flate.Resetter).Reset(&e.br, nil); err != nil {
		return result{status: StatusBadData}
	}
	if cap(e.out) < len(dst) {
		e.out = make([]byte, len(dst))
	}
	out := e.out[:len(dst)]
	n, err := io.ReadFull(e.fr, out)
	switch {
	case err == nil:
		// Output space full: the stream must end exactly here.
		if m, perr := e.fr.Read(e.probe[:]); m > 0 || perr != io.EOF {
			if m > 0 || perr == nil {
				return result{consumed: uint32(len(src) - e.br.Len()), produced: uint32(n), ctxSt: qm.CtxStDecompingNS}
			}
			err = perr
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		// ReadFull reports a clean end of stream short of len(out) this way;
		// a truncated stream shows up as a flate error on the next read.
		if _, perr := e.fr.Read(e.probe[:]); perr == io.EOF {
			err = nil
		} else {
			err = perr
		}
	}
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return inputEnded(len(src), n) // input ended first
		}
		return result{status: StatusBadData}
	}
	out = out[:n]
	r := result{status: qm.StatusDecompEnd | qm.StatusLastBlock, produced: uint32(n)}
	rest := src[len(src)-e.br.Len():]
	switch alg {
	case qm.AlgZlib:
		if len(rest) < 4 {
			return inputEnded(len(src), n)
		}
		r.checksum = adler32.Checksum(out)
		if binary.BigEndian.Uint32(rest) != r.checksum {
			return result{status: qm.StatusCRC, checksum: r.checksum}
		}
		rest = rest[4:]
	case qm.AlgGzip:
		if len(rest) < 8 {
			return inputEnded(len(src), n)
		}
		r.checksum, r.isize = crc32.ChecksumIEEE(out), uint32(n)
		if binary.LittleEndian.Uint32(rest) != r.checksum || binary.LittleEndian.Uint32(rest[4:]) != r.isize {
			return result{status: qm.StatusCRC, checksum: r.checksum}
		}
		rest = rest[8:]
	}
	r.consumed = uint32(len(src) - len(rest))
	if !q.copyOut(dst, out) {
		return result{status: StatusTranslation}
	}
	return r
}

// copyOut is the "DMA write": the destination is still mapped and busy
// (Unmap waits for us), so copying is safe.
func (q *Queue) copyOut(dst, out []byte) bool {
	return copy(dst, out) == len(out)
}

// appendStored appends src as raw-deflate stored blocks (RFC 1951 §3.2.4).
func appendStored(dst, src []byte) []byte {
	for {
		n := min(len(src), 65535)
		final := byte(0)
		if n == len(src) {
			final = 1
		}
		dst = append(dst, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, src[:n]...)
		src = src[n:]
		if final == 1 {
			return dst
		}
	}
}

// acquired returns addr if the acquire succeeded, else an address that is
// never registered (0), so releaseMap skips it.
func acquired(ok bool, addr uint64) uint64 {
	if ok {
		return addr
	}
	return 0
}
