package blockstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The store directory (DESIGN §4 invariants 7 and 9).
//
// The store lock is a flock on the backing root directory itself, taken
// through a descriptor of that directory: renaming or replacing .accelfs
// cannot swap it, so a second server is refused for as long as the first
// one runs. bbolt's own flock on index.db stays as a second line.
//
// .accelfs is opened relative to the root descriptor without following a
// symlink, and is refused unless it is a directory owned by this process's
// effective uid and not writable by group or others. Every file inside it
// is opened relative to that descriptor with O_NOFOLLOW (a planted symlink
// named lock.pid or mount.log fails with ELOOP instead of redirecting a
// root server's writes) and must be a regular file.

// lockPoll is how often a blocked lock attempt is retried.
const lockPoll = 10 * time.Millisecond

// storeState is what probeStore found in a backing directory.
type storeState int

const (
	stateNotStore storeState = iota // has entries and no .accelfs/format
	stateEmpty                      // nothing but (a store-less) .accelfs and lost+found
	stateStore                      // .accelfs/format exists
)

// openRoot opens the backing directory (which must be a directory).
func openRoot(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// lockRoot takes the store lock (an exclusive flock on root), waiting up to
// timeout. The error names the holder's pid when lock.pid tells it.
func lockRoot(root *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(root.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock store %s: %w", root.Name(), err)
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(lockPoll)
	}
	holder := "another process"
	if pid := readPidAt(root); pid > 0 {
		holder = fmt.Sprintf("pid %d", pid)
		if pid == os.Getpid() {
			holder += " (this process)"
		}
	}
	return fmt.Errorf("%w: %s is in use by %s", ErrLocked, root.Name(), holder)
}

// readPidAt reads .accelfs/lock.pid (0 when it cannot be read safely).
func readPidAt(root *os.File) int {
	meta, err := openMetaDir(root, false)
	if err != nil {
		return 0
	}
	defer meta.Close()
	f, err := openAt(meta, pidFileName, os.O_RDONLY, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 32))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// openMetaDir opens root/.accelfs without following a symlink, creating it
// (mode 0700) when create is set, and checks that it is safe to use.
func openMetaDir(root *os.File, create bool) (*os.File, error) {
	rfd := int(root.Fd())
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(rfd, MetaDir, flags, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err = unix.Mkdirat(rfd, MetaDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, metaErr(root, "", "mkdir", err)
		}
		fd, err = unix.Openat(rfd, MetaDir, flags, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%w: %s is not a directory (a symlink or a file); refusing to use it",
				ErrUnsafe, filepath.Join(root.Name(), MetaDir))
		}
		return nil, metaErr(root, "", "open", err)
	}
	meta := os.NewFile(uintptr(fd), filepath.Join(root.Name(), MetaDir))
	if err := checkMetaDir(meta); err != nil {
		meta.Close()
		return nil, err
	}
	return meta, nil
}

// checkMetaDir refuses a .accelfs that another user could have prepared or
// could change under us: it must belong to our effective uid and not be
// writable by group or others.
func checkMetaDir(meta *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(meta.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", meta.Name(), err)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this server's uid %d", ErrUnsafe, meta.Name(), st.Uid, uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o); chmod go-w it", ErrUnsafe, meta.Name(), st.Mode&0o7777)
	}
	return nil
}

// openAt opens name inside the meta directory without following a symlink;
// it must be a regular file (O_NONBLOCK keeps a planted FIFO from blocking
// the open; it means nothing for regular files).
// OpenInDir opens name relative to the directory dir with O_NOFOLLOW and
// requires a regular file: for files kept next to the store's own (the
// mount log, also under --log), where a planted symlink must not redirect
// a root server's writes.
func OpenInDir(dir *os.File, name string, flag int, perm os.FileMode) (*os.File, error) {
	return openAt(dir, name, flag, perm)
}

func openAt(meta *os.File, name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Openat(int(meta.Fd()), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, uint32(perm.Perm()))
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%w: %s is a symlink; refusing to follow it", ErrUnsafe, filepath.Join(meta.Name(), name))
		}
		return nil, &os.PathError{Op: "open", Path: filepath.Join(meta.Name(), name), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(meta.Name(), name))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, f.Name())
	}
	return f, nil
}

func metaErr(root *os.File, name, op string, err error) error {
	return &os.PathError{Op: op, Path: filepath.Join(root.Name(), MetaDir, name), Err: err}
}

// probeStore tells whether root holds a store, is empty (may become one),
// or is something else. It reads at most a few directory entries.
func probeStore(root *os.File) (storeState, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(root.Fd()), filepath.Join(MetaDir, formatName), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return stateStore, nil
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
		return stateNotStore, metaErr(root, formatName, "stat", err)
	}
	d, err := os.Open(root.Name())
	if err != nil {
		return stateNotStore, err
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(16)
		for _, e := range ents {
			if e.Name() == MetaDir || (e.Name() == "lost+found" && e.IsDir()) {
				continue
			}
			return stateNotStore, nil
		}
		if errors.Is(err, io.EOF) || len(ents) == 0 {
			return stateEmpty, nil
		}
		if err != nil {
			return stateNotStore, err
		}
	}
}

// notStoreError explains why dir is not a store and what to do.
func notStoreError(dir string, state storeState) error {
	if state == stateEmpty {
		return fmt.Errorf("%w: %s is an empty directory with no store in it; create one with `accelfs init %s`",
			ErrNotStore, dir, dir)
	}
	return fmt.Errorf("%w: %s has no %s/%s and is not empty; `accelfs init` creates a store only in an empty directory",
		ErrNotStore, dir, MetaDir, formatName)
}

// OpenMetaDir opens the store's own directory (BACKING/.accelfs) the safe
// way: relative to the backing root, not through a symlink, and checked
// (owner, mode). With create, .accelfs is created when missing, but only in
// a store or an empty directory (never in a directory that is neither:
// ErrNotStore). cmd/accelfs keeps its own files (the mount log, pid and
// exit records) relative to the returned directory.
func OpenMetaDir(backingDir string, create bool) (*os.File, error) {
	root, err := openRoot(backingDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if create {
		state, err := probeStore(root)
		if err != nil {
			return nil, err
		}
		if state == stateNotStore {
			return nil, notStoreError(backingDir, state)
		}
	}
	return openMetaDir(root, create)
}

// OpenMetaFile opens a file of the store's own directory (OpenMetaDir) with
// O_NOFOLLOW and requires it to be a regular file. os.O_CREATE in flag
// creates .accelfs as OpenMetaDir does with create.
func OpenMetaFile(backingDir, name string, flag int, perm os.FileMode) (*os.File, error) {
	if strings.ContainsRune(name, '/') || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("%w: meta file name %q", ErrInvalid, name)
	}
	meta, err := OpenMetaDir(backingDir, flag&os.O_CREATE != 0)
	if err != nil {
		return nil, err
	}
	defer meta.Close()
	return openAt(meta, name, flag, perm)
}

// OpenMetaFile opens a file in the store's own directory as the package
// function does, through the directory the open store checked.
func (s *Store) OpenMetaFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if strings.ContainsRune(name, '/') || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("%w: meta file name %q", ErrInvalid, name)
	}
	return openAt(s.metaDir, name, flag, perm)
}

// RemoveMetaFile removes a file of the store's own directory.
func (s *Store) RemoveMetaFile(name string) error {
	if strings.ContainsRune(name, '/') || name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: meta file name %q", ErrInvalid, name)
	}
	return unix.Unlinkat(int(s.metaDir.Fd()), name, 0)
}

// writePidFile records our pid in .accelfs/lock.pid.
func writePidFile(meta *os.File) error {
	f, err := openAt(meta, pidFileName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// storeDir is a locked backing root and its checked meta directory.
type storeDir struct {
	root  *os.File // flocked
	meta  *os.File // nil until opened
	state storeState
}

func (d *storeDir) close() {
	if d.meta != nil {
		d.meta.Close()
	}
	d.root.Close() // releases the flock
}

// lockStoreDir opens and locks dir and finds out what it holds.
func lockStoreDir(dir string, timeout time.Duration) (*storeDir, error) {
	root, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	if err := lockRoot(root, timeout); err != nil {
		root.Close()
		return nil, err
	}
	d := &storeDir{root: root}
	if d.state, err = probeStore(root); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}
