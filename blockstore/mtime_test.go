package blockstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// TestCommitKeepsMtime: a commit's own writes (the size hint, punching the
// superseded records) must not move the backing mtime, which is the file's
// mtime. `tar -x` writes, closes, then sets the mtime; a later commit used to
// replace it with the commit time.
func TestCommitKeepsMtime(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	path := filepath.Join(dir, "a")
	f := createFile(t, s, "a")
	want := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	check := func(step string) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(want) {
			t.Fatalf("%s: backing mtime %v, want %v", step, st.ModTime().UTC(), want)
		}
	}
	// New file: the commit writes the size hint.
	mustWrite(t, f, compressible(3*4096, 1), 0)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, want, want); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	check("first commit (size hint)")
	// Overwrite: the commit punches the superseded records.
	mustWrite(t, f, compressible(3*4096, 2), 0)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, want, want); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	check("second commit (punch)")
	// Shrink and close: size hint again, through the store's own commit.
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, want, want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("commit at store close")
}

// TestCommitNow: Store.Commit makes what was written visible in the
// committed stats at once (they otherwise lag by the commit interval).
func TestCommitNow(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	o.CommitInterval = -1
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(5*4096+100, 3), 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().LogicalBytes; got != 0 {
		t.Fatalf("before Commit: logical %d, want 0 (nothing committed yet)", got)
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().LogicalBytes; got != 5*4096+100 {
		t.Fatalf("after Commit: logical %d, want %d", got, 5*4096+100)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
}
