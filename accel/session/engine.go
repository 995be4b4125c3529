package session

import (
	"time"

	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// Direction is compress or decompress; fixed per ctx (per hardware queue).
// It is uacce's: the values are hisi_qm's qc_type (0 compress, 1
// decompress), and the hardware engine passes it to the queue unchanged.
type Direction = uacce.Direction

// Directions.
const (
	Compress   = uacce.Compress
	Decompress = uacce.Decompress
)

// Mode is sync or async; fixed per ctx.
type Mode uint8

// Modes.
const (
	Sync  Mode = 0
	Async Mode = 1
)

func (m Mode) String() string {
	if m == Sync {
		return "sync"
	}
	return "async"
}

// op is one unit of work handed to a queue. The queue (and, for hardware, the
// device) may read src and write dst until the op's completion is reaped or
// the queue is closed; never afterwards.
type op struct {
	algo   codec.ID
	level  int
	dir    Direction
	src    []byte
	dst    []byte // output appended to dst[:0]; hardware needs cap(dst) large enough
	rawLen int    // decompress: exact expected output length
}

// completion is what reaping a queue yields for one tag.
type completion struct {
	tag uint16
	out []byte // the result (aliases op.dst when it fit)
	err error  // per-request error; for hardware any error means "redo on the CPU"
}

// engine opens queues. Implementations: cpuEngine (cpu.go) and hwEngine
// (hw.go, over accel/qm).
type engine interface {
	name() string
	isCPU() bool
	supports(algo codec.ID, dir Direction) bool
	// nodes lists the NUMA nodes where this engine can open queues.
	nodes() []int
	// openQueue opens one queue on node for dir and mode. notify, if the
	// queue supports it, is called (from any goroutine, never blocking)
	// after completions are posted.
	openQueue(node int, dir Direction, mode Mode, notify func()) (queue, error)
	close() error
}

// queue is one engine queue. submit and reap are each called by one
// goroutine at a time (the ctx serialises them), possibly concurrently with
// each other.
type queue interface {
	// depth is how many requests may be in flight at once (tags 0..depth-1).
	depth() int
	// submit starts o under tag without blocking.
	submit(tag uint16, o *op) error
	// reap fills out with completions without blocking. A non-nil error means
	// the queue is unusable (disabled by reset, hardware error): the ctx is
	// taken out of service.
	reap(out []completion) (int, error)
	// notifies reports whether notify is called on completion; if not, pollers
	// use wait/backoff.
	notifies() bool
	// wait blocks up to d, or less when a completion may be ready (interrupt
	// mode on a real queue). It may return at once.
	wait(d time.Duration)
	// close stops the queue; after it returns the engine touches no buffer of
	// any op submitted to it.
	close() error
}
