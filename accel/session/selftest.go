package session

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// The self-test runs when a device's first queue of a direction is opened
// (in New, before any request and before the pollers start): a known corpus
// is compressed on the device and decoded on the CPU, and compressed on the
// CPU and decoded on the device, for every algorithm the device offers in
// that direction. A device that fails is taken out of service (its queues
// closed, the engine idle with the reason in Metrics) so a device emitting
// bad streams never reaches the store. Data correctness does not depend on
// it (every device error is redone on the CPU; WithVerifyCompression checks
// each block); it turns a broken device into one clear log line at start.

// selfTestCorpus is 16 KiB of mixed text and binary-ish bytes: compressible,
// above every default threshold, several deflate blocks' worth of matches.
var selfTestCorpus = func() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 16<<10; i++ {
		b.WriteString("accelfs self-test line ")
		b.WriteString(strconv.Itoa(i * 7919 % 10007))
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), i%13))
		b.WriteByte(byte(i * 31))
		b.WriteByte('\n')
	}
	return b.Bytes()[:16<<10]
}()

// selfTestAlgos are the algorithms the self-test tries, where offered.
var selfTestAlgos = []codec.ID{codec.Zlib, codec.Gzip, codec.Deflate, codec.LZ4}

// selfTest checks one freshly opened queue of e for dir; nil when every
// offered algorithm round-trips through the CPU codec.
func (l *Layer) selfTest(e engine, q queue, dir Direction) error {
	for _, algo := range selfTestAlgos {
		if !e.supports(algo, dir) {
			continue
		}
		if err := l.selfTestOne(q, algo, dir); err != nil {
			return fmt.Errorf("%v %v: %w", algo, dirName(dir), err)
		}
	}
	return nil
}

func (l *Layer) selfTestOne(q queue, algo codec.ID, dir Direction) error {
	src := selfTestCorpus
	o := op{algo: algo, dir: dir, src: src, dst: make([]byte, 0, len(src)+len(src)/8+hwSlack)}
	if dir == Decompress {
		enc, err := codec.Compress(algo, 0, nil, src)
		if err != nil {
			return err
		}
		o.src, o.rawLen, o.dst = enc, len(src), make([]byte, 0, len(src))
	}
	out, err := runOnQueue(q, &o, max(l.cfg.timeout, time.Second))
	if err != nil {
		return err
	}
	if dir == Compress {
		// decode what the device wrote on the CPU
		if out, err = codec.Decompress(algo, nil, out, len(src)); err != nil {
			return fmt.Errorf("device output does not decode on the CPU: %w", err)
		}
	}
	if !bytes.Equal(out, src) {
		return errors.New("device result differs from the corpus")
	}
	return nil
}

// runOnQueue submits o under tag 0 and reaps until it completes; it waits
// at most timeout without a completion (the device's own timeout).
func runOnQueue(q queue, o *op, timeout time.Duration) ([]byte, error) {
	if err := q.submit(0, o); err != nil {
		return nil, err
	}
	var c [1]completion
	start := time.Now()
	for {
		n, err := q.reap(c[:])
		if n == 1 {
			return c[0].out, c[0].err
		}
		if err != nil {
			return nil, err
		}
		if time.Since(start) > timeout {
			return nil, fmt.Errorf("no completion within %v", timeout)
		}
		q.wait(100 * time.Microsecond)
	}
}

func dirName(d Direction) string {
	if d == Compress {
		return "compress"
	}
	return "decompress"
}

// retire takes es out of service: closes every queue it opened, leaves no
// ctx to pick, and records why (Metrics: Idle).
func (l *Layer) retire(es *engState, reason string) {
	for _, r := range es.regions {
		for _, c := range r.ctxs {
			c.reviveAt.Store(math.MaxInt64) // never revived
			if c.dead.CompareAndSwap(false, true) {
				close(*c.deadCh.Load())
				_ = c.queue().close()
			}
		}
	}
	es.nctx = 0
	es.setIdle(reason)
}

// verifyCompressed decodes a device's compressed output on the CPU and
// checks it reproduces the input (WithVerifyCompression).
func verifyCompressed(o *op, out []byte) error {
	dec, err := codec.Decompress(o.algo, make([]byte, 0, len(o.src)), out, len(o.src))
	if err != nil {
		return fmt.Errorf("%w: device output does not decode: %w", ErrDevice, err)
	}
	if !bytes.Equal(dec, o.src) {
		return fmt.Errorf("%w: device output decodes to other bytes", ErrDevice)
	}
	return nil
}
