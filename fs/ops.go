package fs

import (
	"context"
	"os"
	"strconv"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Namespace operations: each one resolves its backing directory, makes
// one *at system call (or one blockstore call) and maps the error.

func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.ENOENT
	}
	dirfd, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(dirfd)
	return n.newChild(ctx, dirfd, name, out)
}

func (n *Node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	of := n.holdOpen()
	if of != nil {
		// Open regular file (possibly unlinked): fstat our own fd.
		defer n.release(of)
		st, _, err := fstatFd(int(of.fd.Fd()))
		if err != nil {
			return n.errno("getattr", "", err)
		}
		out.FromStat(&st)
		out.Ino = n.StableAttr().Ino
		n.overlayOpen(&out.Attr)
		return 0
	}
	t, errno := n.target()
	if errno != 0 {
		return errno
	}
	defer t.release()
	var st syscall.Stat_t
	var err error
	if n.isRegular() {
		st, _, errno = n.statRegular(t.dirfd, t.name)
		if errno != 0 {
			return errno
		}
	} else if st, _, err = t.stat(); err != nil {
		return n.errno("getattr", "", err)
	}
	out.FromStat(&st)
	out.Ino = n.StableAttr().Ino
	return 0
}

func (n *Node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		if errno := n.truncate(ctx, int64(sz)); errno != 0 {
			return errno
		}
	}
	t, errno := n.target()
	if errno != 0 {
		return errno
	}
	defer t.release()
	if m, ok := in.GetMode(); ok {
		if err := t.chmod(m & 0o7777); err != nil {
			return n.errno("chmod", "", err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := t.chown(u, g); err != nil {
			return n.errno("chown", "", err)
		}
	}
	mt, mok := in.GetMTime()
	at, aok := in.GetATime()
	if mok || aok {
		// Write out pending blocks first: writing them later would move
		// the backing mtime past the one set here.
		if errno := n.flushOpen(ctx); errno != 0 {
			return errno
		}
		if err := t.utimes([]unix.Timespec{timespec(at, aok), timespec(mt, mok)}); err != nil {
			return n.errno("utimes", "", err)
		}
		if mok {
			n.mu.Lock()
			if n.open != nil {
				n.open.lastWrite.Store(0)
			}
			n.mu.Unlock()
		}
	}
	return n.Getattr(ctx, f, out)
}

// truncate sets the logical size; ctx ends on a FUSE interrupt (EINTR,
// and then the size and data are as before).
// A size change is a change of the data: it moves mtime and ctime now
// (POSIX truncate; the backing file itself changes only at the next
// commit, and then keeps its mtime). Truncating to the same size moves
// nothing here, as on ext4; ftruncate(2) and open(O_TRUNC) also carry
// an mtime, which Setattr applies.
func (n *Node) truncate(ctx context.Context, size int64) syscall.Errno {
	if !n.isRegular() {
		return syscall.EINVAL
	}
	of, _, errno := n.acquire()
	if errno != 0 {
		return errno
	}
	defer n.release(of)
	old := of.file.Size()
	if err := of.file.TruncateContext(ctx, size); err != nil {
		return n.errno("truncate", "", err)
	}
	if old != size {
		n.touchData(of)
	}
	return 0
}

// touchData records a change of the data made now: the backing mtime (and
// so its ctime) is set to now, and lastWrite too, so that release keeps it.
func (n *Node) touchData(of *openFile) {
	now := timeNow()
	of.lastWrite.Store(now)
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(now)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(of.fd.Fd())), ts, 0); err != nil {
		n.errno("set-mtime", "", err)
	}
}

// flushOpen writes the dirty blocks of an open regular file (before a
// utimes, so the commit's own writes do not move the time set). Like
// handle.Flush it is not stopped by an interrupt: a harmless signal must
// not fail the utimes.
func (n *Node) flushOpen(ctx context.Context) syscall.Errno {
	of := n.holdOpen()
	if of == nil {
		return 0
	}
	defer n.release(of)
	return n.errno("flush", "", of.file.FlushContext(context.WithoutCancel(ctx)))
}

func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(dirfd)
	if err := unix.Mkdirat(dirfd, name, mode&0o7777); err != nil {
		return nil, n.errno("mkdir", name, err)
	}
	// Our umask must not narrow the mode the kernel already masked.
	t := target{dirfd: dirfd, name: name}
	t.chmod(mode & 0o7777)
	chownCaller(ctx, dirfd, name)
	return n.newChild(ctx, dirfd, name, out)
}

func (n *Node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(dirfd)
	if mode&syscall.S_IFMT == syscall.S_IFREG || mode&syscall.S_IFMT == 0 {
		f, errno := n.createBacking(dirfd, name, mode)
		if errno != 0 {
			return nil, errno
		}
		f.Close()
	} else if err := unix.Mknodat(dirfd, name, mode, int(rdev)); err != nil {
		return nil, n.errno("mknod", name, err)
	} else {
		t := target{dirfd: dirfd, name: name}
		t.chmod(mode & 0o7777)
	}
	chownCaller(ctx, dirfd, name)
	return n.newChild(ctx, dirfd, name, out)
}

// createBacking creates a new, empty backing file with the store header.
func (n *Node) createBacking(dirfd int, name string, mode uint32) (*os.File, syscall.Errno) {
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode&0o7777)
	if err != nil {
		return nil, n.errno("create", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := n.m.store.InitFile(f); err != nil {
		f.Close()
		unix.Unlinkat(dirfd, name, 0)
		return nil, n.errno("create", name, err)
	}
	unix.Fchmod(fd, mode&0o7777)
	return f, 0
}

func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer unix.Close(dirfd)
	f, errno := n.createBacking(dirfd, name, mode)
	if errno == syscall.EEXIST && flags&syscall.O_EXCL == 0 {
		// Lost a race with another creator: open the existing file.
		return n.createExisting(ctx, dirfd, name, flags, out)
	}
	if errno != 0 {
		return nil, nil, 0, errno
	}
	chownCaller(ctx, dirfd, name)
	of, err := n.m.openStore(f)
	if err != nil {
		return nil, nil, 0, n.errno("create", name, err)
	}
	st, gen, err := fstatFd(int(of.fd.Fd()))
	if err != nil {
		n.m.closeOpen(of)
		return nil, nil, 0, n.errno("create", name, err)
	}
	st.Size, st.Blocks = 0, (of.file.DiskUsage()+511)/512
	out.Attr.FromStat(&st)
	out.Attr.Ino = n.m.b.ino(&st)
	ch := n.NewInode(ctx, &Node{m: n.m}, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino, Gen: gen})
	cn, ok := ch.Operations().(nodeEmbedder)
	if !ok {
		n.m.closeOpen(of)
		return nil, nil, 0, syscall.EIO
	}
	of = cn.node().adopt(of)
	return ch, newHandle(cn.node(), of, flags), 0, 0
}

func (n *Node) createExisting(ctx context.Context, dirfd int, name string, flags uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ch, errno := n.newChild(ctx, dirfd, name, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	cn, ok := ch.Operations().(nodeEmbedder)
	if !ok || !cn.node().isRegular() {
		return nil, nil, 0, syscall.EEXIST
	}
	fh, fl, errno := cn.node().Open(ctx, flags)
	if errno == 0 && flags&syscall.O_TRUNC != 0 {
		errno = cn.node().truncate(ctx, 0)
		out.Attr.Size = 0
	}
	return ch, fh, fl, errno
}

func (m *mount) closeOpen(of *openFile) {
	of.file.Close()
	of.fd.Close()
}

func (n *Node) Unlink(ctx context.Context, name string) syscall.Errno {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return errno
	}
	defer unix.Close(dirfd)
	last := lastLink(dirfd, name)
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		if last != nil {
			last.Close()
		}
		return n.errno("unlink", name, err)
	}
	n.forgetUnlinked(last, name)
	return 0
}

func (n *Node) Rmdir(ctx context.Context, name string) syscall.Errno {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return errno
	}
	defer unix.Close(dirfd)
	return n.errno("rmdir", name, unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR))
}

func (n *Node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(nodeEmbedder)
	if !ok || np.node().m != n.m {
		return syscall.EXDEV
	}
	dst := np.node()
	if n.hidden(name) || dst.hidden(newName) {
		return syscall.EPERM
	}
	fd1, errno := n.dir()
	if errno != 0 {
		return errno
	}
	defer unix.Close(fd1)
	fd2, errno := dst.dir()
	if errno != 0 {
		return errno
	}
	defer unix.Close(fd2)
	var victim *os.File
	if flags&unix.RENAME_EXCHANGE == 0 {
		victim = lastLink(fd2, newName)
	}
	if err := unix.Renameat2(fd1, name, fd2, newName, uint(flags)); err != nil {
		if victim != nil {
			victim.Close()
		}
		return n.errno("rename", name, err)
	}
	n.forgetUnlinked(victim, newName)
	return 0
}

func (n *Node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	tn, ok := target.(nodeEmbedder)
	if !ok || tn.node().m != n.m {
		return nil, syscall.EXDEV
	}
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	src, errno := tn.node().target()
	if errno != 0 {
		return nil, errno
	}
	defer src.release()
	if src.follow {
		// No name left to link from (unlinked while open).
		return nil, syscall.ENOENT
	}
	dirfd, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(dirfd)
	if err := unix.Linkat(src.dirfd, src.name, dirfd, name, 0); err != nil {
		return nil, n.errno("link", name, err)
	}
	return n.newChild(ctx, dirfd, name, out)
}

func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	dirfd, errno := n.entryDir(name)
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(dirfd)
	if err := unix.Symlinkat(target, dirfd, name); err != nil {
		return nil, n.errno("symlink", name, err)
	}
	chownCaller(ctx, dirfd, name)
	return n.newChild(ctx, dirfd, name, out)
}

func (n *Node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, errno := n.target()
	if errno != 0 {
		return nil, errno
	}
	defer t.release()
	for l := 256; ; l *= 2 {
		buf := make([]byte, l)
		sz, err := unix.Readlinkat(t.dirfd, t.name, buf)
		if err != nil {
			return nil, n.errno("readlink", "", err)
		}
		if sz < len(buf) {
			return buf[:sz], 0
		}
	}
}

func (n *Node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if !n.isRegular() {
		return nil, 0, syscall.EINVAL
	}
	of, keep, errno := n.acquire()
	if errno != 0 {
		return nil, 0, errno
	}
	var fl uint32
	if keep {
		fl |= fuse.FOPEN_KEEP_CACHE
	}
	return newHandle(n, of, flags), fl, 0
}

func (n *Node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fd, err := n.m.b.openRel(n.relPath(), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, 0, n.errno("opendir", "", err)
	}
	ds, errno := gofs.NewLoopbackDirStreamFd(fd)
	if errno != 0 {
		unix.Close(fd)
		return nil, 0, errno
	}
	return &dirHandle{ds: ds, hide: n.IsRoot()}, 0, 0
}

func (n *Node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Fstatfs(n.m.b.rootFd, &s); err != nil {
		return n.errno("statfs", "", err)
	}
	out.FromStatfsT(&s)
	return 0
}
