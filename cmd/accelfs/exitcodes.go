package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Exit codes for mount-environment classes (documented in docs/cli.md).
// 0-4 are in main.go and fsck.go; a mount gives the same code whether the
// server runs in the foreground or in the background.
const (
	exitNoFUSE      = 5 // FUSE is not usable here: /dev/fuse missing or not accessible, no fusermount3
	exitMountDenied = 6 // the kernel or fusermount3 refused the mount (permissions, fuse.conf)
	exitStoreBusy   = 7 // another server holds the store (it is mounted elsewhere)
)

// codedError is an error with its exit code; exitCodeFor honours it.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return codedError{code, err}
}

// codeOf is the exit code an error carries (0 when it carries none).
func codeOf(err error) int {
	var ce codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 0
}

// The server reports its mount result to a parent that started it in the
// background as one line: "ok", or "err CODE MESSAGE" (newlines in
// MESSAGE escaped as \n) so that the parent exits with the same code as a
// --foreground mount would.

func encodeResult(err error) string {
	if err == nil {
		return "ok"
	}
	msg := strings.ReplaceAll(err.Error(), "\\", "\\\\")
	msg = strings.ReplaceAll(msg, "\n", "\\n")
	return fmt.Sprintf("err %d %s", exitCodeFor(err), msg)
}

// decodeResult parses encodeResult's line; ok is true for "ok".
func decodeResult(line string) (ok bool, err error) {
	line = strings.TrimRight(line, "\n")
	if line == "ok" {
		return true, nil
	}
	rest, found := strings.CutPrefix(line, "err ")
	if !found {
		return false, fmt.Errorf("server: %s", line)
	}
	codeStr, msg, _ := strings.Cut(rest, " ")
	code, cerr := strconv.Atoi(codeStr)
	if cerr != nil || code < 1 || code > 125 {
		return false, fmt.Errorf("server: %s", line)
	}
	r := strings.NewReplacer("\\\\", "\\", "\\n", "\n")
	e := errors.New(r.Replace(msg))
	if code == exitUsage {
		return false, usageError{e}
	}
	return false, withCode(code, e)
}
