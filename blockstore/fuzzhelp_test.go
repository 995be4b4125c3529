package blockstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

func fuzzStore(t *testing.T, dir string) *Store {
	o := testOpts(t, 4096, codec.LZ4)
	o.CacheBytes = -1
	return mustOpen(t, dir, o)
}

// fuzzInode makes an inode whose backing file holds rec in block 3's slot 0.
func fuzzInode(t *testing.T, s *Store, rec []byte) *inode {
	path := filepath.Join(s.Dir(), "fz")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	off, _ := locOffset(s.bs, 3, locSlot0)
	if _, err := f.WriteAt(rec, off); err != nil {
		t.Fatal(err)
	}
	return &inode{s: s, id: FileID{9}, f: f, path: path}
}
