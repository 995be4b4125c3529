package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// --algo auto per emulator profile: a Kunpeng 920 (zlib gzip) gets zlib, a
// Kunpeng 930 deflate, a device listing lz4 lz4, the CPU lz4; and a block
// compressed with that choice goes to the device.
func TestAutoAlgoPerProfile(t *testing.T) {
	for _, tc := range []struct {
		accel, profile string
		want           codec.ID
		onDevice       bool
	}{
		{"cpu", "", codec.LZ4, false},
		{"emu", "", codec.Zlib, true}, // the default profile is kunpeng920
		{"emu", "kunpeng920", codec.Zlib, true},
		{"emu", "kunpeng930", codec.Deflate, true},
		{"emu", "v3-lz4", codec.LZ4, true},
	} {
		zero := 0
		e := newEngine(t, Config{Accel: tc.accel, EmuProfile: tc.profile, CompressThreshold: &zero})
		got := e.AutoAlgo()
		if got != tc.want {
			t.Errorf("%s/%s: auto = %v, want %v", tc.accel, tc.profile, got, tc.want)
		}
		src := []byte(strings.Repeat("accelfs on a kunpeng ", 4000))
		j := &blockstore.Job{Algo: got, Src: src, Dst: make([]byte, 0, len(src)+len(src)/8+64)}
		if err := e.Compressor().Run(context.Background(), []*blockstore.Job{j}); err != nil || j.Err != nil {
			t.Fatalf("%s/%s: %v %v", tc.accel, tc.profile, err, j.Err)
		}
		if back, err := codec.Decompress(got, nil, j.Out, len(src)); err != nil || string(back) != string(src) {
			t.Fatalf("%s/%s: block does not decode on the CPU: %v", tc.accel, tc.profile, err)
		}
		m := e.Layer.Metrics()
		if hw := m.Engines["hisi_zip-0"]; (hw.Compress.Requests > 0) != tc.onDevice {
			t.Errorf("%s/%s: device compress requests %d", tc.accel, tc.profile, hw.Compress.Requests)
		}
	}
}

// A store whose algorithm the device does not offer: the device is idle
// and the stats document says why.
func TestExpectReportsIdle(t *testing.T) {
	e := newEngine(t, Config{Accel: "emu"})
	e.Expect("deflate")
	m := e.Metrics().(session.Metrics)
	if idle := m.Engines["hisi_zip-0"].Idle; !strings.Contains(idle, "deflate") {
		t.Fatalf("idle %q", idle)
	}
	e2 := newEngine(t, Config{Accel: "emu"})
	e2.Expect("zlib")
	if idle := e2.Layer.Metrics().Engines["hisi_zip-0"].Idle; idle != "" {
		t.Fatalf("zlib on kunpeng920 idle: %q", idle)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Accel: "emu", EmuProfile: "kunpeng9000"},
		{Accel: "emu", EmuModel: "fast"},
		{Accel: "hisi_zip-7", SysfsRoot: t.TempDir()},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if EngineOf(nil) != nil {
		t.Error("EngineOf(nil)")
	}
}
