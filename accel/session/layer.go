package session

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/codec"
	"golang.org/x/sys/unix"
)

// Layer is the session layer: the engines, their ctx pools, the pollers and
// the metrics. Create with New, use through sessions (NewSession) or Run,
// stop with Close.
type Layer struct {
	cfg     config
	topo    Topology
	log     *slog.Logger
	allowed unix.CPUSet // CPUs the process may use (read once in New, before pinning)

	engines []*engState // engines[0] is the CPU engine
	cpu     *engState
	cpuEng  *cpuEngine
	ctxs    []*hctx // every ctx, for Poll and Close
	pollers []*poller

	inflight  atomic.Int64   // admitted requests not yet completed
	closing   atomic.Bool    // set once by Close
	closingCh chan struct{}  // closed by Close: wakes credit waiters
	drained   chan struct{}  // cap 1: signalled when inflight reaches 0 while closing
	stopCh    chan struct{}  // closed after drain: stops the pollers
	wg        sync.WaitGroup // the pollers
	closeOnce sync.Once
	closeErr  error

	fallbacks sync.Map // cause -> *atomic.Uint64
	warned    sync.Map // key -> struct{}: logged once
	sessions  sync.Map // sessKey -> *Session (Run's cache)
	nsess     atomic.Uint32
	lastScan  atomic.Int64 // unix nanos of the last timeout scan by maybeCheckTimeouts
}

// engState is one engine inside the layer: its ctxs by region and metrics.
type engState struct {
	e       engine
	m       engineMetrics
	regions map[regionKey]*region
	nctx    int
	idle    atomic.Pointer[string] // why the engine gets no work, nil when it may (Metrics: Idle)
}

func (es *engState) setIdle(reason string) { es.idle.Store(&reason) }

type regionKey struct {
	node int
	mode Mode
	dir  Direction
}

// region is the ctxs of one engine for one (node, mode, direction).
type region struct {
	ctxs []*hctx
	next atomic.Uint32 // round-robin position for binding sessions
}

// New builds the layer: reads the topology, starts the CPU engine, opens the
// hardware queues of every configured device (EBUSY or other open failures
// are counted as fallbacks and leave the region smaller or empty), and
// starts the pollers.
func New(opts ...Option) (*Layer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	l := &Layer{cfg: cfg, log: cfg.logger, closingCh: make(chan struct{}),
		drained: make(chan struct{}, 1), stopCh: make(chan struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.allowed = allowedCPUs()
	if cfg.topo != nil {
		l.topo = *cfg.topo
	} else {
		t, err := ReadTopology(cfg.sysRoot)
		if err != nil {
			return nil, err
		}
		l.topo = t
	}
	nodes := len(l.topo.Nodes)
	cpu := newCPUEngine(l.topo, cfg.cpuWorkers, cfg.cpuDepth, nodes*4)
	l.cpu = l.addEngine(cpu)
	l.cpuEng = cpu
	for _, n := range l.topo.Nodes {
		for _, k := range regionKeys(n.ID) {
			if err := l.openCtx(l.cpu, k, nil); err != nil {
				_ = l.shutdown()
				return nil, fmt.Errorf("open cpu ctx: %w", err)
			}
		}
	}
	for _, e := range cfg.engines {
		if hw, ok := e.(*hwEngine); ok {
			hw.warn = l.warnOnce
		}
		l.openEngine(l.addEngine(e))
	}
	l.startPollers()
	return l, nil
}

// openEngine opens cfg.hwCtxs queues per region of a hardware engine. The
// first queue of each direction runs the self-test before it is used; a
// failure retires the whole engine. An engine that opened no queue is
// marked idle with the reason.
func (l *Layer) openEngine(es *engState) {
	var tested [2]bool
	for _, node := range es.e.nodes() {
		for _, k := range regionKeys(node) {
			for i := 0; i < l.cfg.hwCtxs; i++ {
				var test func(queue) error
				if _, hw := es.e.(*hwEngine); hw && !l.cfg.noSelfTest && !tested[k.dir&1] {
					tested[k.dir&1] = true
					dir := k.dir
					test = func(q queue) error { return l.selfTest(es.e, q, dir) }
				}
				err := l.openCtx(es, k, test)
				var st *selfTestError
				switch {
				case errors.As(err, &st):
					l.countFallback(CauseSelfTest, st.err)
					l.log.Error("accelerator failed its self-test and is taken out of service; its work runs on the CPU",
						"device", es.e.name(), "err", st.err)
					l.retire(es, "failed the self-test: "+st.err.Error())
					return
				case err != nil:
					cause := CauseOpenError
					if errors.Is(err, errBusy) || isBusy(err) {
						cause = CauseBusyAtOpen
					}
					l.countFallback(cause, err)
				}
				if err != nil {
					break // the region stays smaller
				}
			}
		}
	}
	if es.nctx == 0 {
		es.setIdle("no queue could be opened (see fallbacks busy_at_open / open_error)")
	}
}

// selfTestError is a queue that opened but failed its self-test.
type selfTestError struct{ err error }

func (e *selfTestError) Error() string { return "self-test: " + e.err.Error() }

// Expect tells the layer the algorithm the store compresses new blocks
// with. Each hardware engine that cannot compress it is marked idle with
// the reason (Metrics: Idle, shown by `accelfs stats`) and the reason is
// logged once: the device is present but will not be used.
func (l *Layer) Expect(algo codec.ID) {
	for _, es := range l.engines[1:] {
		if es.e.supports(algo, Compress) || es.idle.Load() != nil {
			continue
		}
		reason := fmt.Sprintf("the store compresses with %v, which the device does not offer (it lists: %s)",
			algo, strings.Join(engineAlgorithms(es.e), " "))
		es.setIdle(reason)
		l.warnOnce("idle:"+es.e.name(), "accelerator idle: compression runs on the CPU", "device", es.e.name(), "reason", reason)
	}
}

func engineAlgorithms(e engine) []string {
	if hw, ok := e.(*hwEngine); ok {
		return hw.dev.Algorithms
	}
	return nil
}

func regionKeys(node int) []regionKey {
	return []regionKey{
		{node, Sync, Compress}, {node, Sync, Decompress},
		{node, Async, Compress}, {node, Async, Decompress},
	}
}

func (l *Layer) addEngine(e engine) *engState {
	es := &engState{e: e, regions: map[regionKey]*region{}}
	l.engines = append(l.engines, es)
	return es
}

// openCtx opens one queue of es for k and adds its ctx. test, if set, runs
// on the new queue before the ctx exists (so nothing else can see its
// completions); a failure closes the queue and returns a *selfTestError.
func (l *Layer) openCtx(es *engState, k regionKey, test func(queue) error) error {
	// The queue may call notify from its own goroutines; c is published
	// atomically once it exists (nothing completes before a submit on c).
	var cp atomic.Pointer[hctx]
	notify := func() {
		if c := cp.Load(); c != nil {
			if p := c.polRef.Load(); p != nil {
				p.kick()
			}
		}
	}
	q, err := es.e.openQueue(k.node, k.dir, k.mode, notify)
	if err != nil {
		return err
	}
	if test != nil {
		if err := test(q); err != nil {
			_ = q.close()
			return &selfTestError{err}
		}
	}
	c := newCtx(l, es, k.node, k.dir, k.mode, q, notify)
	c.id = len(l.ctxs)
	l.ctxs = append(l.ctxs, c)
	r := es.regions[k]
	if r == nil {
		r = &region{}
		es.regions[k] = r
	}
	r.ctxs = append(r.ctxs, c)
	es.nctx++
	cp.Store(c)
	return nil
}

// startPollers starts, per node and engine with ctxs there, the pollers
// (one for the CPU engine, cfg.pollers for a hardware engine) and hands each
// ctx to one of them. A device on a node the topology does not list (sysfs
// disagreeing with itself) still gets pollers, unpinned.
func (l *Layer) startPollers() {
	if l.cfg.pollers == 0 {
		return
	}
	nodes := append([]Node(nil), l.topo.Nodes...)
	for _, es := range l.engines {
		for k := range es.regions {
			if !containsNode(nodes, k.node) {
				nodes = append(nodes, Node{ID: k.node})
			}
		}
	}
	for i := range nodes {
		n := &nodes[i]
		for _, es := range l.engines {
			var ctxs []*hctx
			for _, k := range regionKeys(n.ID) {
				if r := es.regions[k]; r != nil {
					ctxs = append(ctxs, r.ctxs...)
				}
			}
			if len(ctxs) == 0 {
				continue
			}
			np := l.cfg.pollers
			if es.e.isCPU() {
				np = 1
			}
			if np > len(ctxs) {
				np = len(ctxs)
			}
			ps := make([]*poller, np)
			for j := range ps {
				ps[j] = &poller{l: l, node: n, wake: make(chan struct{}, 1), notify: true,
					name: es.e.name() + "/node" + itoa(n.ID) + "/" + itoa(j)}
			}
			for j, c := range ctxs {
				p := ps[j%np]
				p.ctxs = append(p.ctxs, c)
				p.notify = p.notify && c.queue().notifies()
				c.pol = p
				c.polRef.Store(p)
			}
			l.pollers = append(l.pollers, ps...)
		}
	}
	for _, p := range l.pollers {
		l.wg.Add(1)
		go p.run()
	}
}

func containsNode(ns []Node, id int) bool {
	for _, n := range ns {
		if n.ID == id {
			return true
		}
	}
	return false
}

// admit counts a new request in; false when the layer is closing.
func (l *Layer) admit() bool {
	l.inflight.Add(1)
	if l.closing.Load() {
		l.release()
		return false
	}
	return true
}

// release counts a request out (completed or never submitted).
func (l *Layer) release() {
	if l.inflight.Add(-1) == 0 && l.closing.Load() {
		select {
		case l.drained <- struct{}{}:
		default:
		}
	}
}

// complete finishes t with the engine's result; a hardware error is not a
// result: the request is redone on the CPU.
func (l *Layer) complete(t *task, es *engState, out []byte, err error, lat time.Duration) {
	if err == nil && l.cfg.verify && !es.e.isCPU() && t.op.dir == Compress {
		if verr := verifyCompressed(&t.op, out); verr != nil {
			es.m.record(t.op.dir, len(t.op.src), 0, verr, lat)
			l.countFallback(CauseBadOutput, verr)
			l.redoCPU(t)
			return
		}
	}
	if err != nil && !es.e.isCPU() {
		// counted as a request of the device that failed, then redone
		es.m.record(t.op.dir, len(t.op.src), 0, err, lat)
		l.countFallback(causeOf(err), err)
		l.redoCPU(t)
		return
	}
	es.m.record(t.op.dir, len(t.op.src), len(out), err, lat)
	l.deliver(t, es.e.name(), out, err)
}

// redoCPU runs t with the CPU codec in the calling goroutine (a fallback
// path: rare, and it must not wait for a credit that only this goroutine
// could free).
func (l *Layer) redoCPU(t *task) {
	start := time.Now()
	if cap(t.op.dst) < cap(t.req.Dst) {
		t.op.dst = t.req.Dst
	}
	out, err := runCodec(&t.op)
	l.cpu.m.record(t.op.dir, len(t.op.src), len(out), err, time.Since(start))
	l.deliver(t, "cpu", out, err)
}

func (l *Layer) deliver(t *task, engine string, out []byte, err error) {
	t.req.Out, t.req.Err, t.req.Engine = out, err, engine
	if t.cb != nil {
		t.cb(t.req)
	} else {
		close(t.done)
	}
	l.release()
}

func (l *Layer) countFallback(cause string, err error) {
	v, _ := l.fallbacks.LoadOrStore(cause, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
	l.warnOnce("fallback:"+cause, "accelerator fallback", "cause", cause, "err", err)
}

func (l *Layer) warnOnce(key, msg string, args ...any) {
	if _, loaded := l.warned.LoadOrStore(key, struct{}{}); !loaded {
		l.log.Warn(msg+" (logged once)", args...)
	}
}

// Poll reaps up to max completions from the async ctxs (every node) in the
// calling goroutine, running their callbacks here, and returns how many it
// reaped. It coexists with the internal pollers (each ctx has one reaper at
// a time). max <= 0 means "one pass".
func (l *Layer) Poll(max int) int {
	total := 0
	for _, c := range l.ctxs {
		if c.mode != Async {
			continue
		}
		want := 64
		if max > 0 && max-total < want {
			want = max - total
		}
		total += c.reap(want)
		if max > 0 && total >= max {
			break
		}
	}
	if l.cfg.pollers == 0 {
		l.maybeCheckTimeouts()
	}
	return total
}

// pollAll is Poll over every ctx (sync ones too): used when there are no
// internal pollers.
func (l *Layer) pollAll() int {
	n := 0
	for _, c := range l.ctxs {
		n += c.reap(64)
	}
	l.maybeCheckTimeouts()
	return n
}

// maybeCheckTimeouts runs checkTimeouts over every ctx at most every
// timeout/8 (callers that poll in a loop without internal pollers).
func (l *Layer) maybeCheckTimeouts() {
	now := time.Now().UnixNano()
	last := l.lastScan.Load()
	if now-last < int64(l.cfg.timeout/8) || !l.lastScan.CompareAndSwap(last, now) {
		return
	}
	l.checkTimeouts(l.ctxs)
	for _, c := range l.ctxs {
		c.revive()
	}
}

func (l *Layer) checkTimeouts(ctxs []*hctx) {
	now := time.Now()
	for _, c := range ctxs {
		if c.es.e.isCPU() || c.dead.Load() || c.inflight.Load() == 0 {
			continue
		}
		if o := c.oldest(); !o.IsZero() && now.Sub(o) > l.cfg.timeout {
			c.fail(CauseTimeout, fmt.Errorf("request in flight for %v", now.Sub(o).Round(time.Millisecond)))
		}
	}
}

// Metrics returns a snapshot of the counters.
func (l *Layer) Metrics() Metrics {
	m := Metrics{Engines: map[string]EngineMetrics{}, Fallbacks: map[string]uint64{}}
	for _, es := range l.engines {
		live := 0
		for _, r := range es.regions {
			for _, c := range r.ctxs {
				if !c.dead.Load() {
					live++
				}
			}
		}
		em := es.m.snapshot(live)
		if r := es.idle.Load(); r != nil {
			em.Idle = *r
		}
		m.Engines[es.e.name()] = em
	}
	l.fallbacks.Range(func(k, v any) bool {
		m.Fallbacks[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return m
}

// Engines returns the engine names, CPU first.
func (l *Layer) Engines() []string {
	var ns []string
	for _, es := range l.engines {
		ns = append(ns, es.e.name())
	}
	return ns
}

// HardwareFor reports whether a hardware engine with live ctxs supports
// algo in dir (what `--algo auto` asks).
func (l *Layer) HardwareFor(algo codec.ID, dir Direction) bool {
	for _, es := range l.engines[1:] {
		if es.e.supports(algo, dir) && es.nctx > 0 {
			return true
		}
	}
	return false
}

// HardwareSupport counts the hardware engines in service (live ctxs, not
// idle) and how many of them support algo in dir: what `--algo auto`
// weighs.
func (l *Layer) HardwareSupport(algo codec.ID, dir Direction) (supporting, inService int) {
	for _, es := range l.engines[1:] {
		if es.nctx == 0 || es.idle.Load() != nil {
			continue
		}
		inService++
		if es.e.supports(algo, dir) {
			supporting++
		}
	}
	return supporting, inService
}

// Topology returns the NUMA topology in use.
func (l *Layer) Topology() Topology { return l.topo }

// Close stops admitting requests, waits for the in-flight ones (bounded by
// the hardware timeout), stops the pollers, closes every queue and engine.
// Idempotent; later calls return the first result.
func (l *Layer) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		close(l.closingCh)
		for l.inflight.Load() > 0 {
			if l.cfg.pollers == 0 {
				if l.pollAll() == 0 {
					time.Sleep(time.Microsecond)
				}
				continue
			}
			select {
			case <-l.drained:
			case <-time.After(l.cfg.timeout / 4):
				// belt and braces: a poller may be stuck behind a dead device;
				// check timeouts from here too.
				l.checkTimeouts(l.ctxs)
			}
		}
		l.closeErr = l.shutdown()
	})
	return l.closeErr
}

// shutdown stops pollers, queues and engines. The layer must be idle.
func (l *Layer) shutdown() error {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	for _, p := range l.pollers {
		p.kick()
	}
	l.wg.Wait()
	var errs []error
	for _, c := range l.ctxs {
		if c.dead.CompareAndSwap(false, true) {
			c.mu.Lock()
			c.reapMu.Lock()
			if err := c.queue().close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", c.name(), err))
			}
			c.reapMu.Unlock()
			c.mu.Unlock()
		}
	}
	for _, es := range l.engines {
		if err := es.e.close(); err != nil {
			errs = append(errs, fmt.Errorf("close engine %s: %w", es.e.name(), err))
		}
	}
	return errors.Join(errs...)
}

// pick returns a live ctx of es for (node, mode, dir) by round-robin,
// preferring node, else the nearest other node that has one (NUMA distance,
// then id); nil if none.
func (es *engState) pick(topo Topology, node int, mode Mode, dir Direction) *hctx {
	if c := es.regions[regionKey{node, mode, dir}].pickLive(); c != nil {
		return c
	}
	var ids []int
	for k := range es.regions {
		if k.mode == mode && k.dir == dir && k.node != node {
			ids = append(ids, k.node)
		}
	}
	topo.nearer(node, ids)
	for _, id := range ids {
		if c := es.regions[regionKey{id, mode, dir}].pickLive(); c != nil {
			return c
		}
	}
	return nil
}

func (r *region) pickLive() *hctx {
	if r == nil || len(r.ctxs) == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	for i := 0; i < len(r.ctxs); i++ {
		c := r.ctxs[(int(start)+i)%len(r.ctxs)]
		if !c.dead.Load() {
			return c
		}
	}
	return nil
}

// otherWithCredit tries, without blocking, every other live ctx in c's
// region and returns one whose credit it took.
func (es *engState) otherWithCredit(c *hctx) *hctx {
	r := es.regions[regionKey{c.node, c.mode, c.dir}]
	if r == nil {
		return nil
	}
	for _, o := range r.ctxs {
		if o != c && !o.dead.Load() && o.tryCredit() {
			return o
		}
	}
	return nil
}

// loadMargin: the device's expected completion time must exceed the CPU's
// by this factor before a request is moved to the CPU (hysteresis against
// flapping on noisy estimates).
const loadMargin = 1.5

// preferCPU reports whether t, eligible for the hardware ctx c, would finish
// sooner on the CPU given both engines' current load: the device's queued
// bytes times its observed ns/byte against the CPU's backlog spread over its
// workers times its measured compute ns/byte. False while the device has no
// sample yet (it is the default). While the CPU has no sample for this
// direction, one request goes to it as a probe when the device has work
// queued and the CPU has none, so the model can learn the CPU's speed.
func (l *Layer) preferCPU(c *hctx, t *task) bool {
	hwNPB := math.Float64frombits(c.nsPerByte.Load())
	if hwNPB == 0 {
		return false
	}
	cpuEst := l.cpuEng.estimate(t.op.dir, t.size)
	if cpuEst <= 0 {
		return c.inflightBytes.Load() > 0 && l.cpuEng.backlog.Load() == 0
	}
	hwEst := time.Duration(hwNPB * float64(c.inflightBytes.Load()+t.size))
	return float64(hwEst) > loadMargin*float64(cpuEst)
}
