package blockstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

func fuzzStore(t testing.TB, dir string) *Store {
	o := testOpts(t, 4096, codec.LZ4)
	o.CacheBytes = -1
	return mustOpen(t, dir, o)
}

// fuzzInode makes an inode for the fuzzers' backing file (file ID {9}).
func fuzzInode(t testing.TB, s *Store) *inode {
	path := filepath.Join(s.Dir(), "fz")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return &inode{s: s, id: FileID{9}, f: f, path: path}
}
