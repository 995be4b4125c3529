package session

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Job is one block of a batch (Layer.Run); it mirrors blockstore.Job so the
// adapter in cmd/accelfs only copies fields.
type Job struct {
	Decompress bool
	Algo       codec.ID
	Level      int
	Src        []byte
	Dst        []byte
	RawLen     int
	Out        []byte // result (may alias Dst)
	Err        error  // per-job error
	Engine     string // engine that produced Out
	req        Request
}

type sessKey struct {
	algo  codec.ID
	level int
	dir   Direction
	node  int
}

// sessGroup is the set of sessions Run spreads one key's jobs over: one per
// async hardware ctx of the region (a session's requests all go to its one
// ctx, as in UADK), so a batch can use every queue.
type sessGroup struct {
	sess []*Session
	next atomic.Uint32
}

func (g *sessGroup) pick() *Session {
	return g.sess[int(g.next.Add(1)-1)%len(g.sess)]
}

// SessionFor returns a cached session for (algo, level, dir) on the caller's
// node, creating the group on first use; successive calls rotate over the
// group's sessions (one per async hardware ctx of the region).
func (l *Layer) SessionFor(algo codec.ID, level int, dir Direction) (*Session, error) {
	k := sessKey{algo, level, dir, l.topo.NodeOfCPU(currentCPU())}
	if g, ok := l.sessions.Load(k); ok {
		return g.(*sessGroup).pick(), nil
	}
	first, err := l.NewSession(SessionOptions{Algo: algo, Level: level, Dir: dir, Node: k.node})
	if err != nil {
		return nil, err
	}
	g := &sessGroup{sess: []*Session{first}}
	if first.hw != nil {
		if c := first.bound[engHW][Async].Load(); c != nil {
			r := first.hw.regions[regionKey{c.node, Async, dir}]
			for i := 1; r != nil && i < len(r.ctxs); i++ {
				s, err := l.NewSession(SessionOptions{Algo: algo, Level: level, Dir: dir, Node: k.node})
				if err != nil {
					return nil, err
				}
				g.sess = append(g.sess, s)
			}
		}
	}
	v, _ := l.sessions.LoadOrStore(k, g)
	return v.(*sessGroup).pick(), nil
}

// Run submits every job asynchronously at once, parks, and returns when all
// have completed (each job's Out/Err set). On ctx cancellation it stops
// submitting (the jobs not submitted get Err = ctx.Err()), waits for the ones
// in flight (bounded by the hardware timeout) and returns ctx.Err(). After Run
// returns no job buffer is touched again.
func (l *Layer) Run(ctx context.Context, jobs []*Job) error {
	if len(jobs) == 0 {
		return nil
	}
	if len(jobs) == 1 && !l.cfg.noSyncSingle {
		return l.runOne(ctx, jobs[0])
	}
	done := make(chan struct{})
	var left atomic.Int64
	left.Store(int64(len(jobs)))
	finish := func() {
		if left.Add(-1) == 0 {
			close(done)
		}
	}
	var runErr error
	for i, j := range jobs {
		s, err := l.prepare(j)
		if err == nil {
			jj := j
			err = s.Submit(ctx, &j.req, func(r *Request) {
				jj.Out, jj.Err, jj.Engine = r.Out, r.Err, r.Engine
				finish()
			})
		}
		if err != nil {
			if ctx.Err() != nil || err == ErrClosed {
				// stop submitting; the rest fail with the same error
				runErr = err
				for _, r := range jobs[i:] {
					r.Out, r.Err = nil, err
					finish()
				}
				break
			}
			j.Out, j.Err = nil, err
			finish()
		}
	}
	if l.cfg.pollers == 0 {
		for {
			select {
			case <-done:
				return runErr
			default:
			}
			if l.pollAll() == 0 {
				time.Sleep(time.Microsecond)
			}
		}
	}
	<-done
	return runErr
}

// runOne runs a batch of one job (a small random read or write: one block)
// in sync mode: submitted to the session's sync ctx, then the caller polls
// while the expected completion is short and parks when it is long
// (Session.Do), instead of parking at once on an async completion. Batches
// of several blocks stay async: they are waited for as a whole.
func (l *Layer) runOne(ctx context.Context, j *Job) error {
	s, err := l.prepare(j)
	if err == nil {
		err = s.Do(ctx, &j.req)
		if j.req.Err != nil || err == nil { // completed (well or not)
			j.Out, j.Err, j.Engine = j.req.Out, j.req.Err, j.req.Engine
			return nil
		}
	}
	// not submitted
	j.Out, j.Err = nil, err
	if ctx.Err() != nil || err == ErrClosed {
		return err
	}
	return nil
}

// prepare finds the session for j's algorithm, level and direction and
// fills j's request from it (Run and runOne submit j.req).
func (l *Layer) prepare(j *Job) (*Session, error) {
	dir := Compress
	if j.Decompress {
		dir = Decompress
	}
	s, err := l.SessionFor(j.Algo, j.Level, dir)
	if err != nil {
		return nil, err
	}
	j.req = Request{Src: j.Src, Dst: j.Dst, RawLen: j.RawLen}
	return s, nil
}
