package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/accelfs/accelfs/blockstore"
)

// errnoTable maps blockstore's sentinel errors to errnos. Entries are tested
// in order with errors.Is; the first match wins. loud marks the errors that
// are also logged (the user only sees the errno, the log keeps the cause).
// Sentinels not listed (blockstore's open-time errors, every accel/session
// error: an engine failure the compressor could not recover from) are EIO
// and logged, by toErrno's last rule; errno_test.go checks every sentinel
// of both packages.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
	loud  bool
}{
	{blockstore.ErrCorrupt, syscall.EIO, true},
	{blockstore.ErrNoSpace, syscall.ENOSPC, false},
	{blockstore.ErrInterrupted, syscall.EINTR, false},
	{context.Canceled, syscall.EINTR, false},
	{context.DeadlineExceeded, syscall.EINTR, false},
	{blockstore.ErrTooLarge, syscall.EFBIG, false},
	{blockstore.ErrInvalid, syscall.EINVAL, false},
	{blockstore.ErrNoData, syscall.ENXIO, false},
	{blockstore.ErrBusy, syscall.EBUSY, false},
	{blockstore.ErrReadOnly, syscall.EROFS, false},
	{blockstore.ErrBadFormat, syscall.EIO, true},
	{blockstore.ErrClosed, syscall.EIO, true},
	{blockstore.ErrLocked, syscall.EIO, true},
}

// toErrno is the one place where Go errors become errnos. Every op returns
// its error through it. op and path name the operation and the node (path
// relative to the mount root) for the log line; the blockstore's own message
// names the backing file and block.
//
// Rules: nil is OK; a blockstore sentinel maps through errnoTable; any
// syscall.Errno found in the chain (os.PathError, unix errors) is returned
// as is; everything else is EIO and logged. We never hand an error to
// go-fuse's ToErrno, which would turn unknown errors into ENOSYS.
func toErrno(log *slog.Logger, op, path string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			if e.loud {
				log.Error("accelfs: I/O error", "op", op, "path", path, "errno", e.errno.Error(), "err", err)
			}
			return e.errno
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == 0 {
			// An Errno 0 wrapped in an error is a bug somewhere below;
			// do not report success for a failed call.
			log.Error("accelfs: zero errno in error chain", "op", op, "path", path, "err", err)
			return syscall.EIO
		}
		return errno
	}
	log.Error("accelfs: unexpected error, returning EIO", "op", op, "path", path, "err", err)
	return syscall.EIO
}
