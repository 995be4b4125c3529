package blockstore

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// testLogger discards log output unless -v.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testOpts(t testing.TB, bs int, algo codec.ID) *Options {
	return &Options{BlockSize: bs, Algo: algo, AlgoSet: true, CommitInterval: -1, Logger: testLogger(t), LockTimeout: 50 * time.Millisecond}
}

func mustOpen(t testing.TB, dir string, o *Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// createFile creates a new backing file and opens it.
func createFile(t testing.TB, s *Store, name string) *File {
	t.Helper()
	bf, err := os.OpenFile(filepath.Join(s.Dir(), name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitFile(bf); err != nil {
		t.Fatal(err)
	}
	f, err := s.OpenFile(bf)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// openFile opens an existing backing file.
func openFile(t testing.TB, s *Store, name string) *File {
	t.Helper()
	bf, err := os.OpenFile(filepath.Join(s.Dir(), name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.OpenFile(bf)
	if err != nil {
		t.Fatalf("OpenFile %s: %v", name, err)
	}
	return f
}

// readAll reads the whole logical contents.
func readAll(t testing.TB, f *File) []byte {
	t.Helper()
	buf := make([]byte, f.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	if n != len(buf) {
		t.Fatalf("ReadAt: %d bytes, want %d", n, len(buf))
	}
	return buf
}

func mustWrite(t testing.TB, f *File, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d, %d): %d, %v", len(p), off, n, err)
	}
}

func checkContent(t testing.TB, f *File, want []byte) {
	t.Helper()
	if f.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", f.Size(), len(want))
	}
	got := readAll(t, f)
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("content differs at offset %d (len %d)", i, len(want))
	}
}

// compressible returns n bytes of text-like data.
func compressible(n int, seed int) []byte {
	b := make([]byte, 0, n+64)
	words := []string{"func ", "return ", "if err != nil {", "}\n", "package ", "blockstore ", "\t", "x := ", "y", "0x1f"}
	for i := seed; len(b) < n; i++ {
		b = append(b, words[(i*7+i/3)%len(words)]...)
	}
	return b[:n]
}
