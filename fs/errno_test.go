package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/accelfs/accelfs/blockstore"
)

func TestToErrno(t *testing.T) {
	for _, tc := range []struct {
		err    error
		want   syscall.Errno
		logged bool
	}{
		{nil, 0, false},
		{fmt.Errorf("read block 3 of /b/f: %w", blockstore.ErrCorrupt), syscall.EIO, true},
		{fmt.Errorf("write: %w", blockstore.ErrNoSpace), syscall.ENOSPC, false},
		{fmt.Errorf("wait: %w: %w", blockstore.ErrInterrupted, context.Canceled), syscall.EINTR, false},
		{context.Canceled, syscall.EINTR, false},
		{fmt.Errorf("x: %w", blockstore.ErrTooLarge), syscall.EFBIG, false},
		{blockstore.ErrNoData, syscall.ENXIO, false},
		{&os.PathError{Op: "openat", Path: "x", Err: syscall.ENOENT}, syscall.ENOENT, false},
		{fmt.Errorf("wrapped: %w", syscall.EXDEV), syscall.EXDEV, false},
		{syscall.EDQUOT, syscall.EDQUOT, false},
		{errors.New("something new"), syscall.EIO, true}, // never ENOSYS
		{fmt.Errorf("bad: %w", syscall.Errno(0)), syscall.EIO, true},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		got := toErrno(log, "read", "/dir/file", tc.err)
		if got != tc.want {
			t.Errorf("toErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if logged := buf.Len() > 0; logged != tc.logged {
			t.Errorf("toErrno(%v): logged %v, want %v (%s)", tc.err, logged, tc.logged, buf.String())
		}
		if tc.logged && !strings.Contains(buf.String(), "/dir/file") {
			t.Errorf("log line does not name the file: %s", buf.String())
		}
	}
}
