package session

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// twoNodeRoot writes a sysfs tree modelling two NUMA nodes, each holding one
// of the first two CPUs, and returns its root.
func twoNodeRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for n, cpus := range []string{"0\n", "1\n"} {
		d := filepath.Join(root, "devices", "system", "node", "node"+itoa(n))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cpulist"), []byte(cpus), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// newTestLayer builds a layer, closes it in cleanup and checks that no
// goroutine outlives it.
func newTestLayer(t testing.TB, opts ...Option) *Layer {
	t.Helper()
	before := runtime.NumGoroutine()
	// The hardware timeout is an hour unless a test sets its own: with the
	// default 5 s a busy machine could move requests to the CPU, and tests
	// assert which engine ran them.
	l, err := New(append([]Option{WithTimeout(time.Hour)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkGoroutines(t, before)
	})
	return l
}

// checkGoroutines fails when more goroutines run than before (retrying a
// little while exiting goroutines finish).
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // generous: a busy machine
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testData returns n bytes of a kind: 0 text, 1 random, 2 zeros, 3 mixed.
func testData(rnd *rand.Rand, kind, n int) []byte {
	b := make([]byte, n)
	switch kind % 4 {
	case 0:
		words := strings.Fields("the quick brown fox jumps over a lazy dog accelfs compresses blocks with hisi_zip queues and sessions")
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rnd.Intn(len(words))])
			buf.WriteByte(' ')
		}
		copy(b, buf.Bytes())
	case 1:
		rnd.Read(b)
	case 2:
	case 3:
		rnd.Read(b[:n/2])
	}
	return b
}

// roundTrip compresses src with s and decompresses the result with the CPU
// codec, failing on any difference.
func checkCompressed(t testing.TB, algo codec.ID, src, comp []byte) {
	t.Helper()
	got, err := codec.Decompress(algo, nil, comp, len(src))
	if err != nil {
		t.Fatalf("decompress %v (%d -> %d bytes): %v", algo, len(src), len(comp), err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("%v round trip: wrong bytes", algo)
	}
}
