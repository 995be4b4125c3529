package fs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// backing is the backing directory, reached only through rootFd. Every path
// below is relative to rootFd and resolved without following symlinks, so no
// operation can leave the backing tree (a symlink stored in the tree is only
// ever read with readlinkat, never followed on our own behalf).
type backing struct {
	dir    string // for messages only; never used to reach files
	rootFd int    // O_RDONLY|O_DIRECTORY fd of the backing root, closed by close()
	dev    uint64 // st_dev of the root, for inode numbers
}

// resolveNoSymlinks are the openat2 resolve flags for every path we open.
const resolveNoSymlinks = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

func openBacking(dir string) (*backing, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open backing directory %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat backing directory %s: %w", dir, err)
	}
	return &backing{dir: dir, rootFd: fd, dev: st.Dev}, nil
}

func (b *backing) close() error { return unix.Close(b.rootFd) }

// openRel opens rel (a '/'-separated path relative to the root, "" for the
// root itself) with flags. No component, the last one included, may be a
// symlink: openat2 with RESOLVE_NO_SYMLINKS where the kernel has it, else a
// walk with O_NOFOLLOW on each component.
func (b *backing) openRel(rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveNoSymlinks}
	fd, err := unix.Openat2(b.rootFd, rel, &how)
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	return b.walk(rel, flags)
}

// walk is openRel for kernels without openat2 (< 5.6).
func (b *backing) walk(rel string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	var parts []string
	for _, p := range strings.Split(rel, "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return unix.Openat(b.rootFd, ".", flags, 0)
	}
	dir := b.rootFd
	for i, p := range parts {
		if p == ".." {
			if dir != b.rootFd {
				unix.Close(dir)
			}
			return -1, syscall.EXDEV
		}
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			fl = flags
		}
		fd, err := unix.Openat(dir, p, fl, 0)
		if dir != b.rootFd {
			unix.Close(dir)
		}
		if err != nil {
			return -1, err
		}
		dir = fd
	}
	return dir, nil
}

// target names one backing object for the *at system calls: the entry name
// in directory dirfd, or (follow set) a /proc/self/fd path of an open
// regular file that has no name any more (unlinked while open).
type target struct {
	dirfd   int
	name    string
	follow  bool
	release func()
}

// atFlags is AT_SYMLINK_NOFOLLOW unless the target is an fd path.
func (t *target) atFlags() int {
	if t.follow {
		return 0
	}
	return unix.AT_SYMLINK_NOFOLLOW
}

// procPath is a path that reaches the target for calls with no *at form
// (the xattr family): through /proc/self/fd of the directory, with the
// l-variants so that the last component is not followed.
func (t *target) procPath() string {
	if t.follow {
		return t.name
	}
	return "/proc/self/fd/" + strconv.Itoa(t.dirfd) + "/" + t.name
}

func (t *target) stat() (syscall.Stat_t, uint64, error) {
	return statAt(t.dirfd, t.name, t.atFlags())
}

func (t *target) chmod(mode uint32) error {
	err := unix.Fchmodat(t.dirfd, t.name, mode, t.atFlags())
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	// fchmodat2 missing (kernel < 6.6): plain fchmodat follows a symlink,
	// so first make sure the target is not one.
	st, _, serr := t.stat()
	if serr != nil {
		return serr
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Fchmodat(t.dirfd, t.name, mode, 0)
}

func (t *target) chown(uid, gid int) error {
	return unix.Fchownat(t.dirfd, t.name, uid, gid, t.atFlags())
}

func (t *target) utimes(ts []unix.Timespec) error {
	return unix.UtimesNanoAt(t.dirfd, t.name, ts, t.atFlags())
}

// statAt is fstatat through statx, so that the birth time is available for
// the inode generation.
func statAt(dirfd int, name string, flags int) (syscall.Stat_t, uint64, error) {
	var sx unix.Statx_t
	err := unix.Statx(dirfd, name, flags|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx)
	if err != nil {
		return syscall.Stat_t{}, 0, err
	}
	st := syscall.Stat_t{
		Dev:    unix.Mkdev(sx.Dev_major, sx.Dev_minor),
		Ino:    sx.Ino,
		Mode:   uint32(sx.Mode),
		Uid:    sx.Uid,
		Gid:    sx.Gid,
		Rdev:   unix.Mkdev(sx.Rdev_major, sx.Rdev_minor),
		Size:   int64(sx.Size),
		Blocks: int64(sx.Blocks),
		Atim:   syscall.Timespec{Sec: sx.Atime.Sec, Nsec: int64(sx.Atime.Nsec)},
		Mtim:   syscall.Timespec{Sec: sx.Mtime.Sec, Nsec: int64(sx.Mtime.Nsec)},
		Ctim:   syscall.Timespec{Sec: sx.Ctime.Sec, Nsec: int64(sx.Ctime.Nsec)},
	}
	// Nlink and Blksize differ in width between architectures (arm64: 32
	// bits), so they are set through setInt rather than a fixed conversion.
	setInt(&st.Nlink, sx.Nlink)
	setInt(&st.Blksize, sx.Blksize)
	gen := uint64(1)
	if sx.Mask&unix.STATX_BTIME != 0 && (sx.Btime.Sec != 0 || sx.Btime.Nsec != 0) {
		gen = uint64(sx.Btime.Sec)*1e9 + uint64(sx.Btime.Nsec)
	}
	return st, gen, nil
}

// fstatFd is statAt on an open fd.
func fstatFd(fd int) (syscall.Stat_t, uint64, error) {
	return statAt(fd, "", unix.AT_EMPTY_PATH)
}

// ino composes the inode number we show from the backing inode and device,
// the way go-fuse's loopback does: identical to st_ino when the backing tree
// is one filesystem.
func (b *backing) ino(st *syscall.Stat_t) uint64 {
	swapped := (st.Dev << 32) | (st.Dev >> 32)
	swappedRoot := (b.dev << 32) | (b.dev >> 32)
	return (swapped ^ swappedRoot) ^ st.Ino
}

// openFileAt opens entry name of dirfd without following a symlink and,
// when we may, without touching its atime (O_NOATIME): our own reads of
// headers are not accesses by the user.
func openFileAt(dirfd int, name string, flags int) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	return fd, err
}

// setInt stores v in *dst whatever the width of dst's type on this
// architecture.
func setInt[T ~int32 | ~int64 | ~uint32 | ~uint64, V ~uint32 | ~uint64](dst *T, v V) {
	*dst = T(v)
}
