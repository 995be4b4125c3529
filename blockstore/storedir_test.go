package blockstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/codec"
	bolt "go.etcd.io/bbolt"
)

// openChecked opens the store in dir and, in t.Cleanup, closes it, then
// reopens it and requires a clean fsck verify (bbolt's btesting model).
func openChecked(t *testing.T, dir string, o *Options) *Store {
	t.Helper()
	s := mustOpen(t, dir, o)
	t.Cleanup(func() {
		s.Close()
		v, err := Open(dir, &Options{NoCreate: true, CommitInterval: -1, Logger: testLogger(t)})
		if err != nil {
			t.Errorf("cleanup fsck: open: %v", err)
			return
		}
		defer v.Close()
		rep, err := v.Fsck(FsckOptions{})
		if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
			t.Errorf("cleanup fsck: %v\n%v", err, rep)
		}
	})
	return s
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (or %v); nothing should have been created", path, err)
	}
}

// Defect 3: a directory that is neither empty nor a store is not made one.
func TestOpenNotStoreCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user-file"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Options{nil, {NoCreate: true}, {ReadOnly: true}} {
		_, err := Open(dir, o)
		if !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "accelfs init") {
			t.Fatalf("Open(%+v): %v, want ErrNotStore naming accelfs init", o, err)
		}
		mustNotExist(t, filepath.Join(dir, MetaDir))
	}
}

// NoCreate (fsck, stats, get, set) on an empty directory creates nothing.
func TestOpenNoCreateEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, &Options{NoCreate: true}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("Open NoCreate: %v, want ErrNotStore", err)
	}
	mustNotExist(t, filepath.Join(dir, MetaDir))
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, &Options{BlockSize: 16384, Algo: codec.Zstd, AlgoSet: true, Level: 5}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := Init(dir, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	s := openChecked(t, dir, &Options{NoCreate: true, CommitInterval: -1, Logger: testLogger(t)})
	if st := s.Stats(); st.BlockSize != 16384 || st.Algo != "zstd" || st.Level != 5 {
		t.Fatalf("stats after Init: %+v", st)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "x"), nil, 0o644)
	if err := Init(other, nil); !errors.Is(err, ErrNotStore) {
		t.Fatalf("Init of a non-empty dir: %v, want ErrNotStore", err)
	}
	mustNotExist(t, filepath.Join(other, MetaDir))
}

// Issue 9 item 3: renaming .accelfs away while the store is open does not
// admit a second opener (the lock is on the backing root).
func TestLockSurvivesMetaRename(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	f := createFile(t, s, "a")
	mustWrite(t, f, []byte("data"), 0)
	f.Close()
	if err := os.Rename(filepath.Join(dir, MetaDir), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testOpts(t, 4096, codec.LZ4))
	if err == nil {
		s2.Close()
		t.Fatal("second Open succeeded after .accelfs was renamed away")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	os.Rename(filepath.Join(dir, "moved"), filepath.Join(dir, MetaDir))
}

// Issue 9 item 3: symlinks planted in .accelfs are never followed.
func TestMetaSymlinksRefused(t *testing.T) {
	for _, name := range []string{pidFileName, formatName, indexName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
			s.Close()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, MetaDir, name)
			data, _ := os.ReadFile(p)
			os.Remove(p)
			if name == formatName {
				os.WriteFile(victim, data, 0o644) // a valid format file behind the link
			}
			if err := os.Symlink(victim, p); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(dir, testOpts(t, 4096, codec.LZ4))
			if err == nil {
				s2.Close()
				t.Fatalf("Open followed the symlink %s", name)
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Open: %v, want ErrUnsafe", err)
			}
			if b, _ := os.ReadFile(victim); name != formatName && string(b) != "precious\n" {
				t.Fatalf("victim changed: %q", b)
			}
		})
	}
}

func TestMetaDirChecks(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t, 4096, codec.LZ4))
	s.Close()
	meta := filepath.Join(dir, MetaDir)
	if err := os.Chmod(meta, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testOpts(t, 4096, codec.LZ4)); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Open with a world-writable .accelfs: %v, want ErrUnsafe", err)
	}
	os.Chmod(meta, 0o700)
	if os.Geteuid() == 0 {
		if err := os.Chown(meta, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, testOpts(t, 4096, codec.LZ4)); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("Open with a .accelfs of another owner: %v, want ErrUnsafe", err)
		}
		os.Chown(meta, 0, 0)
	}
	// .accelfs itself a symlink to a real store directory.
	real := filepath.Join(t.TempDir(), "real")
	if err := os.Rename(meta, real); err != nil {
		t.Fatal(err)
	}
	os.Symlink(real, meta)
	if _, err := Open(dir, testOpts(t, 4096, codec.LZ4)); !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrNotStore) {
		t.Fatalf("Open with .accelfs a symlink: %v, want ErrUnsafe or ErrNotStore", err)
	}
	if _, err := OpenMetaFile(dir, "mount.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		t.Fatal("OpenMetaFile went through a symlinked .accelfs")
	}
	mustNotExist(t, filepath.Join(real, "mount.log"))
}

func TestOpenMetaFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if _, err := OpenMetaFile(dir, "mount.log", os.O_CREATE|os.O_WRONLY, 0o600); !errors.Is(err, ErrNotStore) {
		t.Fatalf("OpenMetaFile in a non-store: %v, want ErrNotStore", err)
	}
	mustNotExist(t, filepath.Join(dir, MetaDir))
	empty := t.TempDir()
	f, err := OpenMetaFile(empty, "mount.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("OpenMetaFile in an empty dir: %v", err)
	}
	f.Close()
	// The empty directory with only .accelfs/mount.log is still creatable.
	s := openChecked(t, empty, testOpts(t, 4096, codec.LZ4))
	if _, err := s.OpenMetaFile("../x", os.O_RDONLY, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("OpenMetaFile(../x): %v", err)
	}
}

// Issue 9 item 11: records left by a crash (superseded or uncommitted) are
// reclaimed when the file is first opened after an unclean shutdown, with
// no offline repair; the committed data stays.
func TestSweepAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(6*4096, 1)
	mustWrite(t, f, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, compressible(6*4096, 2), 0) // new records, never committed
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	s.abandon() // crash
	s = mustOpen(t, dir, o)
	rep, err := s.Fsck(FsckOptions{})
	if err != nil || len(rep.Cleanups) == 0 {
		t.Fatalf("the crash left no unreferenced records to reclaim: %v %v", err, rep)
	}
	f = openFile(t, s, "a")
	checkContent(t, f, want)
	f.Close()
	rep, err = s.Fsck(FsckOptions{})
	if err != nil || !rep.Clean() || len(rep.Cleanups) != 0 {
		t.Fatalf("leftovers not reclaimed at open: %v %v", err, rep)
	}
	s.Close()
}

// TestSweepSparesDamagedEntries: after an unclean shutdown, the first open
// does not sweep a file whose index entry for a block is damaged: the
// record it pointed to is what fsck --rebuild recovers the block from
// (the sweep cannot tell that record from a leftover).
func TestSweepSparesDamagedEntries(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t, 4096, codec.LZ4)
	s := mustOpen(t, dir, o)
	f := createFile(t, s, "a")
	want := compressible(3*4096, 7)
	mustWrite(t, f, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	s.abandon() // crash: the open mark stays
	db, err := bolt.Open(filepath.Join(dir, MetaDir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketFiles).Cursor().First()
		return tx.Bucket(bucketBlocks).Put(blockKey(FileID(k), 1), []byte("bad"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	if bf, err := os.OpenFile(filepath.Join(dir, "a"), os.O_RDWR, 0); err == nil {
		if g, err := s.OpenFile(bf); err == nil { // the first open: the sweep runs here
			g.Close()
		}
	}
	if _, err := s.Fsck(FsckOptions{Rebuild: true}); err != nil {
		t.Fatal(err)
	}
	f = openFile(t, s, "a")
	checkContent(t, f, want)
	f.Close()
	s.Close()
}

// TestRepairLeavesForeignHeader: a backing file copied in from a store with
// another block size has an intact header that is not this store's: repair
// reports it and leaves the file exactly as it is (rewriting the header
// with this store's block size would misread its records and punch them).
func TestRepairLeavesForeignHeader(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	s := mustOpen(t, src, testOpts(t, 4096, codec.LZ4))
	f := createFile(t, s, "a")
	mustWrite(t, f, compressible(5*4096, 3), 0)
	f.Close()
	s.Close()
	orig, err := os.ReadFile(filepath.Join(src, "a"))
	if err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dst, testOpts(t, 8192, codec.LZ4))
	defer d.Close()
	if err := os.WriteFile(filepath.Join(dst, "a"), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := d.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || rep.Lost() {
		t.Fatalf("repair of a foreign file: clean=%v lost=%v\n%v", rep.Clean(), rep.Lost(), rep)
	}
	if now, _ := os.ReadFile(filepath.Join(dst, "a")); !bytes.Equal(now, orig) {
		t.Fatal("repair changed a backing file that belongs to another store")
	}
}
