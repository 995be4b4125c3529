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
	f, err := openCapped(p, 1000)
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
	if f, err := openCapped(p, 1<<20); err == nil {
		f.Close()
		t.Fatal("opened a log through a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("victim changed: %q", b)
	}
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
