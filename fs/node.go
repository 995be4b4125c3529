package fs

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// Node is one file, directory, symlink or special file of the mount. It
// holds no name: its backing location is found from go-fuse's tree (parent
// and name) at each operation.
type Node struct {
	gofs.Inode
	m *mount

	// mu protects open and stamp. Lock order: Node.mu, then blockstore's
	// own locks (fs never holds mu while waiting on another node).
	mu sync.Mutex
	// open is the blockstore file shared by all FUSE handles of this
	// regular file (and by internal users such as truncate without a
	// handle); nil when nothing has it open.
	open *openFile
	// stamp is the (mtime, size) seen when the last handle was released;
	// an open that finds the same values keeps the kernel page cache.
	stamp    [2]int64
	hasStamp bool
}

// openFile is a regular file opened in the blockstore.
type openFile struct {
	refs int              // under Node.mu
	fd   *os.File         // our own fd on the backing file (fstat, fd paths)
	file *blockstore.File // contents; safe for concurrent use
	// lastWrite is the time (UnixNano) of the last write through the
	// mount: the backing mtime moves only when blocks reach the disk.
	lastWrite atomic.Int64
}

func (n *Node) node() *Node { return n }

type nodeEmbedder interface{ node() *Node }

func (n *Node) isRegular() bool { return n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFREG }

// relPath is the node's path relative to the backing root ("" for the root).
func (n *Node) relPath() string { return n.Path(n.Root()) }

// hidden reports whether name in directory n is the store's own directory.
func (n *Node) hidden(name string) bool { return name == MetaDir && n.IsRoot() }

// logPath is the path used in log lines.
func (n *Node) logPath(name string) string {
	p := n.relPath()
	if name != "" {
		if p != "" {
			p += "/"
		}
		p += name
	}
	return "/" + p
}

// errno maps err for op on child name of n (name may be empty).
func (n *Node) errno(op, name string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return toErrno(n.m.log, op, n.logPath(name), err)
}

// dir opens directory node n as an O_PATH fd for *at calls on its entries.
func (n *Node) dir() (int, syscall.Errno) {
	fd, err := n.m.b.openRel(n.relPath(), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, n.errno("opendir", "", err)
	}
	return fd, 0
}

// entryDir is dir for an operation that makes or removes entry name of n:
// EPERM for the hidden meta directory of the root.
func (n *Node) entryDir(name string) (int, syscall.Errno) {
	if n.hidden(name) {
		return -1, syscall.EPERM
	}
	return n.dir()
}

// target locates n itself for *at calls: its parent directory and name;
// the root as "." in the root fd; an unlinked file that is still open
// through its fd.
func (n *Node) target() (target, syscall.Errno) {
	if n.IsRoot() {
		return target{dirfd: n.m.b.rootFd, name: ".", release: func() {}}, 0
	}
	name, parent := n.Parent()
	if parent == nil {
		of := n.holdOpen()
		if of == nil {
			return target{}, syscall.ENOENT
		}
		return target{
			dirfd: unix.AT_FDCWD, name: "/proc/self/fd/" + strconv.Itoa(int(of.fd.Fd())), follow: true,
			release: func() { n.release(of) },
		}, 0
	}
	pn, ok := parent.Operations().(nodeEmbedder)
	if !ok {
		return target{}, syscall.EIO
	}
	fd, errno := pn.node().dir()
	if errno != 0 {
		return target{}, errno
	}
	return target{dirfd: fd, name: name, release: func() { unix.Close(fd) }}, 0
}

// newChild makes (or finds) the Inode for entry name of directory dirfd and
// fills out with its attributes.
func (n *Node) newChild(ctx context.Context, dirfd int, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	st, gen, err := statAt(dirfd, name, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return nil, n.errno("lookup", name, err)
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		var errno syscall.Errno
		if st, gen, errno = n.statRegular(dirfd, name); errno != 0 {
			return nil, errno
		}
	}
	out.Attr.FromStat(&st)
	out.Attr.Ino = n.m.b.ino(&st)
	ch := n.NewInode(ctx, &Node{m: n.m}, gofs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: out.Attr.Ino, Gen: gen})
	if cn, ok := ch.Operations().(nodeEmbedder); ok {
		cn.node().overlayOpen(&out.Attr)
	}
	return ch, 0
}

// statRegular stats a regular file and replaces size and blocks by the
// logical size and the disk usage of the stored data.
func (n *Node) statRegular(dirfd int, name string) (syscall.Stat_t, uint64, syscall.Errno) {
	fd, err := openFileAt(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return syscall.Stat_t{}, 0, n.errno("lookup", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	st, gen, err := fstatFd(fd)
	if err != nil {
		return st, 0, n.errno("lookup", name, err)
	}
	size, disk, err := n.m.store.StatFile(f)
	if err != nil {
		return st, 0, n.errno("lookup", name, err)
	}
	st.Size, st.Blocks = size, (disk+511)/512
	return st, gen, 0
}

// overlayOpen corrects attributes of an open regular file with what only
// the open blockstore file knows: the size including unflushed writes and
// an mtime at least as new as the last write.
func (n *Node) overlayOpen(a *fuse.Attr) {
	n.mu.Lock()
	of := n.open
	n.mu.Unlock()
	if of == nil {
		return
	}
	a.Size = uint64(of.file.Size())
	a.Blocks = uint64((of.file.DiskUsage() + 511) / 512)
	if lw := of.lastWrite.Load(); lw > int64(a.Mtime)*1e9+int64(a.Mtimensec) {
		a.Mtime, a.Mtimensec = uint64(lw/1e9), uint32(lw%1e9)
	}
}

// acquire returns the node's open blockstore file, opening it when needed,
// and whether the kernel may keep its page cache (the file is unchanged
// since the last handle was released). Each acquire is paired with one
// release.
func (n *Node) acquire() (*openFile, bool, syscall.Errno) {
	if of := n.holdOpen(); of != nil {
		return of, true, 0
	}
	t, errno := n.target()
	if errno != 0 {
		return nil, false, errno
	}
	defer t.release()
	fd, err := openFileAt(t.dirfd, t.name, unix.O_RDWR)
	if err == unix.EACCES || err == unix.EROFS || err == unix.ETXTBSY {
		fd, err = openFileAt(t.dirfd, t.name, unix.O_RDONLY)
	}
	if err != nil {
		return nil, false, n.errno("open", "", err)
	}
	of, err := n.m.openStore(os.NewFile(uintptr(fd), t.name))
	if err != nil {
		return nil, false, n.errno("open", "", err)
	}
	n.mu.Lock()
	hasStamp, stamp := n.hasStamp, n.stamp
	n.mu.Unlock()
	of = n.adopt(of)
	keep := false
	if hasStamp {
		if st, _, err := fstatFd(int(of.fd.Fd())); err == nil {
			keep = stamp == [2]int64{st.Mtim.Nano(), of.file.Size()}
		}
	}
	return of, keep, 0
}

// adopt installs of (just created by Create) as the node's open file, or
// takes a reference on the one already there.
func (n *Node) adopt(of *openFile) *openFile {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.open == nil {
		n.open = of
		return of
	}
	n.open.refs++
	of.file.Close()
	of.fd.Close()
	return n.open
}

// holdOpen takes a reference on the open blockstore file of n, if there is
// one (nil when nothing has it open); the caller gives it back with release.
func (n *Node) holdOpen() *openFile {
	n.mu.Lock()
	defer n.mu.Unlock()
	of := n.open
	if of != nil {
		of.refs++
	}
	return of
}

// release drops one reference; the last one closes the blockstore file.
func (n *Node) release(of *openFile) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	of.refs--
	if of.refs > 0 {
		return nil
	}
	err := of.file.Close()
	// The backing mtime moved when blocks were written, not when the user
	// wrote (and not at all for a write of zeros, stored as a hole):
	// record the time of the last write through the mount.
	if lw := of.lastWrite.Load(); lw > 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(lw)}
		if uerr := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(of.fd.Fd())), ts, 0); uerr != nil {
			n.errno("set-mtime", "", uerr)
		}
	}
	if st, _, err := fstatFd(int(of.fd.Fd())); err == nil {
		n.stamp, n.hasStamp = [2]int64{st.Mtim.Nano(), of.file.Size()}, true
	}
	of.fd.Close()
	if n.open == of {
		n.open = nil
	}
	return err
}

// openStore hands f to the blockstore and keeps a duplicate fd for
// ourselves (the store may close f when it already has the file open
// through a hardlink).
func (m *mount) openStore(f *os.File) (*openFile, error) {
	dup, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	bf, err := m.store.OpenFile(f)
	if err != nil {
		unix.Close(dup)
		return nil, err
	}
	return &openFile{refs: 1, fd: os.NewFile(uintptr(dup), f.Name()), file: bf}, nil
}

// lastLink opens entry name of dirfd when it is a regular file with a
// single link, so that after the entry is removed the store can be told
// (forgetUnlinked). Returns nil otherwise.
func lastLink(dirfd int, name string) *os.File {
	st, _, err := statAt(dirfd, name, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 {
		return nil
	}
	fd, err := openFileAt(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), name)
}

// forgetUnlinked tells the store that f lost its last name (checked again
// on the fd, so a concurrent link is harmless) and closes f.
func (n *Node) forgetUnlinked(f *os.File, name string) {
	if f == nil {
		return
	}
	defer f.Close()
	st, _, err := fstatFd(int(f.Fd()))
	if err != nil || st.Nlink != 0 {
		return
	}
	if err := n.m.store.Unlinked(f); err != nil {
		n.errno("unlink-bookkeeping", name, err)
	}
}

// chownCaller gives a new entry to the calling user, as the kernel would
// on a local filesystem (only possible when we run as root).
func chownCaller(ctx context.Context, dirfd int, name string) {
	if os.Geteuid() != 0 {
		return
	}
	if c, ok := fuse.FromContext(ctx); ok {
		unix.Fchownat(dirfd, name, int(c.Uid), int(c.Gid), unix.AT_SYMLINK_NOFOLLOW)
	}
}

func timespec(t time.Time, ok bool) unix.Timespec {
	if !ok {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

func timeNow() int64 { return time.Now().UnixNano() }
