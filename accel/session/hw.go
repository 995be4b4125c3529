package session

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// WithDevice adds a hardware engine over one uacce device, whose queues are
// opened through p (uacce.Host for a real device, an accel/emu emulator for
// the emulated one). The engine is named after the device ("hisi_zip-0").
// Its queues are opened in New, cfg.hwCtxs per (node, mode, direction) on
// the device's node; EBUSY there is a "busy_at_open" fallback, not an error.
func WithDevice(p uacce.Provider, d uacce.Device) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("%w: nil provider for %s", ErrNoDevice, d.Name)
		}
		if d.Isolated {
			return fmt.Errorf("%w: %s is isolated", ErrNoDevice, d.Name)
		}
		c.engines = append(c.engines, &hwEngine{p: p, dev: d})
		return nil
	}
}

// hwEngine is a uacce device driven through accel/qm zip queues.
type hwEngine struct {
	p   uacce.Provider
	dev uacce.Device
	// warn logs once per key (the Layer's warnOnce; set by New).
	warn func(key, msg string, args ...any)
}

// zipAlg maps a codec id to the hisi_zip request type and the name the
// device's algorithms list uses; false when no hisi_zip runs it (zstd and
// none are CPU-only). lz4 is compression-only (see supports).
func zipAlg(id codec.ID) (qm.Alg, string, bool) {
	switch id {
	case codec.Deflate:
		return qm.AlgDeflate, "deflate", true
	case codec.Zlib:
		return qm.AlgZlib, "zlib", true
	case codec.Gzip:
		return qm.AlgGzip, "gzip", true
	case codec.LZ4:
		return qm.AlgLZ4, "lz4", true
	}
	return 0, "", false
}

func (e *hwEngine) name() string { return e.dev.Name }
func (e *hwEngine) isCPU() bool  { return false }
func (e *hwEngine) nodes() []int { return []int{e.dev.Node} }
func (e *hwEngine) close() error { return nil }

// supports: what the device's algorithms list offers; lz4 only for
// compression (hisi_zip has no lz4 decompression, the CPU decodes the
// standard lz4 blocks it writes, uadk-spec §3.5).
func (e *hwEngine) supports(id codec.ID, dir Direction) bool {
	_, name, ok := zipAlg(id)
	if id == codec.LZ4 && dir != Compress {
		return false
	}
	return ok && e.dev.HasAlgorithm(name)
}

func (e *hwEngine) openQueue(_ int, dir Direction, mode Mode, notify func()) (queue, error) {
	q, err := e.p.Open(e.dev, dir)
	if err != nil {
		if errors.Is(err, uacce.ErrBusy) {
			return nil, fmt.Errorf("%w: %w", errBusy, err)
		}
		return nil, err
	}
	// Polling mode: CQ doorbells carry priority 0, so completions raise no
	// interrupt; a poller about to park arms its queues itself (hctx.arm,
	// qm.QP.Arm), the UADK model of interrupts only where a waiter needs
	// them (§2.5).
	z, err := qm.NewZipQueue(q, qm.ZipOptions{})
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	hq := &hwQueue{z: z, dir: dir, mode: mode, warn: e.warn}
	// The emulator can call us when it posts a CQE; a real queue cannot
	// (pollers then back off and park in Wait).
	if n, ok := q.(uacce.Notifier); ok && notify != nil {
		n.SetNotify(notify)
		hq.notify = true
	}
	return hq, nil
}

// hwQueue adapts a qm.ZipQueue to the queue interface.
type hwQueue struct {
	z    *qm.ZipQueue
	dir  Direction
	mode Mode
	// notify: the queue calls the ctx's notify hook on every completion.
	notify bool
	warn   func(key, msg string, args ...any) // nil in tests that build queues directly
	qnSeen bool                               // a qn mismatch was logged (reap runs in one goroutine at a time)
}

func (q *hwQueue) depth() int     { return q.z.Capacity() }
func (q *hwQueue) notifies() bool { return q.notify }

func (q *hwQueue) wait(d time.Duration) { _, _ = q.z.Wait(d) }

// hwPriv is what a ZipRequest carries for the session layer: its tag, for
// decompression the exact expected output length, and for compression into
// a scratch buffer the caller's own destination.
type hwPriv struct {
	tag     uint16
	rawLen  int
	scratch *[]byte // pooled worst-case output buffer, nil when the caller's Dst is used
	dst     []byte  // the caller's Dst (compression with scratch)
}

// hwSlack is how much room beyond the input a compression destination
// needs before the device gets it directly: stored deflate blocks cost 5
// bytes per 64 KiB plus the zlib/gzip header and trailer (18 bytes at most).
const hwSlack = 64

func (q *hwQueue) submit(tag uint16, o *op) error {
	alg, _, ok := zipAlg(o.algo)
	if !ok {
		return fmt.Errorf("%w: %v on hardware", errRejected, o.algo)
	}
	p := hwPriv{tag: tag, rawLen: o.rawLen}
	dst := o.dst
	switch {
	case o.dir == Decompress && cap(dst) < o.rawLen:
		dst = make([]byte, 0, o.rawLen)
		o.dst = dst
	case o.dir == Compress && cap(dst) < len(o.src)+hwSlack:
		// The device may write anywhere in cap(Dst): give it a pooled
		// worst-case buffer and copy the result into the caller's Dst when
		// it fits (the usual case for compressible data).
		p.scratch = getScratch(len(o.src) + len(o.src)/8 + hwSlack)
		p.dst = dst
		dst = (*p.scratch)[:0]
	}
	r := &qm.ZipRequest{Alg: alg, Src: o.src, Dst: dst, Priv: p}
	err := q.z.Submit(r)
	if err != nil && p.scratch != nil {
		putScratch(p.scratch)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, qm.ErrBusy):
		return fmt.Errorf("%w: %w", ErrQueueFull, err)
	case errors.Is(err, qm.ErrBadRequest):
		return fmt.Errorf("%w: %w", errRejected, err)
	case errors.Is(err, qm.ErrQueueDisabled), errors.Is(err, qm.ErrClosed), errors.Is(err, qm.ErrProtocol):
		return fmt.Errorf("%w: %w", errDisabled, err)
	}
	return err
}

// deliverOut turns a delivered request's output into the completion's,
// copying out of (and recycling) a scratch buffer.
func (p *hwPriv) deliverOut(out []byte, err error) []byte {
	if p.scratch == nil {
		return out
	}
	if err != nil {
		putScratch(p.scratch)
		return nil
	}
	if len(out) <= cap(p.dst) {
		out = append(p.dst[:0], out...)
		putScratch(p.scratch)
		return out
	}
	return out // larger than the caller's Dst: hand over the scratch buffer itself
}

// scratchPools hold worst-case compression outputs by power-of-two size
// class (2^12 .. 2^24 bytes).
var scratchPools [25]sync.Pool

func scratchClass(n int) int {
	c := bits.Len(uint(n - 1))
	if c < 12 {
		c = 12
	}
	return c
}

func getScratch(n int) *[]byte {
	c := scratchClass(n)
	if c >= len(scratchPools) {
		b := make([]byte, 0, n)
		return &b
	}
	if b, ok := scratchPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<c)
	return &b
}

func putScratch(b *[]byte) {
	c := scratchClass(cap(*b))
	if c < len(scratchPools) && cap(*b) == 1<<c {
		*b = (*b)[:0]
		scratchPools[c].Put(b)
	}
}

func (q *hwQueue) reap(out []completion) (int, error) {
	n := 0
	_, err := q.z.Poll(len(out), func(r *qm.ZipRequest) {
		p, _ := r.Priv.(hwPriv)
		c := completion{tag: p.tag, out: p.deliverOut(r.Out, r.Err), err: r.Err}
		// A decompression is good only if it produced exactly the expected
		// length from exactly the whole input, as the CPU codec requires
		// (anything else is redone on the CPU, which then decides).
		if c.err == nil && q.dir == Decompress && (len(r.Out) != p.rawLen || r.Consumed != len(r.Src)) {
			c.err = fmt.Errorf("%w: device produced %d of %d bytes from %d of %d input bytes",
				ErrDevice, len(r.Out), p.rawLen, r.Consumed, len(r.Src))
		}
		out[n] = c
		n++
	})
	if !q.qnSeen && q.z.QNMismatches() > 0 {
		// Not fatal: the kernel and UADK ignore sq_num (uadk-spec §2.3).
		q.qnSeen = true
		if q.warn != nil {
			info := q.z.Info()
			q.warn("qn:"+info.Device, "completion names another queue number; ignored as the kernel and UADK do",
				"device", info.Device, "qp", info.QPID)
		}
	}
	if err != nil {
		return n, fmt.Errorf("%w: %w", errDisabled, err)
	}
	return n, nil
}

// close stops the queue, then drains the requests qm still holds (they are
// delivered with ErrClosed) so every buffer pin is released.
func (q *hwQueue) close() error {
	err := q.z.Close()
	for i := 0; q.z.InFlight() > 0 && i < 1<<16; i++ {
		n, perr := q.z.Poll(0, func(*qm.ZipRequest) {})
		if n == 0 && perr != nil {
			break
		}
	}
	return err
}
