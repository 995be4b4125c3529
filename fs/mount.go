package fs

import (
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// MaxWrite is the largest FUSE read/write request we ask the kernel for.
const MaxWrite = 1 << 20

// StatsXattr is the extended attribute of the mount's root directory that
// answers with the stats JSON document (read by `accelfs stats`). It is not
// listed by listxattr and cannot be set or removed.
const StatsXattr = "user.accelfs.stats"

// MetaDir is the store's own directory in the backing root. It is invisible
// and untouchable through the mount.
const MetaDir = ".accelfs"

// mount is the state shared by all nodes of one mount.
type mount struct {
	b     *backing
	store *blockstore.Store
	opts  Options
	log   *slog.Logger
}

// Server is a mounted accelfs.
type Server struct {
	srv        *fuse.Server
	m          *mount
	mountpoint string
}

// Mount mounts the store at mountpoint and returns once the kernel has
// the mount (requests are being served). backingDir must be the directory
// the store was opened on. The caller keeps ownership of store: after Wait
// returns (the mount is gone) it closes the store, which flushes and
// commits the remaining dirty data.
func Mount(mountpoint, backingDir string, store *blockstore.Store, opts *Options) (*Server, error) {
	o := opts.withDefaults()
	b, err := openBacking(backingDir)
	if err != nil {
		return nil, err
	}
	m := &mount{b: b, store: store, opts: o, log: o.Logger}
	root := &Node{m: m}
	var st syscall.Stat_t
	if err := syscall.Fstat(b.rootFd, &st); err != nil {
		b.close()
		return nil, fmt.Errorf("stat backing root: %w", err)
	}

	mo := fuse.MountOptions{
		AllowOther:    o.AllowOther,
		Options:       append([]string{"default_permissions"}, o.ExtraMountOptions...),
		MaxWrite:      MaxWrite,
		MaxBackground: 64,
		FsName:        o.FsName,
		Name:          "accelfs",
		DirectMount:   true, // mount(2) when we may, else fusermount
		// Root gets mount(2)'s own errno (a bad option is EINVAL), not a
		// fallback to fusermount that hides it behind an exit status.
		DirectMountStrict: os.Geteuid() == 0,
		Debug:             o.Debug,
		Logger:            log.New(slogWriter{o.Logger}, "", 0),
		// Locks stay with the kernel (EnableLocks unset): flock and
		// POSIX locks work between processes of this machine.
	}
	if o.Writeback {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	attr, entry, neg := o.AttrTimeout, o.EntryTimeout, o.EntryTimeout
	fo := &gofs.Options{
		MountOptions:    mo,
		AttrTimeout:     &attr,
		EntryTimeout:    &entry,
		NegativeTimeout: &neg,
		NullPermissions: true, // show real modes, even 000
		RootStableAttr:  &gofs.StableAttr{Ino: b.ino(&st), Gen: 1},
		Logger:          log.New(slogWriter{o.Logger}, "", 0),
	}
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		b.close()
		return nil, err
	}
	srv, err := gofs.Mount(abs, root, fo)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	return &Server{srv: srv, m: m, mountpoint: abs}, nil
}

// Mountpoint is the absolute path of the mount.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Wait blocks until the filesystem is unmounted (by Unmount, umount(8) or
// fusermount -u) and every request has been answered, then releases the
// backing directory. The store stays open: the caller closes it.
func (s *Server) Wait() {
	s.srv.Wait()
	s.m.b.close()
}

// Unmount asks the kernel to unmount; it fails with EBUSY while files are
// open (use LazyUnmount then).
func (s *Server) Unmount() error { return s.srv.Unmount() }

// LazyUnmount detaches the mount from the namespace at once (umount -l);
// the kernel ends the session when the last open file is closed, and Wait
// returns then.
func (s *Server) LazyUnmount() error {
	err := unix.Unmount(s.mountpoint, unix.MNT_DETACH)
	if err == unix.EPERM {
		// Not root: ask fusermount (installed with fuse3).
		return fusermountLazy(s.mountpoint)
	}
	return err
}

// slogWriter forwards go-fuse's log.Logger output to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Info(string(trimNL(p)), "src", "go-fuse")
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}

func fusermountLazy(mnt string) error {
	for _, bin := range []string{"fusermount3", "fusermount"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		if out, err := exec.Command(path, "-u", "-z", mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("%s -u -z %s: %w: %s", bin, mnt, err, out)
		}
		return nil
	}
	return fmt.Errorf("lazy unmount of %s: not root and no fusermount found", mnt)
}
