package fs

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// These tests need neither root nor /dev/fuse: they build the node tree
// with go-fuse's NewNodeFS (what Mount hands to the kernel) and send it
// requests as the kernel would, through its RawFileSystem bridge, over a
// real store and backing directory in t.TempDir(). What needs the kernel
// (page cache, permission checks, the mount itself, interrupts sent by a
// signal) is left to test/integration.

// rawFS is one unmounted accelfs: the bridge, the store and the backing
// directory.
type rawFS struct {
	t     *testing.T
	raw   fuse.RawFileSystem
	store *blockstore.Store
	dir   string
	log   *bytes.Buffer // the mount's log
	live  chan struct{} // a cancel channel that is never closed
}

const rawBS = 4096

// newRawFS opens a zstd store in a temporary directory and the node tree
// over it. Cleanup closes the store and runs fsck's verify on it.
func newRawFS(t *testing.T) *rawFS {
	t.Helper()
	dir := t.TempDir()
	logBuf := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logBuf, nil))
	store, err := blockstore.Open(dir, &blockstore.Options{BlockSize: rawBS, Algo: codec.Zstd, AlgoSet: true, CommitInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b, err := openBacking(dir)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	m := &mount{b: b, store: store, opts: (&Options{Logger: log}).withDefaults(), log: log}
	raw := gofs.NewNodeFS(&Node{m: m}, &gofs.Options{NullPermissions: true, RootStableAttr: &gofs.StableAttr{Ino: 1, Gen: 1}})
	r := &rawFS{t: t, raw: raw, store: store, dir: dir, log: logBuf, live: make(chan struct{})}
	t.Cleanup(func() {
		b.close()
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
		verifyStore(t, dir)
	})
	return r
}

// verifyStore runs fsck (verify only) on the closed store in dir.
func verifyStore(t *testing.T, dir string) {
	t.Helper()
	s, err := blockstore.Open(dir, &blockstore.Options{NoCreate: true, CommitInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("reopen for fsck: %v", err)
	}
	defer s.Close()
	rep, err := s.Fsck(blockstore.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}

func hdr(node uint64) fuse.InHeader { return fuse.InHeader{NodeId: node} }

func (r *rawFS) ok(op string, st fuse.Status) {
	r.t.Helper()
	if st != fuse.OK {
		r.t.Fatalf("%s: %v", op, st)
	}
}

// create creates name in the root, opened read-write: node id and handle.
func (r *rawFS) create(name string) (node, fh uint64) {
	r.t.Helper()
	var out fuse.CreateOut
	r.ok("create", r.raw.Create(r.live, &fuse.CreateIn{InHeader: hdr(1), Flags: uint32(os.O_RDWR), Mode: 0o644}, name, &out))
	return out.NodeId, out.Fh
}

func (r *rawFS) write(cancel <-chan struct{}, node, fh uint64, p []byte, off int64) fuse.Status {
	n, st := r.raw.Write(cancel, &fuse.WriteIn{InHeader: hdr(node), Fh: fh, Offset: uint64(off), Size: uint32(len(p))}, p)
	if st == fuse.OK && int(n) != len(p) {
		r.t.Fatalf("write: %d of %d bytes", n, len(p))
	}
	return st
}

func (r *rawFS) read(node, fh uint64, n int, off int64) []byte {
	r.t.Helper()
	buf := make([]byte, n)
	res, st := r.raw.Read(r.live, &fuse.ReadIn{InHeader: hdr(node), Fh: fh, Offset: uint64(off), Size: uint32(n)}, buf)
	r.ok("read", st)
	got, st := res.Bytes(buf)
	r.ok("read result", st)
	return bytes.Clone(got)
}

func (r *rawFS) size(node uint64) int64 {
	r.t.Helper()
	var out fuse.AttrOut
	r.ok("getattr", r.raw.GetAttr(r.live, &fuse.GetAttrIn{InHeader: hdr(node)}, &out))
	return int64(out.Size)
}

func (r *rawFS) fallocate(cancel <-chan struct{}, node, fh uint64, off, n int64, mode uint32) fuse.Status {
	return r.raw.Fallocate(cancel, &fuse.FallocateIn{InHeader: hdr(node), Fh: fh, Offset: uint64(off), Length: uint64(n), Mode: mode})
}

func (r *rawFS) setSize(cancel <-chan struct{}, node uint64, size int64) fuse.Status {
	var out fuse.AttrOut
	in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: hdr(node), Valid: fuse.FATTR_SIZE, Size: uint64(size)}}
	return r.raw.SetAttr(cancel, in, &out)
}

func (r *rawFS) flush(cancel <-chan struct{}, node, fh uint64) fuse.Status {
	return r.raw.Flush(cancel, &fuse.FlushIn{InHeader: hdr(node), Fh: fh})
}

func (r *rawFS) fsync(cancel <-chan struct{}, node, fh uint64) fuse.Status {
	return r.raw.Fsync(cancel, &fuse.FsyncIn{InHeader: hdr(node), Fh: fh})
}

func (r *rawFS) release(node, fh uint64) {
	r.raw.Release(r.live, &fuse.ReleaseIn{InHeader: hdr(node), Fh: fh})
}

// storeContent reads name's contents through the blockstore itself.
func (r *rawFS) storeContent(name string) []byte {
	r.t.Helper()
	bf, err := os.OpenFile(filepath.Join(r.dir, name), os.O_RDWR, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	f, err := r.store.OpenFile(bf)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, f.Size())
	if n, err := f.ReadAt(buf, 0); n != len(buf) {
		r.t.Fatalf("store read: %d of %d bytes: %v", n, len(buf), err)
	}
	return buf
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23)
	}
	return b
}

// TestOpsMapToStore: create, write, read, fallocate (grow, keep size,
// punch), setattr size, lseek, flush, fsync and release reach the
// blockstore file as the matching File calls, and what they leave is what
// the blockstore reads back.
func TestOpsMapToStore(t *testing.T) {
	r := newRawFS(t)
	node, fh := r.create("f")
	want := pattern(3*rawBS + 10)
	r.ok("write", r.write(r.live, node, fh, want, 0))
	if got := r.read(node, fh, len(want), 0); !bytes.Equal(got, want) {
		t.Fatal("read does not return what was written")
	}
	r.ok("flush", r.flush(r.live, node, fh))
	// fallocate: mode 0 grows the size; KEEP_SIZE does not.
	r.ok("fallocate", r.fallocate(r.live, node, fh, 0, 5*rawBS, 0))
	if s := r.size(node); s != 5*rawBS {
		t.Fatalf("size after fallocate %d, want %d", s, 5*rawBS)
	}
	r.ok("fallocate keep", r.fallocate(r.live, node, fh, 0, 9*rawBS, unix.FALLOC_FL_KEEP_SIZE))
	if s := r.size(node); s != 5*rawBS {
		t.Fatalf("size after fallocate KEEP_SIZE %d, want %d", s, 5*rawBS)
	}
	if st := r.fallocate(r.live, node, fh, 0, rawBS, unix.FALLOC_FL_ZERO_RANGE); st != fuse.Status(syscall.EOPNOTSUPP) {
		t.Fatalf("fallocate ZERO_RANGE: %v, want EOPNOTSUPP", st)
	}
	// Punch block 1 and a part of block 0: zeros, size unchanged.
	r.ok("punch", r.fallocate(r.live, node, fh, 100, 2*rawBS-100, unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE))
	want = append(want, make([]byte, 5*rawBS-len(want))...)
	clear(want[100 : 2*rawBS])
	// lseek: data in block 0, a hole from block 1, data again in block 2.
	for _, tc := range []struct {
		off    int64
		whence uint32
		want   int64
	}{{0, unix.SEEK_DATA, 0}, {0, unix.SEEK_HOLE, rawBS}, {rawBS, unix.SEEK_DATA, 2 * rawBS}} {
		var out fuse.LseekOut
		r.ok("lseek", r.raw.Lseek(r.live, &fuse.LseekIn{InHeader: hdr(node), Fh: fh, Offset: uint64(tc.off), Whence: tc.whence}, &out))
		if int64(out.Offset) != tc.want {
			t.Errorf("lseek(%d, %d) = %d, want %d", tc.off, tc.whence, out.Offset, tc.want)
		}
	}
	var lo fuse.LseekOut
	if st := r.raw.Lseek(r.live, &fuse.LseekIn{InHeader: hdr(node), Fh: fh, Offset: 5 * rawBS, Whence: unix.SEEK_DATA}, &lo); st != fuse.Status(syscall.ENXIO) {
		t.Errorf("SEEK_DATA at the end: %v, want ENXIO", st)
	}
	// setattr size: a truncate to the middle of block 2.
	r.ok("truncate", r.setSize(r.live, node, 2*rawBS+7))
	want = want[:2*rawBS+7]
	if s := r.size(node); s != int64(len(want)) {
		t.Fatalf("size after truncate %d, want %d", s, len(want))
	}
	r.ok("fsync", r.fsync(r.live, node, fh))
	r.ok("flush", r.flush(r.live, node, fh))
	r.release(node, fh)
	if got := r.storeContent("f"); !bytes.Equal(got, want) {
		t.Fatal("the blockstore does not hold what the ops left")
	}
}

// TestOpsInterrupted: a FUSE interrupt (the request's cancel channel
// closed) makes fsync, fallocate (grow and punch) and truncate answer
// EINTR, and none of them changes or loses anything: the data written
// before reads back. A flush (close(2)) is not stopped by it: it writes
// and answers OK.
func TestOpsInterrupted(t *testing.T) {
	r := newRawFS(t)
	node, fh := r.create("f")
	want := pattern(2*rawBS + 10)
	r.ok("write", r.write(r.live, node, fh, want, 0))
	intr := make(chan struct{})
	close(intr)
	eintr := fuse.Status(syscall.EINTR)
	for _, tc := range []struct {
		op string
		st func() fuse.Status
	}{
		{"fsync", func() fuse.Status { return r.fsync(intr, node, fh) }},
		{"fallocate", func() fuse.Status { return r.fallocate(intr, node, fh, 0, 8*rawBS, 0) }},
		{"punch", func() fuse.Status {
			return r.fallocate(intr, node, fh, 1, rawBS, unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE)
		}},
		{"truncate", func() fuse.Status { return r.setSize(intr, node, 1) }},
	} {
		if st := tc.st(); st != eintr {
			t.Errorf("interrupted %s: %v, want EINTR", tc.op, st)
		}
		if s := r.size(node); s != int64(len(want)) {
			t.Fatalf("after the interrupted %s: size %d, want %d", tc.op, s, len(want))
		}
		if got := r.read(node, fh, len(want), 0); !bytes.Equal(got, want) {
			t.Fatalf("after the interrupted %s the data changed", tc.op)
		}
	}
	r.ok("interrupted flush", r.flush(intr, node, fh))
	r.release(node, fh)
	if got := r.storeContent("f"); !bytes.Equal(got, want) {
		t.Fatal("the blockstore does not hold the data written before the interrupts")
	}
}

// TestOpsMetaDirHidden: the store's own directory cannot be looked up,
// created, removed or renamed onto through the mount.
func TestOpsMetaDirHidden(t *testing.T) {
	r := newRawFS(t)
	var out fuse.EntryOut
	if st := r.raw.Lookup(r.live, &fuse.InHeader{NodeId: 1}, MetaDir, &out); st != fuse.ENOENT {
		t.Errorf("lookup %s: %v, want ENOENT", MetaDir, st)
	}
	if st := r.raw.Mkdir(r.live, &fuse.MkdirIn{InHeader: hdr(1), Mode: 0o755}, MetaDir, &out); st != fuse.EPERM {
		t.Errorf("mkdir %s: %v, want EPERM", MetaDir, st)
	}
	if st := r.raw.Rmdir(r.live, &fuse.InHeader{NodeId: 1}, MetaDir); st != fuse.EPERM {
		t.Errorf("rmdir %s: %v, want EPERM", MetaDir, st)
	}
	node, fh := r.create("f")
	r.release(node, fh)
	if st := r.raw.Rename(r.live, &fuse.RenameIn{InHeader: hdr(1), Newdir: 1}, "f", MetaDir); st != fuse.EPERM {
		t.Errorf("rename onto %s: %v, want EPERM", MetaDir, st)
	}
	if _, err := os.Stat(filepath.Join(r.dir, MetaDir, "format")); err != nil {
		t.Errorf("the store's directory was touched: %v", err)
	}
}
