package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMtimeSurvivesCommit: times set through the mount (tar, touch -d,
// cp -p) are not moved by the store's own later writes (commit size hints,
// hole punches over superseded blocks).
func TestMtimeSurvivesCommit(t *testing.T) {
	m := newMount(t, nil)
	p := m.path("f")
	writeFile(t, p, text(300<<10, 'T'))
	// Overwrite a block so that the commit supersedes a record (punch).
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(text(10<<10, 'W'), 140<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(p, want, want); err != nil {
		t.Fatal(err)
	}
	// fsync commits: size hint, fdatasync, index, hole punch.
	f, err = os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	check := func(when string, path string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v", when, fi.ModTime().UTC(), want)
		}
	}
	check("after fsync", p)
	check("backing file", filepath.Join(m.Backing, "f"))
	m.unmount(t)
	m2 := remount(t, m.Backing, nil)
	check("after remount", m2.path("f"))
}
