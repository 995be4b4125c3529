package blockstore

import "errors"

// Errors returned by the store. Callers test them with errors.Is; every error
// the store returns wraps at most one of these, with context (backing file
// path, block index, operation) in the message. fs/errno.go maps them to
// errnos.
var (
	// Errors when opening a store.

	// ErrLocked: another process (or another Store in this process) has the
	// backing directory open. The message names the holder's pid when known.
	ErrLocked = errors.New("blockstore: store is locked by another opener")
	// ErrBadFormat: the format file or a backing file header is not one this
	// version understands (wrong magic, unknown version, bad block size).
	ErrBadFormat = errors.New("blockstore: unsupported or invalid format")
	// ErrNotStore: the directory holds no store (no .accelfs/format) and
	// this call may not create one (fsck, stats, set, get; Open of a
	// directory that is not empty). The message names `accelfs init`.
	ErrNotStore = errors.New("blockstore: not an accelfs store")
	// ErrExists: Init found a store already there.
	ErrExists = errors.New("blockstore: a store already exists")
	// ErrUnsafe: .accelfs or a file in it is not safe to use (a symlink,
	// not a regular file, owned by another user, writable by others).
	ErrUnsafe = errors.New("blockstore: store directory is not safe to use")
	// ErrReadOnly: a write to a store opened read-only (EROFS class).
	ErrReadOnly = errors.New("blockstore: store is read-only")

	// Errors from data operations.

	// ErrCorrupt: data read from the backing directory failed validation
	// (checksum mismatch, impossible length, undecodable payload, garbage
	// index). EIO class. The message names the backing file and block.
	ErrCorrupt = errors.New("blockstore: corrupt data")
	// ErrNoSpace: the backing filesystem is full (ENOSPC/EDQUOT).
	ErrNoSpace = errors.New("blockstore: no space left on backing filesystem")
	// ErrTooLarge: an offset or size beyond what the format can address.
	ErrTooLarge = errors.New("blockstore: offset or size too large")
	// ErrInterrupted: the caller's context was cancelled while waiting
	// (EINTR class). It also wraps the context's error.
	ErrInterrupted = errors.New("blockstore: interrupted")
	// ErrInvalid: a bad argument (negative offset or length, ...).
	ErrInvalid = errors.New("blockstore: invalid argument")
	// ErrNoData: SeekData/SeekHole found nothing at or after the offset
	// (ENXIO class).
	ErrNoData = errors.New("blockstore: no data at or after offset")
	// ErrBusy: the operation needs the store without open files (fsck
	// repair or rebuild while files are open).
	ErrBusy = errors.New("blockstore: store has open files")

	// Errors after Close.

	// ErrClosed: the Store or File was closed.
	ErrClosed = errors.New("blockstore: closed")
)
