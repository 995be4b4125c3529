package session

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/codec"
)

// newEmu creates an emulated hisi_zip device (closed in cleanup, after the
// layer: cleanups run last-registered first).
func newEmu(t testing.TB, o emu.Options) *emu.Device {
	t.Helper()
	o.SysfsRoot = t.TempDir()
	d, err := emu.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// emuLayer builds a layer over one emulated device.
func emuLayer(t testing.TB, d *emu.Device, opts ...Option) *Layer {
	t.Helper()
	devs, err := d.Discover()
	if err != nil || len(devs) != 1 {
		t.Fatalf("discover: %v %v", devs, err)
	}
	return newTestLayer(t, append([]Option{WithDevice(d, devs[0])}, opts...)...)
}

func init() {
	benchEngines = append(benchEngines,
		benchEngine{"emu", func(b *testing.B) []Option {
			d := newEmu(b, emu.Options{})
			devs, _ := d.Discover()
			return []Option{WithDevice(d, devs[0]), WithCPUOffload(false)}
		}},
		benchEngine{"emu-hisi", func(b *testing.B) []Option {
			d := newEmu(b, emu.Options{Model: emu.HisiZipModel()})
			devs, _ := d.Discover()
			return []Option{WithDevice(d, devs[0]), WithCPUOffload(false)}
		}},
		// No-op engine: the device does no work (produced = 0), so what is
		// measured is the session + qm + emu path itself; with the hisi_zip
		// model it waits ≈15µs per request like the real device at depth 1.
		benchEngine{"emu-noop", func(b *testing.B) []Option {
			d := newEmu(b, emu.Options{Engine: emu.EngineNoop})
			devs, _ := d.Discover()
			return []Option{WithDevice(d, devs[0]), WithCPUOffload(false)}
		}},
		benchEngine{"emu-noop-hisi", func(b *testing.B) []Option {
			d := newEmu(b, emu.Options{Engine: emu.EngineNoop, Model: emu.HisiZipModel()})
			devs, _ := d.Discover()
			return []Option{WithDevice(d, devs[0]), WithCPUOffload(false)}
		}},
	)
}

// TestEmuStress: many goroutines x many sessions, sync and async, on the
// emulated device with 16-entry rings (they wrap many times), two nodes.
func TestEmuStress(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "sync", true: "async"}[async]
		t.Run(name, func(t *testing.T) {
			d := newEmu(t, emu.Options{Depth: 16, Node: 1})
			l := emuLayer(t, d, WithSysRoot(twoNodeRoot(t)), WithThreshold(1024, 1024), WithHWCtxsPerRegion(2), WithCPUOffload(false))
			selfTest := d.Stats().Requests // the start-up self-test's requests
			runStress(t, l, codec.Deflate, stress{goroutines: 8, sessions: 16, perG: 60, async: async, sizes: []int{100, 4096, 16 << 10, 64 << 10}})
			m := l.Metrics()
			hw := m.Engines["hisi_zip-0"]
			// 8 queues of 16 entries: at least two full turns of every ring
			// on average.
			if hw.Requests < 2*16*8 || hw.Errors != 0 || hw.Ctxs != 8 {
				t.Fatalf("hardware engine: %+v", hw)
			}
			if st := d.Stats(); st.Requests-selfTest != int64(hw.Requests) {
				t.Fatalf("device saw %d requests, session counted %d", st.Requests, hw.Requests)
			}
			t.Logf("hw %d requests, cpu %d, fallbacks %v", hw.Requests, m.Engines["cpu"].Requests, m.Fallbacks)
		})
	}
}

// TestEmuFormatsInterchangeable: what the device writes decodes with the
// CPU codec and what the CPU writes decodes on the device, for deflate, zlib
// and gzip.
func TestEmuFormatsInterchangeable(t *testing.T) {
	d := newEmu(t, emu.Options{})
	l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false))
	rnd := rand.New(rand.NewSource(11))
	ctx := context.Background()
	for _, algo := range []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip} {
		cs, _ := l.NewSession(SessionOptions{Algo: algo, Dir: Compress, Node: 0})
		ds, _ := l.NewSession(SessionOptions{Algo: algo, Dir: Decompress, Node: 0})
		for kind := 0; kind < 4; kind++ {
			src := testData(rnd, kind, 100<<10)
			r := &Request{Src: src}
			if err := cs.Do(ctx, r); err != nil || r.Engine != "hisi_zip-0" {
				t.Fatalf("%v hw compress: %v on %q", algo, err, r.Engine)
			}
			checkCompressed(t, algo, src, r.Out)
			comp, err := codec.Compress(algo, 0, nil, src)
			if err != nil {
				t.Fatal(err)
			}
			dr := &Request{Src: comp, RawLen: len(src)}
			if err := ds.Do(ctx, dr); err != nil || dr.Engine != "hisi_zip-0" || !bytes.Equal(dr.Out, src) {
				t.Fatalf("%v hw decompress of CPU output: %v on %q", algo, err, dr.Engine)
			}
		}
	}
}

// TestEmuOutOfOrder: four async queues with different added latencies:
// completions arrive out of submit order, each callback runs exactly once.
func TestEmuOutOfOrder(t *testing.T) {
	d := newEmu(t, emu.Options{Queues: 64})
	l := emuLayer(t, d, WithThreshold(0, 0), WithHWCtxsPerRegion(4), WithCPUOffload(false))
	for i, qid := 0, uint16(0); qid < 64; qid++ {
		if q := d.Queue(qid); q != nil {
			q.SetLatency(time.Duration(i%4) * 300 * time.Microsecond)
			i++
		}
	}
	var sess []*Session
	for i := 0; i < 8; i++ {
		s, _ := l.NewSession(SessionOptions{Algo: codec.Gzip, Dir: Compress, Node: 0})
		sess = append(sess, s)
	}
	const n = 400
	calls := make([]atomic.Int32, n)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	wg.Add(n)
	rnd := rand.New(rand.NewSource(12))
	srcs := make([][]byte, n)
	reqs := make([]*Request, n)
	for i := 0; i < n; i++ {
		srcs[i] = testData(rnd, i, 4096)
		reqs[i] = &Request{Src: srcs[i]}
		i := i
		if err := sess[i%len(sess)].Submit(context.Background(), reqs[i], func(*Request) {
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
	if inversions == 0 {
		t.Fatal("completions arrived in submit order")
	}
	time.Sleep(5 * time.Millisecond) // a duplicate callback would show up now
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("request %d: callback ran %d times", i, c)
		}
		if reqs[i].Engine != "hisi_zip-0" {
			t.Fatalf("request %d ran on %q", i, reqs[i].Engine)
		}
		checkCompressed(t, codec.Gzip, srcs[i], reqs[i].Out)
	}
	t.Logf("%d inversions in %d completions", inversions, n)
}

// TestEmuInjectedErrors: 1% of device requests fail with an error status:
// 0 wrong bytes, every failure counted as an error_status fallback.
func TestEmuInjectedErrors(t *testing.T) {
	d := newEmu(t, emu.Options{Depth: 32})
	d.SetFaults(emu.Faults{ErrorRate: 0.01})
	l := emuLayer(t, d, WithSysRoot(twoNodeRoot(t)), WithThreshold(0, 0), WithCPUOffload(false))
	runStress(t, l, codec.Zlib, stress{goroutines: 4, sessions: 8, perG: 150, async: true, sizes: []int{4096, 32 << 10}})
	inj := d.Stats().Injected
	m := l.Metrics()
	if inj == 0 {
		t.Fatal("nothing injected")
	}
	if m.Fallbacks[CauseErrorStatus] != uint64(inj) || m.Engines["hisi_zip-0"].Errors != uint64(inj) {
		t.Fatalf("injected %d, fallbacks %v, engine errors %d", inj, m.Fallbacks, m.Engines["hisi_zip-0"].Errors)
	}
	t.Logf("injected %d errors in %d device requests; %d redone on the CPU", inj, d.Stats().Requests, m.Engines["cpu"].Requests)
}

// TestEmuQueueBudget: the device's queue budget is used up by another user:
// busy_at_open is counted and the work runs on the CPU.
func TestEmuQueueBudget(t *testing.T) {
	d := newEmu(t, emu.Options{Queues: 3})
	l := emuLayer(t, d, WithThreshold(0, 0))
	m := l.Metrics()
	if m.Fallbacks[CauseBusyAtOpen] != 1 || m.Engines["hisi_zip-0"].Ctxs != 3 {
		t.Fatalf("fallbacks %v ctxs %d", m.Fallbacks, m.Engines["hisi_zip-0"].Ctxs)
	}
	// A second layer (another "process") finds no queue at all.
	l2 := emuLayer(t, d, WithThreshold(0, 0))
	if l2.HardwareFor(codec.Deflate, Compress) || l2.Metrics().Fallbacks[CauseBusyAtOpen] != 4 {
		t.Fatalf("second user: %+v", l2.Metrics())
	}
	runStress(t, l2, codec.Deflate, stress{goroutines: 2, sessions: 2, perG: 10, async: true, sizes: []int{8192}})
	if m2 := l2.Metrics(); m2.Engines["hisi_zip-0"].Requests != 0 || m2.Engines["cpu"].Requests != 40 {
		t.Fatalf("second user: %+v", m2.Engines)
	}
}

// TestEmuQueueDisabled: the device disables a queue mid-stream (reset):
// pending requests are redone on the CPU, later ones use the other ctxs.
func TestEmuQueueDisabled(t *testing.T) {
	d := newEmu(t, emu.Options{})
	d.SetFaults(emu.Faults{DisableAfter: 30})
	l := emuLayer(t, d, WithThreshold(0, 0), WithHWCtxsPerRegion(2), WithCPUOffload(false), WithRevive(0))
	runStress(t, l, codec.Deflate, stress{goroutines: 4, sessions: 4, perG: 40, async: true, sizes: []int{4096, 64 << 10}})
	m := l.Metrics()
	if m.Fallbacks[CauseQueueDisabled] == 0 {
		t.Fatalf("fallbacks %v", m.Fallbacks)
	}
	if m.Engines["hisi_zip-0"].Ctxs != 7 {
		t.Fatalf("live ctxs %d, want 7", m.Engines["hisi_zip-0"].Ctxs)
	}
	t.Logf("fallbacks %v", m.Fallbacks)
}

// TestEmuCancelLeaksNothing: requests cancelled while waiting for credits
// return ctx.Err, the submitted ones complete, Close leaves no goroutine and
// the device gets every queue back.
func TestEmuCancelLeaksNothing(t *testing.T) {
	d := newEmu(t, emu.Options{Depth: 4, Model: emu.Model{Latency: 20 * time.Millisecond}})
	l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	var done, cancelled atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
				err := s.Submit(ctx, &Request{Src: make([]byte, 8192)}, func(*Request) { done.Add(1) })
				cancel()
				if err != nil {
					cancelled.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if cancelled.Load() == 0 {
		t.Fatal("no submission was cancelled: the queue never filled")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if done.Load()+cancelled.Load() != 32 {
		t.Fatalf("done %d + cancelled %d != 32", done.Load(), cancelled.Load())
	}
	if st := d.Stats(); st.OpenQueues != 0 {
		t.Fatalf("device still has %d open queues", st.OpenQueues)
	}
	t.Logf("%d completed, %d cancelled", done.Load(), cancelled.Load())
}

// TestEmuTimeout: completions later than the timeout retire the ctx and
// redo the requests on the CPU.
func TestEmuTimeout(t *testing.T) {
	d := newEmu(t, emu.Options{Model: emu.Model{Latency: 300 * time.Millisecond}})
	l := emuLayer(t, d, WithThreshold(0, 0), WithTimeout(30*time.Millisecond), WithSelfTest(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	src := testData(rand.New(rand.NewSource(13)), 0, 8192)
	r := &Request{Src: src}
	if err := s.Do(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Engine != "cpu" || l.Metrics().Fallbacks[CauseTimeout] != 1 {
		t.Fatalf("engine %q fallbacks %v", r.Engine, l.Metrics().Fallbacks)
	}
	checkCompressed(t, codec.Deflate, src, r.Out)
}

// TestEmuCompressDstSizes: compression with the destinations callers really
// pass (none, exactly the block size plus a small header like blockstore's,
// roomy) on compressible and random data: results are always right, and an
// output that does not fit is redone on the CPU as output_too_small.
func TestEmuCompressDstSizes(t *testing.T) {
	d := newEmu(t, emu.Options{})
	l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	rnd := rand.New(rand.NewSource(14))
	const n = 128 << 10
	for _, kind := range []int{0, 1, 3} {
		src := testData(rnd, kind, n)
		for _, dcap := range []int{0, n + 32, 2 * n} {
			var dst []byte
			if dcap > 0 {
				dst = make([]byte, 0, dcap)
			}
			r := &Request{Src: src, Dst: dst}
			if err := s.Do(context.Background(), r); err != nil {
				t.Fatalf("kind %d cap %d: %v", kind, dcap, err)
			}
			checkCompressed(t, codec.Deflate, src, r.Out)
			if dcap > 0 && len(r.Out) <= dcap && &r.Out[:1][0] != &dst[:1][0] {
				t.Fatalf("kind %d cap %d: %d-byte result does not use the caller's Dst", kind, dcap, len(r.Out))
			}
		}
	}
	// The device says "output too small" (0x0e): redone on the CPU.
	d.SetFaults(emu.Faults{TooSmallRate: 1})
	src := testData(rnd, 0, n)
	r := &Request{Src: src, Dst: make([]byte, 0, n+32)}
	if err := s.Do(context.Background(), r); err != nil || r.Engine != "cpu" {
		t.Fatalf("too small: %v on %q", err, r.Engine)
	}
	checkCompressed(t, codec.Deflate, src, r.Out)
	if got := l.Metrics().Fallbacks[CauseOutputTooSmall]; got != 1 {
		t.Fatalf("output_too_small fallbacks %d", got)
	}
}

// TestEmuChaos: every fault at once (1% error status, 1% output too small,
// 2% late completions, a queue disabled mid-run) under many goroutines and
// sessions, sync and async mixed, compress and decompress on the device:
// every byte right, every async callback exactly once, the fallbacks add up,
// nothing leaks.
func TestEmuChaos(t *testing.T) {
	d := newEmu(t, emu.Options{Depth: 32, Queues: 64})
	d.SetFaults(emu.Faults{ErrorRate: 0.01, TooSmallRate: 0.01, LateRate: 0.02, LateBy: 2 * time.Millisecond, DisableAfter: 200})
	l := emuLayer(t, d, WithSysRoot(twoNodeRoot(t)), WithThreshold(512, 512), WithHWCtxsPerRegion(2), WithRevive(5*time.Millisecond),
		WithCPUOffload(false)) // the device path is under test, not load balancing
	var css, dss []*Session
	for i := 0; i < 8; i++ {
		algo := []codec.ID{codec.Deflate, codec.Zlib, codec.Gzip, codec.LZ4}[i%4]
		cs, _ := l.NewSession(SessionOptions{Algo: algo, Dir: Compress, Node: i % 2})
		ds, _ := l.NewSession(SessionOptions{Algo: algo, Dir: Decompress, Node: (i + 1) % 2})
		css, dss = append(css, cs), append(dss, ds)
	}
	var wg sync.WaitGroup
	var bad, twice atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(100 + g)))
			for i := 0; i < 80; i++ {
				k := rnd.Intn(len(css))
				src := testData(rnd, rnd.Intn(4), []int{300, 4096, 20000, 128 << 10}[rnd.Intn(4)])
				do := func(s *Session, r *Request) error {
					if rnd.Intn(2) == 0 {
						return s.Do(context.Background(), r)
					}
					var calls atomic.Int32
					done := make(chan struct{})
					if err := s.Submit(context.Background(), r, func(*Request) {
						if calls.Add(1) == 1 {
							close(done)
						} else {
							twice.Add(1)
						}
					}); err != nil {
						return err
					}
					<-done
					return r.Err
				}
				c := &Request{Src: src}
				if err := do(css[k], c); err != nil {
					t.Error(err)
					return
				}
				r := &Request{Src: c.Out, RawLen: len(src), Dst: make([]byte, 0, len(src))}
				if err := do(dss[k], r); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(r.Out, src) {
					bad.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	time.Sleep(5 * time.Millisecond)
	m := l.Metrics()
	st := d.Stats()
	if bad.Load() != 0 || twice.Load() != 0 {
		t.Fatalf("%d wrong results, %d duplicate callbacks", bad.Load(), twice.Load())
	}
	if st.Injected == 0 || m.Fallbacks[CauseErrorStatus]+m.Fallbacks[CauseOutputTooSmall] == 0 || m.Fallbacks[CauseQueueDisabled] == 0 {
		t.Fatalf("faults not exercised: device %+v, fallbacks %v", st, m.Fallbacks)
	}
	t.Logf("device: %d requests, %d injected; fallbacks %v; engines hw %d cpu %d; revived %d", st.Requests, st.Injected,
		m.Fallbacks, m.Engines["hisi_zip-0"].Requests, m.Engines["cpu"].Requests, m.Engines["hisi_zip-0"].Revived)
}

// TestEmuRevive: a queue disabled by a (simulated) reset is re-created
// after the revival delay and takes work again; the device ends with all of
// the layer's queues open.
func TestEmuRevive(t *testing.T) {
	d := newEmu(t, emu.Options{})
	d.SetFaults(emu.Faults{DisableAfter: 20})
	l := emuLayer(t, d, WithThreshold(0, 0), WithHWCtxsPerRegion(2), WithCPUOffload(false), WithRevive(20*time.Millisecond))
	runStress(t, l, codec.Deflate, stress{goroutines: 4, sessions: 4, perG: 20, async: true, sizes: []int{4096}})
	if l.Metrics().Fallbacks[CauseQueueDisabled] == 0 {
		t.Fatalf("no queue was disabled: %v", l.Metrics().Fallbacks)
	}
	deadline := time.Now().Add(60 * time.Second) // hang guard
	for {
		hw := l.Metrics().Engines["hisi_zip-0"]
		if hw.Ctxs == 8 && hw.Revived >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not revived: %+v", hw)
		}
		// pollers revive on their periodic scan; traffic is not needed
		time.Sleep(5 * time.Millisecond)
	}
	before := l.Metrics().Engines["hisi_zip-0"].Requests
	runStress(t, l, codec.Deflate, stress{goroutines: 4, sessions: 8, perG: 20, async: true, sizes: []int{4096}})
	hw := l.Metrics().Engines["hisi_zip-0"]
	if hw.Requests-before < 100 || hw.Ctxs != 8 {
		t.Fatalf("after revival: %+v", hw)
	}
	if st := d.Stats(); st.OpenQueues != 8 {
		t.Fatalf("device has %d open queues, want 8", st.OpenQueues)
	}
}

// TestRunSpreadsOverQueues: Layer.Run's jobs of one kind use every async
// queue of the region, not just the one a single session is bound to.
func TestRunSpreadsOverQueues(t *testing.T) {
	d := newEmu(t, emu.Options{})
	l := emuLayer(t, d, WithThreshold(0, 0), WithHWCtxsPerRegion(3), WithCPUOffload(false))
	var jobs []*Job
	for i := 0; i < 30; i++ {
		jobs = append(jobs, &Job{Algo: codec.Deflate, Src: make([]byte, 8192)})
	}
	if err := l.Run(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, c := range l.ctxs {
		if c.es.e.isCPU() || c.mode != Async || c.dir != Compress {
			continue
		}
		if c.lastDone.Load() != 0 {
			used++
		}
	}
	if used != 3 {
		t.Fatalf("Run used %d of 3 async compress queues", used)
	}
}

// TestLoadBalance: a device no faster than the CPU (the emulator computes on
// the host) with one queue: a large batch spreads over both engines once
// both have shown their speed ("load"); without offload everything waits
// for the device.
func TestLoadBalance(t *testing.T) {
	for _, offload := range []bool{true, false} {
		d := newEmu(t, emu.Options{})
		// one-job batches async too: the warm-up below must teach the async ctx
		l := emuLayer(t, d, WithThreshold(16<<10, 16<<10), WithCPUOffload(offload), WithSyncSingle(false))
		src := testData(rand.New(rand.NewSource(18)), 0, 64<<10)
		// device sample first; the CPU learns from a probe during the batch
		if err := l.Run(context.Background(), []*Job{{Algo: codec.Deflate, Src: src}}); err != nil {
			t.Fatal(err)
		}
		var jobs []*Job
		for i := 0; i < 48; i++ {
			jobs = append(jobs, &Job{Algo: codec.Deflate, Src: src})
		}
		if err := l.Run(context.Background(), jobs); err != nil {
			t.Fatal(err)
		}
		onCPU := 0
		for _, j := range jobs {
			if j.Err != nil {
				t.Fatal(j.Err)
			}
			checkCompressed(t, codec.Deflate, src, j.Out)
			if j.Engine == "cpu" {
				onCPU++
			}
		}
		m := l.Metrics()
		if offload && (onCPU == 0 || m.Fallbacks[CauseLoad]+m.Fallbacks[CauseQueueFull] != uint64(onCPU)) {
			t.Fatalf("offload: %d of %d on the CPU, fallbacks %v", onCPU, len(jobs), m.Fallbacks)
		}
		if !offload && onCPU != 0 {
			t.Fatalf("no offload: %d on the CPU", onCPU)
		}
		t.Logf("offload %v: %d of %d on the CPU", offload, onCPU, len(jobs))
	}
}

// TestCloseDuringTraffic: Close while goroutines keep submitting (sync and
// async) to the emulated device and the CPU: nothing stays in flight, every
// accepted request completed once, the rest got ErrClosed,
// nothing leaks (cleanup checks goroutines), the device gets its queues back.
func TestCloseDuringTraffic(t *testing.T) {
	d := newEmu(t, emu.Options{Depth: 8, Model: emu.Model{Latency: 200 * time.Microsecond}})
	l := emuLayer(t, d, WithThreshold(2048, 2048), WithHWCtxsPerRegion(2))
	s, _ := l.NewSession(SessionOptions{Algo: codec.Deflate, Dir: Compress, Node: 0})
	var accepted, completed, closedErrs atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			src := make([]byte, []int{1024, 8192}[g%2])
			for {
				var err error
				if g%3 == 0 {
					err = s.Do(context.Background(), &Request{Src: src})
					if err == nil {
						accepted.Add(1)
						completed.Add(1)
					}
				} else {
					err = s.Submit(context.Background(), &Request{Src: src}, func(*Request) { completed.Add(1) })
					if err == nil {
						accepted.Add(1)
					}
				}
				if errors.Is(err, ErrClosed) {
					closedErrs.Add(1)
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	// Close once traffic is really flowing (a fixed sleep could end before
	// a loaded machine completed anything).
	for deadline := time.Now().Add(20 * time.Second); completed.Load() < 50 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// (a submitter racing Close may count itself in and out again for an
	// instant, so in-flight is checked once they have all returned)
	wg.Wait()
	if n := l.inflight.Load(); n != 0 {
		t.Fatalf("%d requests in flight after Close", n)
	}
	if a, c := accepted.Load(), completed.Load(); a != c || a == 0 {
		t.Fatalf("accepted %d, completed %d", a, c)
	}
	if closedErrs.Load() != 6 {
		t.Fatalf("%d of 6 submitters saw ErrClosed", closedErrs.Load())
	}
	if st := d.Stats(); st.OpenQueues != 0 {
		t.Fatalf("device still has %d open queues", st.OpenQueues)
	}
	t.Logf("%d requests accepted and completed", accepted.Load())
}
