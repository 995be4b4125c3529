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
	// step changes the file, writes it out without committing, sets the
	// mtime as tar would, then lets commit run the store's own writes.
	step := func(name string, change func() error, commit func() error) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, want, want); err != nil {
			t.Fatal(err)
		}
		if err := commit(); err != nil {
			t.Fatal(err)
		}
		check(name)
	}
	write := func(seed int) func() error {
		return func() error { _, err := f.WriteAt(compressible(3*4096, seed), 0); return err }
	}
	// New file: the commit writes the size hint.
	step("first commit (size hint)", write(1), f.Sync)
	// Overwrite: the commit punches the superseded records.
	step("second commit (punch)", write(2), f.Sync)
	// Shrink and close: size hint again, through the store's own commit.
	step("commit at store close", func() error { return f.Truncate(100) }, func() error {
		if err := f.Close(); err != nil {
			return err
		}
		return s.Close()
	})
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
