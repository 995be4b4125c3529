package blockstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/accelfs/accelfs/codec"
)

// Job is one block for the Compressor.
type Job struct {
	Decompress bool
	Algo       codec.ID
	Level      int
	Src        []byte
	Dst        []byte // output buffer, appended to from Dst[:0]; for Decompress it has cap >= RawLen
	RawLen     int    // Decompress: exact expected output length
	Out        []byte // result (may alias Dst)
	Err        error  // per-job error (codec.ErrCorrupt for bad data, ...)
}

// Compressor runs batches of compression and decompression jobs. The store
// submits every block of one request in one Run call, so an implementation
// can work on them in parallel (CPU workers, hardware queues).
type Compressor interface {
	// Run submits every job at once and returns when all have completed
	// (Out/Err set). On ctx cancellation it stops submitting, waits for the
	// ones in flight (bounded) and returns ctx.Err(); jobs that never ran
	// have Err set. After Run returns the implementation never touches any
	// job buffer again.
	Run(ctx context.Context, jobs []*Job) error
}

// CPUCompressor runs jobs on the CPU through codec/, with at most Workers
// jobs running at any time across all concurrent Run calls. It starts no
// long-lived goroutine: the goroutines of a Run call end before it returns.
type CPUCompressor struct {
	sem chan struct{} // one token per running worker goroutine
}

// NewCPUCompressor returns a CPU compressor with the given number of workers
// (at least 1).
func NewCPUCompressor(workers int) *CPUCompressor {
	if workers < 1 {
		workers = 1
	}
	return &CPUCompressor{sem: make(chan struct{}, workers)}
}

// Run implements Compressor.
func (c *CPUCompressor) Run(ctx context.Context, jobs []*Job) error {
	if len(jobs) == 0 {
		return ctx.Err()
	}
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(jobs) {
				return
			}
			j := jobs[i]
			if err := ctx.Err(); err != nil {
				j.Out, j.Err = nil, err
				continue
			}
			runJob(j)
		}
	}
	var wg sync.WaitGroup
	n := min(len(jobs), cap(c.sem))
spawn:
	for range n {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			break spawn
		}
		wg.Add(1)
		go func() {
			defer func() { <-c.sem; wg.Done() }()
			work()
		}()
	}
	wg.Wait()
	// Jobs no worker picked up (cancelled before any worker could start).
	for i := int(next.Load()); i < len(jobs); i++ {
		jobs[i].Out, jobs[i].Err = nil, ctx.Err()
	}
	return ctx.Err()
}

// runJob runs one job on the calling goroutine.
func runJob(j *Job) {
	if j.Decompress {
		if j.RawLen < 0 || j.RawLen > MaxBlockSize {
			j.Out, j.Err = nil, fmt.Errorf("%w: raw length %d", codec.ErrTooLarge, j.RawLen)
			return
		}
		j.Out, j.Err = codec.Decompress(j.Algo, j.Dst[:0], j.Src, j.RawLen)
		return
	}
	j.Out, j.Err = codec.Compress(j.Algo, j.Level, j.Dst[:0], j.Src)
}
