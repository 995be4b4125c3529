package integration

import (
	"bytes"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Measurements for issue 11, through a real mount served by the real
// binary on the emulated hisi_zip device with the hisi_zip timing model.
// They print figures and assert only correctness (the machine may be
// slow or shared); run them explicitly:
//
//	ACCELFS_MEASURE=1 go test -p 1 -v -run TestMeasure ./test/integration/

func requireMeasure(t *testing.T) {
	if os.Getenv("ACCELFS_MEASURE") != "1" {
		t.Skip("measurement: set ACCELFS_MEASURE=1 to run")
	}
}

// sourceLike returns n bytes of Go source from GOROOT (compressible like
// real files, about 4x with zlib), repeated as needed.
func sourceLike(t *testing.T, n int) []byte {
	var b bytes.Buffer
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || b.Len() >= 8<<20 {
			return fs.SkipDir
		}
		if strings.HasSuffix(p, ".go") {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	if b.Len() == 0 {
		t.Skip("no Go sources under GOROOT")
	}
	return bytes.Repeat(b.Bytes(), n/b.Len()+1)[:n]
}

// TestMeasureSyncMode: median latency of 4 KiB O_DIRECT reads at random
// distinct blocks (each misses every cache: one block decompressed per
// read), with single-block requests in sync mode (the default) and with
// them sent async (--sync-mode=false), alternating mounts in one run.
func TestMeasureSyncMode(t *testing.T) {
	requireMeasure(t)
	backing := t.TempDir()
	data := sourceLike(t, 64<<20)
	s := startServer(t, backing, "--accel=emu", "--emu-model=hisi_zip")
	writeFile(t, filepath.Join(s.Dir, "f"), data)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	blocks := rand.New(rand.NewSource(1)).Perm(len(data) / (128 << 10))
	med := map[string][]time.Duration{}
	for round := 0; round < 4; round++ {
		mode := []string{"sync", "async"}[round%2]
		s := startServer(t, backing, "--accel=emu", "--emu-model=hisi_zip", "--sync-mode="+map[string]string{"sync": "true", "async": "false"}[mode])
		part := blocks[round*100 : (round+1)*100]
		med[mode] = append(med[mode], directReads(t, filepath.Join(s.Dir, "f"), data, part))
		doc := readStatsDoc(t, s.Dir)
		t.Logf("round %d %s: median %v; device %v", round, mode, med[mode][len(med[mode])-1], engineStats(doc, "hisi_zip-0")["decompress"])
		if err := s.stop(t, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	sy, as := (med["sync"][0]+med["sync"][1])/2, (med["async"][0]+med["async"][1])/2
	t.Logf("4 KiB random read, median: sync %v, async %v, sync/async = %.2f", sy, as, float64(sy)/float64(as))
}

// directReads reads 4 KiB at a random offset inside each listed 128 KiB
// block with O_DIRECT, checks the bytes, and returns the median latency.
func directReads(t *testing.T, path string, want []byte, blocks []int) time.Duration {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Skipf("O_DIRECT open: %v", err)
	}
	defer unix.Close(fd)
	buf := alignedBuf(4096)
	rnd := rand.New(rand.NewSource(int64(len(blocks))))
	var lat []time.Duration
	for _, b := range blocks {
		off := int64(b)*(128<<10) + int64(rnd.Intn(32))*4096
		t0 := time.Now()
		n, err := unix.Pread(fd, buf, off)
		for err == unix.EINTR { // the Go runtime's preemption signals
			n, err = unix.Pread(fd, buf, off)
		}
		lat = append(lat, time.Since(t0))
		if err != nil || n != 4096 || !bytes.Equal(buf, want[off:off+4096]) {
			t.Fatalf("read at %d: %d bytes, %v (or wrong bytes)", off, n, err)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptrOf(b)%4096)
	return b[off%4096:][:n]
}

// TestMeasureStreamDepth: one `dd` stream (1 MiB writes, then a sequential
// read on a fresh mount) through the mount on the emulated hisi_zip with the
// hisi_zip model, against the model's device cap (7 GB/s, uadk-spec §5.1),
// with the --accel cpu figure of the same run for scale.
func TestMeasureStreamDepth(t *testing.T) {
	requireMeasure(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, sourceLike(t, 256<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	exec.Command("cat", src).Run() // warm the page cache
	for _, accel := range []string{"emu", "cpu"} {
		backing := t.TempDir()
		flags := []string{"--accel=" + accel, "--emu-model=hisi_zip"}
		s := startServer(t, backing, flags...)
		w := ddMBs(t, "if="+src, "of="+filepath.Join(s.Dir, "f"), "bs=1M", "conv=fsync")
		doc := readStatsDoc(t, s.Dir)
		s.stop(t, syscall.SIGTERM)
		s = startServer(t, backing, flags...)
		r := ddMBs(t, "if="+filepath.Join(s.Dir, "f"), "of=/dev/null", "bs=1M")
		doc2 := readStatsDoc(t, s.Dir)
		s.stop(t, syscall.SIGTERM)
		t.Logf("%s: write %.0f MB/s (%.2f%% of the 7 GB/s model cap), read %.0f MB/s (%.2f%%); blocks %v; write engines %v; read engines %v",
			accel, w, w/70, r, r/70, doc["blocks"], compact(doc), compact(doc2))
	}
}

func compact(doc map[string]any) map[string]any {
	out := map[string]any{}
	engines, _ := doc["engines"].(map[string]any)
	for name, e := range engines {
		em, _ := e.(map[string]any)
		out[name] = map[string]any{"compress": em["compress"], "decompress": em["decompress"]}
	}
	out["fallbacks"] = doc["fallbacks"]
	return out
}

// ddMBs runs dd with args and returns MB/s (1e6 bytes) from its wall time.
func ddMBs(t *testing.T, args ...string) float64 {
	t0 := time.Now()
	out, err := exec.Command("dd", append(args, "status=none")...).CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		t.Fatalf("dd %v: %v %s", args, err, out)
	}
	var in string
	for _, a := range args {
		if strings.HasPrefix(a, "if=") {
			in = a[3:]
		}
	}
	st, err := os.Stat(in)
	if err != nil {
		t.Fatal(err)
	}
	return float64(st.Size()) / 1e6 / el.Seconds()
}
