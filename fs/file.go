package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// handle is one FUSE file handle (one open(2) in some process) of a
// regular file. All handles of a file share the node's openFile; the
// blockstore file does its own locking, so handles need none for data.
type handle struct {
	n  *Node
	of *openFile
	// errs is this handle's position in the file's write-back failures
	// (errseq): each handle reports a failure once, at its next flush
	// (close(2)) or fsync, and only failures after it was opened.
	errs *blockstore.ErrCursor
	// writable: opened for writing. A read-only descriptor's close(2)
	// reports nothing: other writers' failures are theirs to see.
	writable bool

	once sync.Once // Release runs the node release exactly once
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.of.file.ReadAtContext(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.errno("read", "", err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	k, err := h.of.file.WriteAtContext(ctx, data, off)
	if k > 0 {
		h.of.lastWrite.Store(timeNow())
	}
	if err != nil {
		return uint32(k), h.n.errno("write", "", err)
	}
	return uint32(k), 0
}

// Flush runs at every close(2) of a descriptor: the dirty blocks are
// written so that errors reach close(2) of a descriptor that wrote. A
// read-only descriptor has nothing of its own to write, and close(2) of
// it must not fail with another writer's ENOSPC or EFBIG (cat, cmp, tar).
// A FUSE interrupt does not stop it (context.WithoutCancel): the kernel
// sends one for any signal, Go's preemption signal included, and an EINTR
// from close(2) is an error the caller cannot retry (the descriptor is
// gone), so cp, tar or a Go program would report a failed close on a
// harmless signal (seen: posixtest DirectIO). The write-out is bounded
// (faults fail, they do not wait forever), so close(2) ends anyway.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if !h.writable {
		return 0
	}
	return h.n.errno("flush", "", h.of.file.FlushReportContext(context.WithoutCancel(ctx), h.errs))
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.errno("fsync", "", h.of.file.SyncReportContext(ctx, h.errs))
}

// Release drops the handle; the last one closes the blockstore file,
// writing out what is still dirty. It ignores ctx: the kernel sends
// RELEASE without waiting for it and never interrupts it (see
// blockstore.File.Close).
func (h *handle) Release(ctx context.Context) syscall.Errno {
	var err error
	h.once.Do(func() { err = h.n.release(h.of) })
	return h.n.errno("release", "", err)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	var pos int64
	var err error
	switch whence {
	case unix.SEEK_DATA:
		pos, err = h.of.file.SeekData(int64(off))
	case unix.SEEK_HOLE:
		pos, err = h.of.file.SeekHole(int64(off))
	default:
		// The kernel handles SEEK_SET/CUR/END itself.
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, h.n.errno("lseek", "", err)
	}
	return uint64(pos), 0
}

// Allocate implements fallocate modes 0, KEEP_SIZE and PUNCH_HOLE (which
// the kernel always combines with KEEP_SIZE).
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	var err error
	switch mode {
	case 0:
		err = h.of.file.AllocateContext(ctx, int64(off), int64(size), false)
	case unix.FALLOC_FL_KEEP_SIZE:
		err = h.of.file.AllocateContext(ctx, int64(off), int64(size), true)
	case unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE:
		err = h.of.file.PunchHoleContext(ctx, int64(off), int64(size))
	default:
		return syscall.EOPNOTSUPP
	}
	return h.n.errno("fallocate", "", err)
}

// Getattr answers fstat-like calls that come with a handle.
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.n.Getattr(ctx, h, out)
}

// dirHandle lists a backing directory, hiding the store's own directory
// in the root.
type dirHandle struct {
	ds   gofs.DirStream
	hide bool
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	for {
		if !d.ds.HasNext() {
			return nil, 0
		}
		e, errno := d.ds.Next()
		if errno != 0 {
			return nil, errno
		}
		if d.hide && e.Name == MetaDir {
			continue
		}
		return &e, 0
	}
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.ds.(gofs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if s, ok := d.ds.(gofs.FileFsyncdirer); ok {
		return s.Fsyncdir(ctx, flags)
	}
	return 0
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) { d.ds.Close() }

// newHandle returns a FUSE handle on of opened with flags.
func newHandle(n *Node, of *openFile, flags uint32) *handle {
	return &handle{n: n, of: of, errs: of.file.NewErrCursor(), writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY}
}
