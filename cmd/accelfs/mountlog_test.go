package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCappedFile: the log rotates to PATH.1 before passing its cap; the
// newest lines are kept (at most two files: older ones go).
func TestCappedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	f, err := openCapped(mustOpenDir(t, filepath.Dir(p)), "x.log", 1000)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("l", 99) + "\n")
	for i := 0; i < 25; i++ {
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if len(cur) > 1000 || len(old) > 1000 || len(old) == 0 {
		t.Errorf("sizes %d and %d, cap 1000", len(cur), len(old))
	}
	// 10 lines fit; rotations before lines 11 and 21.
	if c, o := bytes.Count(cur, line), bytes.Count(old, line); c != 5 || o != 10 {
		t.Errorf("current has %d lines, old %d; want 5 and 10", c, o)
	}
}

// TestCappedFileRefusesSymlink: a symlink planted at the log's path is not
// followed (issue 9 item 3).
func TestCappedFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "mount.log")
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if f, err := openCapped(mustOpenDir(t, dir), "mount.log", 1<<20); err == nil {
		f.Close()
		t.Fatal("opened a log through a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("victim changed: %q", b)
	}
}

// TestCappedFileRotatesInItsDirectory: rotation happens in the directory
// the log was opened in, even after that directory's path was swapped for a
// symlink to somewhere else (issue 9 item 3).
func TestCappedFileRotatesInItsDirectory(t *testing.T) {
	base := t.TempDir()
	logDir, elsewhere := filepath.Join(base, "logs"), filepath.Join(base, "elsewhere")
	for _, d := range []string{logDir, elsewhere} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f, err := openCapped(mustOpenDir(t, logDir), "x.log", 100)
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(base, "logs.moved")
	if err := os.Rename(logDir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, logDir); err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("l", 59) + "\n")
	for i := 0; i < 3; i++ {
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("rotation wrote through the swapped path: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(moved, "x.log.1")); err != nil {
		t.Errorf("no rotated file in the log's own directory: %v", err)
	}
}

func mustOpenDir(t *testing.T, dir string) *os.File {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLogHandlerFor(t *testing.T) {
	for _, tc := range [][2]string{{"text", "info"}, {"json", "debug"}, {"json", "WARN"}, {"text", "error"}} {
		if _, err := logHandlerFor(&bytes.Buffer{}, tc[0], tc[1]); err != nil {
			t.Errorf("%v: %v", tc, err)
		}
	}
	for _, tc := range [][2]string{{"xml", "info"}, {"text", "chatty"}, {"", "info"}} {
		if _, err := logHandlerFor(&bytes.Buffer{}, tc[0], tc[1]); err == nil {
			t.Errorf("%v accepted", tc)
		}
	}
}
