package integration

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/codec"
)

// engineStats returns stats["engines"][name] (nil when absent).
func engineStats(doc map[string]any, name string) map[string]any {
	engines, _ := doc["engines"].(map[string]any)
	e, _ := engines[name].(map[string]any)
	return e
}

// TestEmuStoreReadsOnCPU: a store written by the real binary with
// --accel emu --algo auto (the default profile, a Kunpeng 920: zlib blocks
// compressed by the emulated hisi_zip device) reads back identically with
// --accel cpu, and the stats document shows which engine did the work.
func TestEmuStoreReadsOnCPU(t *testing.T) {
	backing := t.TempDir()
	rnd := rand.New(rand.NewSource(5))
	files := map[string][]byte{}
	for i, n := range []int{1, 4095, 128 << 10, 1<<20 + 17, 3 << 20} {
		b := text(n, byte('a'+i))
		if i%2 == 1 { // some incompressible stretches too
			rnd.Read(b[len(b)/2:])
		}
		files[filepath.Join("d", string(rune('a'+i)))] = b
	}

	s := startServer(t, backing, "--accel=emu", "--algo=auto")
	if err := os.Mkdir(filepath.Join(s.Dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		writeFile(t, filepath.Join(s.Dir, name), data)
	}
	for name, data := range files {
		wantContent(t, filepath.Join(s.Dir, name), data)
	}
	doc := readStatsDoc(t, s.Dir)
	hw := engineStats(doc, "hisi_zip-0")
	if hw == nil || hw["requests"].(float64) == 0 || hw["bytes_in"].(float64) == 0 {
		t.Fatalf("stats: the emulated device did no work: %v", doc["engines"])
	}
	if _, ok := doc["fallbacks"].(map[string]any); !ok {
		t.Fatalf("stats without fallbacks: %v", doc)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	c := startServer(t, backing, "--accel=cpu")
	for name, data := range files {
		wantContent(t, filepath.Join(c.Dir, name), data)
	}
	doc = readStatsDoc(t, c.Dir)
	if blocks, _ := doc["blocks"].(map[string]any); blocks["zlib"] == nil || blocks["deflate"] != nil {
		t.Fatalf("--algo auto on a kunpeng920 should store zlib blocks: %v", doc["blocks"])
	}
	cpu := engineStats(doc, "cpu")
	if cpu == nil || engineStats(doc, "hisi_zip-0") != nil {
		t.Fatalf("cpu mount engines: %v", doc["engines"])
	}
	if dec, _ := cpu["decompress"].(map[string]any); dec == nil || dec["requests"].(float64) == 0 {
		t.Fatalf("cpu mount decompressed nothing: %v", cpu)
	}
	if err := c.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestSuiteAccelMode: the suite's engine for ACCELFS_TEST_ACCEL is the
// engine package's, and autoAlgo picks what the mode's device lists (zlib
// for emu: the default profile is a Kunpeng 920), lz4 for cpu. No mount.
func TestSuiteAccelMode(t *testing.T) {
	for _, mode := range []string{"cpu", "emu"} {
		comp, metrics, closer, err := newCompressor(mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		algo := autoAlgo(comp)
		m, _ := metrics().(session.Metrics)
		closer.Close()
		_, hasDev := m.Engines["hisi_zip-0"]
		switch {
		case mode == "cpu" && (algo != codec.LZ4 || hasDev || len(m.Engines) != 1):
			t.Fatalf("cpu: algo %v engines %v", algo, m.Engines)
		case mode == "emu" && (algo != codec.Zlib || !hasDev):
			t.Fatalf("emu: algo %v engines %v", algo, m.Engines)
		}
	}
}

// TestEmuIdleDeviceReported: a store whose algorithm the device does not
// offer (deflate on a Kunpeng 920) mounts, works on the CPU, and says so
// once in the log and in `accelfs stats` (the device idle, with why).
func TestEmuIdleDeviceReported(t *testing.T) {
	backing := t.TempDir()
	s := startServer(t, backing, "--accel=emu", "--algo=deflate")
	data := text(1<<20, 'k')
	writeFile(t, filepath.Join(s.Dir, "f"), data)
	wantContent(t, filepath.Join(s.Dir, "f"), data)
	doc := readStatsDoc(t, s.Dir)
	hw := engineStats(doc, "hisi_zip-0")
	idle, _ := hw["idle"].(string)
	if !strings.Contains(idle, "deflate") {
		t.Fatalf("stats: device not reported idle: %v", hw)
	}
	if c, _ := hw["compress"].(map[string]any); c["requests"].(float64) != 0 {
		t.Fatalf("idle device compressed: %v", hw)
	}
	out, err := exec.Command(accelfsBinary(t), "stats", s.Dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "idle=") {
		t.Fatalf("accelfs stats text: %v\n%s", err, out)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(readFile(s.log), "accelerator idle"); n != 1 {
		t.Fatalf("log has %d idle lines, want 1:\n%s", n, readFile(s.log))
	}
}
