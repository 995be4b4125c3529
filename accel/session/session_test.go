package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}, false},
		{"", nil, false},
		{"5", []int{5}, false},
		{"3-1", nil, true},
		{"0-99999", nil, true},
		{"x", nil, true},
	} {
		got, err := ParseCPUList(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.bad && len(got) != len(tc.want) {
			t.Errorf("%q: got %v want %v", tc.in, got, tc.want)
		}
	}
}

func TestTopologyTwoNodes(t *testing.T) {
	topo, err := ReadTopology(twoNodeRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) != 2 || topo.NodeOfCPU(1) != 1 || topo.NodeOfCPU(0) != 0 {
		t.Fatalf("topology %+v", topo)
	}
	one, err := ReadTopology(t.TempDir()) // no node dir: one node with all CPUs
	if err != nil || len(one.Nodes) != 1 {
		t.Fatalf("fallback topology %+v %v", one, err)
	}
}

// TestCPUEngineAllCodecs: sync and async round trips of every algorithm on
// the CPU engine alone.
func TestCPUEngineAllCodecs(t *testing.T) {
	l := newTestLayer(t, WithSysRoot(twoNodeRoot(t)))
	rnd := rand.New(rand.NewSource(1))
	ctx := context.Background()
	for _, algo := range []codec.ID{codec.None, codec.LZ4, codec.Zstd, codec.Deflate, codec.Zlib, codec.Gzip} {
		cs, err := l.NewSession(SessionOptions{Algo: algo, Dir: Compress, Node: -1})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := l.NewSession(SessionOptions{Algo: algo, Dir: Decompress, Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		for kind := 0; kind < 4; kind++ {
			src := testData(rnd, kind, 64<<10)
			r := &Request{Src: src}
			if err := cs.Do(ctx, r); err != nil {
				t.Fatalf("%v compress: %v", algo, err)
			}
			if r.Engine != "cpu" {
				t.Fatalf("engine %q", r.Engine)
			}
			checkCompressed(t, algo, src, r.Out)
			done := make(chan *Request, 1)
			d := &Request{Src: r.Out, RawLen: len(src), Dst: make([]byte, 0, len(src))}
			if err := ds.Submit(ctx, d, func(r *Request) { done <- r }); err != nil {
				t.Fatal(err)
			}
			got := <-done
			if got.Err != nil || !bytes.Equal(got.Out, src) {
				t.Fatalf("%v decompress: %v", algo, got.Err)
			}
		}
	}
	m := l.Metrics()
	if m.Engines["cpu"].Requests != 48 || m.Engines["cpu"].Errors != 0 {
		t.Fatalf("metrics %+v", m.Engines["cpu"])
	}
}

// TestCorruptInput: a bad block is a per-request error, not a fallback.
func TestCorruptInput(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 16)
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Decompress, Node: 0})
	r := &Request{Src: []byte("definitely not deflate data, no no no"), RawLen: 4096}
	err := s.Do(context.Background(), r)
	if !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

type stress struct {
	goroutines, sessions, perG int
	async                      bool
	sizes                      []int
}

// runStress has many goroutines use many sessions (compress then decompress
// every block, sync or async) and checks every byte.
func runStress(t *testing.T, l *Layer, algo codec.ID, st stress) {
	t.Helper()
	ctx := context.Background()
	var css, dss []*Session
	for i := 0; i < st.sessions; i++ {
		cs, err := l.NewSession(SessionOptions{Algo: algo, Dir: Compress, Node: i % 2})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := l.NewSession(SessionOptions{Algo: algo, Dir: Decompress, Node: (i + 1) % 2})
		if err != nil {
			t.Fatal(err)
		}
		css, dss = append(css, cs), append(dss, ds)
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	errc := make(chan error, st.goroutines)
	for g := 0; g < st.goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < st.perG; i++ {
				src := testData(rnd, rnd.Intn(4), st.sizes[rnd.Intn(len(st.sizes))])
				cs, ds := css[(g+i)%len(css)], dss[(g*7+i)%len(dss)]
				c := &Request{Src: src}
				var err error
				if st.async {
					err = submitWait(ctx, cs, c)
				} else {
					err = cs.Do(ctx, c)
				}
				if err != nil {
					errc <- err
					return
				}
				d := &Request{Src: c.Out, RawLen: len(src)}
				if st.async {
					err = submitWait(ctx, ds, d)
				} else {
					err = ds.Do(ctx, d)
				}
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(d.Out, src) {
					bad.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d blocks came back wrong", bad.Load())
	}
}

func submitWait(ctx context.Context, s *Session, r *Request) error {
	done := make(chan struct{})
	var calls atomic.Int32
	if err := s.Submit(ctx, r, func(*Request) {
		if calls.Add(1) == 1 {
			close(done)
		}
	}); err != nil {
		return err
	}
	<-done
	if calls.Load() != 1 {
		return errors.New("callback ran more than once")
	}
	return r.Err
}

// TestStressFakeHW: many goroutines x many sessions, sync and async, with a
// small queue depth (tags and credits wrap many times) and two nodes.
func TestStressFakeHW(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := "sync"
		if async {
			name = "async"
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeHW("hisi_zip-0", []int{0, 1}, 64, 4)
			l := newTestLayer(t, WithSysRoot(twoNodeRoot(t)), withEngine(f), WithThreshold(1024, 1024), WithHWCtxsPerRegion(2))
			runStress(t, l, codec.Deflate, stress{goroutines: 8, sessions: 16, perG: 40, async: async, sizes: []int{100, 4096, 16 << 10, 64 << 10}})
			m := l.Metrics()
			if m.Engines["hisi_zip-0"].Requests == 0 || m.Engines["cpu"].Requests == 0 {
				t.Fatalf("both engines should have worked: %+v", m)
			}
		})
	}
}

// TestOutOfOrderExactlyOnce: queues with different latencies complete async
// requests out of submit order; every callback runs exactly once.
func TestOutOfOrderExactlyOnce(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 8)
	f.latency = func(q int) time.Duration { return time.Duration(q%4) * 200 * time.Microsecond }
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithHWCtxsPerRegion(4), WithCPUOffload(false))
	var sess []*Session
	for i := 0; i < 8; i++ {
		s, _ := l.NewSession(SessionOptions{Algo: codec.Zlib, Dir: Compress, Node: 0})
		sess = append(sess, s)
	}
	const n = 400
	calls := make([]atomic.Int32, n)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	wg.Add(n)
	rnd := rand.New(rand.NewSource(2))
	srcs := make([][]byte, n)
	reqs := make([]*Request, n)
	for i := 0; i < n; i++ {
		srcs[i] = testData(rnd, i, 2048)
		reqs[i] = &Request{Src: srcs[i]}
		i := i
		if err := sess[i%len(sess)].Submit(context.Background(), reqs[i], func(r *Request) {
			calls[i].Add(1)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("request %d: callback ran %d times", i, c)
		}
		checkCompressed(t, codec.Zlib, srcs[i], reqs[i].Out)
	}
	if inversions == 0 {
		t.Fatal("completions arrived in submit order: the test does not exercise reordering")
	}
	t.Logf("%d inversions in %d completions", inversions, n)
	time.Sleep(10 * time.Millisecond)
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("request %d: callback ran %d times (late)", i, c)
		}
	}
}

// TestInjectedErrors: 1% device errors -> no wrong byte, fallbacks counted.
func TestInjectedErrors(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0, 1}, 64, 16)
	f.errRate = 0.01
	l := newTestLayer(t, WithSysRoot(twoNodeRoot(t)), withEngine(f), WithThreshold(0, 0), WithCPUOffload(false))
	runStress(t, l, codec.Gzip, stress{goroutines: 4, sessions: 8, perG: 150, async: true, sizes: []int{4096, 32 << 10}})
	m := l.Metrics()
	if f.errs.Load() == 0 {
		t.Fatal("no error injected")
	}
	if got := m.Fallbacks[CauseErrorStatus]; got != uint64(f.errs.Load()) {
		t.Fatalf("fallbacks %d, injected %d", got, f.errs.Load())
	}
	if m.Engines["hisi_zip-0"].Errors != uint64(f.errs.Load()) {
		t.Fatalf("engine errors %d, injected %d", m.Engines["hisi_zip-0"].Errors, f.errs.Load())
	}
	t.Logf("injected %d errors in %d hw requests", f.errs.Load(), m.Engines["hisi_zip-0"].Requests)
}

// TestQueueBudgetExhausted: the device has no free queue at open: every
// request runs on the CPU and busy_at_open is counted.
func TestQueueBudgetExhausted(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 2, 16) // 4 regions, only 2 queues
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0))
	m := l.Metrics()
	if m.Fallbacks[CauseBusyAtOpen] != 2 || m.Engines["hisi_zip-0"].Ctxs != 2 {
		t.Fatalf("after open: %+v", m)
	}
	// Compress/Sync and Decompress/Sync got the two queues; async regions are
	// empty: async requests go to the CPU.
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	src := testData(rand.New(rand.NewSource(3)), 0, 8192)
	r := &Request{Src: src}
	if err := submitWait(context.Background(), s, r); err != nil {
		t.Fatal(err)
	}
	if r.Engine != "cpu" {
		t.Fatalf("engine %q, want cpu", r.Engine)
	}
	checkCompressed(t, codec.Deflate, src, r.Out)
	if l.Metrics().Fallbacks[CauseNoCtx] == 0 {
		t.Fatal("no_ctx fallback not counted")
	}
	// no queue at all
	f2 := newFakeHW("hisi_zip-1", []int{0}, 0, 16)
	l2 := newTestLayer(t, withEngine(f2), WithThreshold(0, 0))
	if l2.HardwareFor(codec.Deflate, Compress) {
		t.Fatal("device without queues reported usable")
	}
	s2, _ := l2.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	r2 := &Request{Src: src}
	if err := s2.Do(context.Background(), r2); err != nil || r2.Engine != "cpu" {
		t.Fatalf("%v on %q", err, r2.Engine)
	}
}

// TestQueueDisabled: a queue disabled while requests are pending: they are
// redone on the CPU, the ctx is retired, later requests avoid it.
func TestQueueDisabled(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 16)
	f.latency = func(int) time.Duration { return 2 * time.Millisecond }
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithHWCtxsPerRegion(2), WithCPUOffload(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	rnd := rand.New(rand.NewSource(4))
	var wg sync.WaitGroup
	var bad, touched atomic.Int32
	for i := 0; i < 20; i++ {
		src := testData(rnd, i, 4096)
		r := &Request{Src: src}
		wg.Add(1)
		if err := s.Submit(context.Background(), r, func(r *Request) {
			defer wg.Done()
			if f.busyWith(r.Src) {
				touched.Add(1)
			}
			if r.Err != nil {
				bad.Add(1)
				return
			}
			if got, err := codec.Decompress(codec.Deflate, nil, r.Out, len(src)); err != nil || !bytes.Equal(got, src) {
				bad.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			for _, q := range f.queues {
				q.disabled.Store(true)
			}
		}
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad results", bad.Load())
	}
	m := l.Metrics()
	if m.Fallbacks[CauseQueueDisabled] == 0 {
		t.Fatalf("no queue_disabled fallback: %+v", m.Fallbacks)
	}
	if touched.Load() != 0 {
		t.Fatalf("%d requests handed back while the device was still working on them", touched.Load())
	}
}

// TestTimeout: a device that never completes: the ctx is retired after the
// timeout and the requests are redone on the CPU.
func TestTimeout(t *testing.T) {
	for _, pollers := range []int{1, 0} {
		f := newFakeHW("hisi_zip-0", []int{0}, 64, 16)
		f.hang.Store(true)
		l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithTimeout(50*time.Millisecond), WithPollers(pollers))
		s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
		src := testData(rand.New(rand.NewSource(5)), 0, 4096)
		r := &Request{Src: src}
		start := time.Now()
		if err := s.Do(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if r.Engine != "cpu" || time.Since(start) > time.Minute { // "retired", not "never"
			t.Fatalf("pollers %d: engine %q after %v", pollers, r.Engine, time.Since(start))
		}
		checkCompressed(t, codec.Deflate, src, r.Out)
		if l.Metrics().Fallbacks[CauseTimeout] != 1 {
			t.Fatalf("pollers %d: fallbacks %+v", pollers, l.Metrics().Fallbacks)
		}
	}
}

// TestCancelWhileWaiting: a submitter blocked on a full ctx returns ctx.Err
// on cancellation, its callback never runs and nothing stays counted in
// flight; Close then waits for the requests that were submitted.
func TestCancelWhileWaiting(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 2)
	// The two submitted requests stay in flight until the gate opens (a
	// latency could run out during a stall of the test goroutine).
	f.gate = make(chan struct{})
	l := newTestLayer(t, WithTopology(Topology{Nodes: []Node{{ID: 0, CPUs: []int{0, 1}}}}), withEngine(f), WithThreshold(0, 0))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	src := testData(rand.New(rand.NewSource(6)), 0, 4096)
	// The CPU has no credit left (taken here), so nothing can be rerouted.
	cpuCtx := s.ctxFor(engCPU, Async)
	held := 0
	for cpuCtx.tryCredit() {
		held++
	}
	var done atomic.Int32
	for i := 0; i < 2; i++ { // fills the hw ctx (2 credits)
		if err := s.Submit(context.Background(), &Request{Src: src}, func(*Request) { done.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	var called atomic.Bool
	err := s.Submit(ctx, &Request{Src: src}, func(*Request) { called.Store(true) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("submit on full ctx: %v, want deadline exceeded", err)
	}
	if n := l.inflight.Load(); n != 2 {
		t.Fatalf("layer counts %d in flight, want 2", n)
	}
	for i := 0; i < held; i++ {
		cpuCtx.releaseCredit()
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := s.Do(cctx, &Request{Src: src}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do on cancelled ctx: %v", err)
	}
	if d := done.Load(); d != 0 {
		t.Fatalf("%d requests completed before the device was let go", d)
	}
	close(f.gate)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if done.Load() != 2 || called.Load() {
		t.Fatalf("%d of 2 in-flight completed before Close returned; cancelled callback ran: %v", done.Load(), called.Load())
	}
	if n := l.inflight.Load(); n != 0 {
		t.Fatalf("in flight after Close: %d", n)
	}
	if err := s.Do(context.Background(), &Request{Src: src}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestRunBatch: Layer.Run with mixed jobs, and cancellation mid-batch.
func TestRunBatch(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0, 1}, 64, 8)
	l := newTestLayer(t, WithSysRoot(twoNodeRoot(t)), withEngine(f), WithThreshold(2048, 2048))
	rnd := rand.New(rand.NewSource(7))
	var jobs []*Job
	var srcs [][]byte
	for i := 0; i < 64; i++ {
		algo := []codec.ID{codec.Deflate, codec.LZ4, codec.Zstd, codec.Gzip}[i%4]
		src := testData(rnd, i, []int{1000, 4096, 128 << 10}[i%3])
		srcs = append(srcs, src)
		jobs = append(jobs, &Job{Algo: algo, Src: src})
	}
	if err := l.Run(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	var djobs []*Job
	for i, j := range jobs {
		if j.Err != nil {
			t.Fatal(j.Err)
		}
		djobs = append(djobs, &Job{Decompress: true, Algo: j.Algo, Src: j.Out, RawLen: len(srcs[i]), Dst: make([]byte, 0, len(srcs[i]))})
	}
	if err := l.Run(context.Background(), djobs); err != nil {
		t.Fatal(err)
	}
	for i, j := range djobs {
		if j.Err != nil || !bytes.Equal(j.Out, srcs[i]) {
			t.Fatalf("job %d: %v", i, j.Err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx, jobs); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Run: %v", err)
	}
	for _, j := range jobs {
		if !errors.Is(j.Err, context.Canceled) {
			t.Fatalf("job not marked cancelled: %v", j.Err)
		}
	}
}

func TestNoPollers(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 4)
	l := newTestLayer(t, withEngine(f), WithThreshold(1024, 1024), WithPollers(0))
	runStress(t, l, codec.Deflate, stress{goroutines: 4, sessions: 4, perG: 20, async: false, sizes: []int{512, 8192}})
	// async with an explicit Poll loop
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	var n atomic.Int32
	for i := 0; i < 10; i++ {
		if err := s.Submit(context.Background(), &Request{Src: make([]byte, 4096)}, func(*Request) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for n.Load() < 10 && time.Now().Before(deadline) {
		l.Poll(0)
	}
	if n.Load() != 10 {
		t.Fatalf("%d callbacks", n.Load())
	}
}

func TestMetricsJSON(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 8)
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	if err := s.Do(context.Background(), &Request{Src: make([]byte, 10000)}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(l.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Engines   map[string]map[string]any `json:"engines"`
		Fallbacks map[string]uint64         `json:"fallbacks"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	hw := v.Engines["hisi_zip-0"]
	for _, k := range []string{"requests", "bytes_in", "bytes_out", "errors", "in_flight", "latency_us"} {
		if _, ok := hw[k]; !ok {
			t.Fatalf("engine JSON lacks %q: %s", k, b)
		}
	}
	if hw["requests"].(float64) != 1 || hw["bytes_in"].(float64) != 10000 || v.Fallbacks == nil || v.Engines["cpu"] == nil {
		t.Fatalf("JSON %s", b)
	}
}

func TestCloseIdempotent(t *testing.T) {
	l, err := New(WithSysRoot(twoNodeRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.Close() }()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.NewSession(SessionOptions{Algo: codec.LZ4}); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSession after Close: %v", err)
	}
}

// TestPollersPinnedPerNode: with a two-node topology every poller's thread
// is pinned to exactly its node's CPU.
func TestPollersPinnedPerNode(t *testing.T) {
	allowed := threadCPUs()
	if len(allowed) < 2 || allowed[0] != 0 || allowed[1] != 1 {
		t.Skipf("needs CPUs 0 and 1 available, have %v", allowed)
	}
	f := newFakeHW("hisi_zip-0", []int{0, 1}, 64, 8)
	l := newTestLayer(t, WithSysRoot(twoNodeRoot(t)), withEngine(f), WithPollers(2))
	if len(l.pollers) != 2*2+2 { // cpu: 1 per node; hw: 2 per node
		t.Fatalf("%d pollers", len(l.pollers))
	}
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for _, p := range l.pollers {
		var got *[]int
		for got = p.pinned.Load(); got == nil && time.Now().Before(deadline); got = p.pinned.Load() {
			time.Sleep(time.Millisecond)
		}
		if got == nil || len(*got) != 1 || (*got)[0] != p.node.CPUs[0] {
			t.Fatalf("poller %s of node %d pinned to %v", p.name, p.node.ID, got)
		}
	}
	if mine := threadCPUs(); len(mine) != len(allowed) {
		t.Fatalf("the test goroutine's thread lost CPUs: %v", mine)
	}
}

// TestLoadOffload: a full hardware region sends requests to the CPU when it
// has room (queue_full), unless offload is off.
func TestLoadOffload(t *testing.T) {
	for _, offload := range []bool{true, false} {
		f := newFakeHW("hisi_zip-0", []int{0}, 64, 2)
		f.latency = func(int) time.Duration { return 5 * time.Millisecond }
		if offload {
			// The device completes nothing until all 20 are submitted, so
			// its region is full however slowly the loop runs.
			f.gate = make(chan struct{})
		}
		l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithCPUOffload(offload))
		s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			if err := s.Submit(context.Background(), &Request{Src: make([]byte, 4096)}, func(*Request) { wg.Done() }); err != nil {
				t.Fatal(err)
			}
		}
		if f.gate != nil {
			close(f.gate)
		}
		wg.Wait()
		m := l.Metrics()
		onCPU := m.Engines["cpu"].Requests
		if offload && (onCPU == 0 || m.Fallbacks[CauseQueueFull]+m.Fallbacks[CauseLoad] != onCPU) {
			t.Fatalf("offload: %d on cpu, fallbacks %v", onCPU, m.Fallbacks)
		}
		if !offload && (onCPU != 0 || m.Engines["hisi_zip-0"].Requests != 20) {
			t.Fatalf("no offload: %d on cpu, %d on hw", onCPU, m.Engines["hisi_zip-0"].Requests)
		}
	}
}

// TestPollAlongsidePollers: a caller driving Poll while the internal pollers
// run: every callback still runs exactly once.
func TestPollAlongsidePollers(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 8)
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	const n = 300
	calls := make([]atomic.Int32, n)
	var left atomic.Int32
	left.Store(n)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				l.Poll(16)
			}
		}
	}()
	for i := 0; i < n; i++ {
		i := i
		if err := s.Submit(context.Background(), &Request{Src: make([]byte, 1024)}, func(*Request) {
			calls[i].Add(1)
			left.Add(-1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for left.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	for i := range calls {
		if calls[i].Load() != 1 {
			t.Fatalf("request %d: %d callbacks", i, calls[i].Load())
		}
	}
}

// TestDeviceOnUnlistedNode: a device whose node the topology does not list
// still gets a poller (unpinned): async requests complete.
func TestDeviceOnUnlistedNode(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{3}, 64, 8)
	l := newTestLayer(t, WithTopology(Topology{Nodes: []Node{{ID: 0, CPUs: []int{0, 1}}}}), withEngine(f), WithThreshold(0, 0), WithCPUOffload(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: -1})
	for i := 0; i < 20; i++ {
		r := &Request{Src: make([]byte, 4096)}
		done := make(chan struct{})
		if err := s.Submit(context.Background(), r, func(*Request) { close(done) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("async request on a device of an unlisted node never completed")
		}
		if r.Engine != "hisi_zip-0" {
			t.Fatalf("ran on %q", r.Engine)
		}
	}
}

// TestSubmitAndDoFromCallback: callbacks that submit more work and even call
// Do synchronously (on the poller's own goroutine) do not deadlock, also
// when the ctx is full.
func TestSubmitAndDoFromCallback(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 2)
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithCPUOffload(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	var wg sync.WaitGroup
	var bad atomic.Int32
	src := testData(rand.New(rand.NewSource(15)), 0, 4096)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		if err := s.Submit(context.Background(), &Request{Src: src}, func(*Request) {
			defer wg.Done()
			r := &Request{Src: src}
			if err := s.Do(context.Background(), r); err != nil || r.Engine != "hisi_zip-0" {
				bad.Add(1)
			}
			wg.Add(1)
			if err := s.Submit(context.Background(), &Request{Src: src}, func(*Request) { wg.Done() }); err != nil {
				bad.Add(1)
				wg.Done()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("deadlock: callbacks that submit never finished")
	}
	if bad.Load() != 0 {
		t.Fatalf("%d failures", bad.Load())
	}
}

// TestAdaptivePollPark: a ctx that shows long latencies makes sync callers
// park at once; a fast one lets them poll. Nobody spins on a slow device.
func TestAdaptivePollPark(t *testing.T) {
	run := func(lat, spin time.Duration) EngineMetrics {
		f := newFakeHW("hisi_zip-0", []int{0}, 64, 8)
		if lat > 0 {
			f.latency = func(int) time.Duration { return lat }
		} else {
			f.instant = true
		}
		l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithCPUOffload(false), WithSpinLimit(spin))
		zs, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
		for i := 0; i < 30; i++ {
			if err := zs.Do(context.Background(), &Request{Src: make([]byte, 4096)}); err != nil {
				t.Fatal(err)
			}
		}
		return l.Metrics().Engines["hisi_zip-0"]
	}
	// 20ms per request against a 2ms spin limit: only the first request
	// (no estimate yet) spins, for its 20µs allowance, and then parks.
	slow := run(20*time.Millisecond, 2*time.Millisecond)
	if slow.SyncPolled != 0 || slow.SyncParked != 30 {
		t.Fatalf("slow device: polled %d parked %d; want all parked", slow.SyncPolled, slow.SyncParked)
	}
	// A device that has completed by the time submit returns: the caller's
	// first reap finds the completion, so every request whose estimate is
	// under the spin limit is polled, however slowly the machine schedules
	// goroutines. The limit is generous so that only a stall of the test
	// goroutine longer than a second (inflating the EWMA) can make a
	// request park.
	fast := run(0, time.Second)
	if fast.SyncPolled < 28 {
		t.Fatalf("fast device: polled %d parked %d; want (nearly) all polled", fast.SyncPolled, fast.SyncParked)
	}
	t.Logf("slow: polled %d parked %d; fast: polled %d parked %d", slow.SyncPolled, slow.SyncParked, fast.SyncPolled, fast.SyncParked)
}

// TestReviveCycles: queues keep getting disabled while traffic runs and are
// revived within a millisecond; completions reaped from a queue that died
// meanwhile must never complete a request of its successor (tags repeat):
// every byte right, every callback once.
func TestReviveCycles(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 4)
	f.latency = func(q int) time.Duration { return time.Duration(q%3) * 50 * time.Microsecond }
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithCPUOffload(false), WithRevive(time.Millisecond), WithHWCtxsPerRegion(2))
	stop := make(chan struct{})
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		rnd := rand.New(rand.NewSource(16))
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			f.mu.Lock()
			q := f.queues[rnd.Intn(len(f.queues))]
			f.mu.Unlock()
			q.disabled.Store(true)
		}
	}()
	// Rounds until a fail/revive cycle was seen: on a busy machine the killer
	// may not get to run during one round (every round checks every byte).
	cycled := func(m Metrics) bool {
		return m.Engines["hisi_zip-0"].Revived > 0 && m.Fallbacks[CauseQueueDisabled] > 0
	}
	for round := 0; round == 0 || (!cycled(l.Metrics()) && round < 50); round++ {
		runStress(t, l, codec.Deflate, stress{goroutines: 6, sessions: 6, perG: 60, async: true, sizes: []int{1024, 8192}})
	}
	close(stop)
	killer.Wait()
	m := l.Metrics()
	if !cycled(m) {
		t.Fatalf("no fail/revive cycle in 50 rounds: %+v %v", m.Engines["hisi_zip-0"], m.Fallbacks)
	}
	t.Logf("revived %d, fallbacks %v, hw %d cpu %d", m.Engines["hisi_zip-0"].Revived, m.Fallbacks,
		m.Engines["hisi_zip-0"].Requests, m.Engines["cpu"].Requests)
}

// TestStaleCompletionAfterRevive: a completion reaped from a queue just
// before it failed, and finished only after the ctx was revived, must not
// complete the new request that reuses its tag.
func TestStaleCompletionAfterRevive(t *testing.T) {
	f := newFakeHW("hisi_zip-0", []int{0}, 64, 4)
	f.latency = func(int) time.Duration { return 30 * time.Millisecond }
	l := newTestLayer(t, withEngine(f), WithThreshold(0, 0), WithCPUOffload(false), WithRevive(time.Hour), WithPollers(0))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	c := s.ctxFor(engHW, Async)
	src := testData(rand.New(rand.NewSource(17)), 0, 4096)
	first := make(chan *Request, 1)
	if err := s.Submit(context.Background(), &Request{Src: src}, func(r *Request) { first <- r }); err != nil {
		t.Fatal(err)
	}
	oldGen := c.genLocked()
	c.fail(CauseQueueDisabled, errDisabled) // the first request is redone on the CPU
	if r := <-first; r.Err != nil || r.Engine != "cpu" {
		t.Fatalf("taken-over request: %v on %q", r.Err, r.Engine)
	}
	c.reviveAt.Store(0)
	c.revive()
	if c.dead.Load() {
		t.Fatal("not revived")
	}
	second := make(chan *Request, 1)
	if err := s.Submit(context.Background(), &Request{Src: src}, func(r *Request) { second <- r }); err != nil {
		t.Fatal(err)
	}
	// The old queue's completion for tag 0 arrives late.
	c.finish(completion{tag: 0, out: []byte("garbage")}, oldGen)
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for {
		l.Poll(0)
		select {
		case r := <-second:
			if r.Err != nil || r.Engine != "hisi_zip-0" {
				t.Fatalf("second request: %v on %q", r.Err, r.Engine)
			}
			checkCompressed(t, codec.Deflate, src, r.Out)
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("second request never completed")
		}
		time.Sleep(time.Millisecond)
	}
}
