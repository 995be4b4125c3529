package session

import (
	"context"
	"math/rand"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// profileEmu is an emulated device with the named profile's api and
// algorithms list.
func profileEmu(t testing.TB, name string) *emu.Device {
	t.Helper()
	o, err := emu.WithProfile(emu.Options{}, name)
	if err != nil {
		t.Fatal(err)
	}
	return newEmu(t, o)
}

func doOne(t testing.TB, l *Layer, algo codec.ID, dir Direction, src []byte, rawLen int) *Request {
	t.Helper()
	s, err := l.NewSession(SessionOptions{Algo: algo, Dir: dir, Node: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Src: src, RawLen: rawLen}
	if err := s.Do(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Err != nil {
		t.Fatalf("%v %v: %v", algo, dir, r.Err)
	}
	return r
}

// A device that corrupts its output fails the start-up self-test: it is
// taken out of service (idle, with the reason in Metrics, counted), and the
// work runs on the CPU with correct results.
func TestSelfTestRetiresCorruptDevice(t *testing.T) {
	d := profileEmu(t, "kunpeng920")
	d.SetFaults(emu.Faults{CorruptRate: 1})
	l := emuLayer(t, d, WithThreshold(0, 0))
	m := l.Metrics()
	hw := m.Engines["hisi_zip-0"]
	if !strings.Contains(hw.Idle, "self-test") || hw.Ctxs != 0 || m.Fallbacks[CauseSelfTest] != 1 {
		t.Fatalf("corrupting device still in service: %+v fallbacks %v", hw, m.Fallbacks)
	}
	if l.HardwareFor(codec.Zlib, Compress) {
		t.Fatal("HardwareFor reports a retired device")
	}
	src := testData(rand.New(rand.NewSource(1)), 0, 64<<10)
	r := doOne(t, l, codec.Zlib, Compress, src, 0)
	if r.Engine != "cpu" {
		t.Fatalf("engine %s", r.Engine)
	}
	checkCompressed(t, codec.Zlib, src, r.Out)
}

// A healthy device passes the self-test and does the work.
func TestSelfTestPassesHealthyDevice(t *testing.T) {
	for _, p := range emu.Profiles() {
		d := profileEmu(t, p)
		l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false))
		hw := l.Metrics().Engines["hisi_zip-0"]
		if hw.Idle != "" || hw.Ctxs == 0 {
			t.Fatalf("%s: %+v", p, hw)
		}
		if st := d.Stats(); st.Requests == 0 || st.Injected != 0 {
			t.Fatalf("%s: self-test did not run on the device: %+v", p, st)
		}
	}
}

// With WithVerifyCompression, a device that starts corrupting after the
// self-test is caught block by block: every result decodes to its input,
// the bad outputs are counted and redone on the CPU. Without it the corrupt
// block is delivered (what the option is for).
func TestVerifyCompressionCatchesBadOutput(t *testing.T) {
	for _, verify := range []bool{true, false} {
		d := profileEmu(t, "kunpeng920")
		l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false), WithVerifyCompression(verify))
		d.SetFaults(emu.Faults{CorruptRate: 1})
		src := testData(rand.New(rand.NewSource(2)), 0, 32<<10)
		r := doOne(t, l, codec.Zlib, Compress, src, 0)
		_, derr := codec.Decompress(codec.Zlib, nil, r.Out, len(src))
		bad := l.Metrics().Fallbacks[CauseBadOutput]
		switch {
		case verify && (derr != nil || bad != 1 || r.Engine != "cpu"):
			t.Fatalf("verify: decode %v, bad_output %d, engine %s", derr, bad, r.Engine)
		case !verify && (derr == nil || bad != 0):
			t.Fatalf("no verify: corrupt output went unnoticed by the test (decode %v, bad %d)", derr, bad)
		}
	}
}

// Layer.Expect marks a device idle, with the reason, when it does not offer
// the store's algorithm (a Kunpeng 920 and deflate), and leaves it in
// service when it does.
func TestExpectMarksIdle(t *testing.T) {
	l := emuLayer(t, profileEmu(t, "kunpeng920"))
	l.Expect(codec.Zlib)
	if hw := l.Metrics().Engines["hisi_zip-0"]; hw.Idle != "" {
		t.Fatalf("zlib on a kunpeng920: idle %q", hw.Idle)
	}
	l.Expect(codec.Deflate)
	hw := l.Metrics().Engines["hisi_zip-0"]
	if !strings.Contains(hw.Idle, "deflate") || !strings.Contains(hw.Idle, "zlib gzip") {
		t.Fatalf("deflate on a kunpeng920: idle %q", hw.Idle)
	}
}

// A device listing lz4 compresses lz4 (standard blocks the CPU decodes);
// lz4 decompression stays on the CPU; a device without it does neither.
func TestLZ4CompressOnDevice(t *testing.T) {
	l := emuLayer(t, profileEmu(t, "v3-lz4"), WithThreshold(0, 0), WithCPUOffload(false))
	if !l.HardwareFor(codec.LZ4, Compress) || l.HardwareFor(codec.LZ4, Decompress) {
		t.Fatal("lz4 capability of the v3-lz4 profile")
	}
	src := testData(rand.New(rand.NewSource(3)), 0, 64<<10)
	r := doOne(t, l, codec.LZ4, Compress, src, 0)
	if r.Engine != "hisi_zip-0" {
		t.Fatalf("lz4 compressed on %s", r.Engine)
	}
	checkCompressed(t, codec.LZ4, src, r.Out)
	back := doOne(t, l, codec.LZ4, Decompress, r.Out, len(src))
	if back.Engine != "cpu" || string(back.Out) != string(src) {
		t.Fatalf("lz4 decompressed on %s", back.Engine)
	}
	l2 := emuLayer(t, profileEmu(t, "kunpeng930"))
	if l2.HardwareFor(codec.LZ4, Compress) {
		t.Fatal("kunpeng930 does not list lz4")
	}
}

// Completions whose CQE names another queue number are accepted (the kernel
// and UADK ignore the field): the work stays on the device, no queue dies.
func TestForeignQNNotFatal(t *testing.T) {
	d := profileEmu(t, "kunpeng920")
	d.SetFaults(emu.Faults{WrongQN: true})
	l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false))
	src := testData(rand.New(rand.NewSource(4)), 0, 16<<10)
	for i := 0; i < 20; i++ {
		r := doOne(t, l, codec.Gzip, Compress, src, 0)
		if r.Engine != "hisi_zip-0" {
			t.Fatalf("request %d ran on %s; fallbacks %v", i, r.Engine, l.Metrics().Fallbacks)
		}
	}
	if m := l.Metrics(); len(m.Fallbacks) != 0 || m.Engines["hisi_zip-0"].Idle != "" {
		t.Fatalf("fallbacks %v, engine %+v", m.Fallbacks, m.Engines["hisi_zip-0"])
	}
}

// A batch of one job (a small random read or write) runs in sync mode:
// the caller polls or parks on a sync ctx (counted as sync_polled or
// sync_parked); a batch of several stays async (neither counter moves).
func TestRunSingleJobIsSync(t *testing.T) {
	for _, single := range []bool{true, false} {
		l := emuLayer(t, profileEmu(t, "kunpeng920"), WithThreshold(0, 0), WithCPUOffload(false), WithSyncSingle(single))
		src := testData(rand.New(rand.NewSource(6)), 0, 32<<10)
		j := &Job{Algo: codec.Zlib, Src: src}
		if err := l.Run(context.Background(), []*Job{j}); err != nil || j.Err != nil || j.Engine != "hisi_zip-0" {
			t.Fatalf("single job: %v %v on %q", err, j.Err, j.Engine)
		}
		checkCompressed(t, codec.Zlib, src, j.Out)
		hw := l.Metrics().Engines["hisi_zip-0"]
		if got := hw.SyncPolled + hw.SyncParked; (got == 1) != single {
			t.Fatalf("sync single %v: polled %d parked %d", single, hw.SyncPolled, hw.SyncParked)
		}
		jobs := []*Job{{Algo: codec.Zlib, Src: src}, {Algo: codec.Zlib, Src: src}}
		if err := l.Run(context.Background(), jobs); err != nil {
			t.Fatal(err)
		}
		if hw2 := l.Metrics().Engines["hisi_zip-0"]; hw2.SyncPolled+hw2.SyncParked != hw.SyncPolled+hw.SyncParked {
			t.Fatalf("a batch of two went through sync ctxs: %+v", hw2)
		}
	}
	// cancellation before submission: the job and Run report it
	l := emuLayer(t, profileEmu(t, "kunpeng920"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j := &Job{Algo: codec.Zlib, Src: []byte("x")}
	if err := l.Run(ctx, []*Job{j}); err != context.Canceled || j.Err != context.Canceled {
		t.Fatalf("cancelled: %v %v", err, j.Err)
	}
}

// quietProvider opens emulated queues without their completion hook, so the
// pollers take the path of a real device: arm the queues (priority-1 CQ
// doorbell at the head) and park on them.
type quietProvider struct{ d *emu.Device }

// quietQueue has the emulated queue's methods except SetNotify.
type quietQueue struct {
	uacce.Queue
	uacce.Mapper
}

func (p quietProvider) Discover() ([]uacce.Device, error) { return p.d.Discover() }
func (p quietProvider) Open(dev uacce.Device, dir uacce.Direction) (uacce.Queue, error) {
	q, err := p.d.Open(dev, dir)
	if err != nil {
		return nil, err
	}
	return quietQueue{q, q.(uacce.Mapper)}, nil
}

// Pollers of queues that do not notify park on them (armed first) and
// still complete every request of a multi-queue load; the arm doorbells
// are valid protocol (the emulator counts none as a hardware error).
func TestPollersParkOnArmedQueues(t *testing.T) {
	d := profileEmu(t, "kunpeng930")
	devs, _ := d.Discover()
	l := newTestLayer(t, WithDevice(quietProvider{d}, devs[0]), WithThreshold(0, 0), WithCPUOffload(false), WithHWCtxsPerRegion(2))
	for _, p := range l.pollers {
		if !p.ctxs[0].es.e.isCPU() && p.notify {
			t.Fatal("hardware poller expects notifications from a quiet queue")
		}
	}
	runStress(t, l, codec.Deflate, stress{goroutines: 4, sessions: 8, perG: 20, async: true, sizes: []int{4096, 64 << 10}})
	m := l.Metrics()
	if hw := m.Engines["hisi_zip-0"]; hw.Requests == 0 || hw.Errors != 0 || len(m.Fallbacks) != 0 || d.Stats().HWErrors != 0 {
		t.Fatalf("engine %+v fallbacks %v device %+v", hw, m.Fallbacks, d.Stats())
	}
}
