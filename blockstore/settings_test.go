package blockstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// Defect 8: settings persist in the format file; an open without
// algo/level options uses them, options override them for that open only.
func TestSettingsPersist(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, &Options{BlockSize: 8192}); err != nil {
		t.Fatal(err)
	}
	old, cur, err := UpdateSettings(dir, []string{"algo=zstd", "level=7"}, 0)
	if err != nil {
		t.Fatalf("UpdateSettings: %v", err)
	}
	if old.Algo != "lz4" || cur.Algo != "zstd" || cur.Level != 7 || cur.BlockSize != 8192 {
		t.Fatalf("old %+v new %+v", old, cur)
	}
	got, err := ReadSettings(dir)
	if err != nil || got != cur {
		t.Fatalf("ReadSettings: %+v, %v; want %+v", got, err, cur)
	}
	o := &Options{CommitInterval: -1, Logger: testLogger(t)}
	s := mustOpen(t, dir, o)
	if st := s.Stats(); st.Algo != "zstd" || st.Level != 7 {
		t.Fatalf("open without options: %s/%d, want the store's zstd/7", st.Algo, st.Level)
	}
	s.Close()
	o.Algo, o.AlgoSet, o.Level = codec.Gzip, true, 2
	s = mustOpen(t, dir, o)
	if st := s.Stats(); st.Algo != "gzip" || st.Level != 2 {
		t.Fatalf("open with options: %s/%d", st.Algo, st.Level)
	}
	// Set while open (mounted) is refused and changes nothing.
	if _, _, err := UpdateSettings(dir, []string{"algo=lz4"}, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("UpdateSettings while open: %v, want ErrLocked", err)
	}
	s.Close()
	if got, _ := ReadSettings(dir); got != cur {
		t.Fatalf("an override was persisted: %+v", got)
	}
}

func TestSettingsInvalid(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, MetaDir, formatName))
	for _, kvs := range [][]string{{"algo=brotli"}, {"level=99"}, {"algo=zstd", "level=40"}, {"block_size=4096"},
		{"colour=blue"}, {"algo"}, {"=3"}, {}, {"level=x"}, {"algo=zstd level=3"}} {
		if _, _, err := UpdateSettings(dir, kvs, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpdateSettings(%q): %v, want ErrInvalid", kvs, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, MetaDir, formatName))
	if string(before) != string(after) {
		t.Fatalf("a refused set changed the format file:\n%s\n%s", before, after)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, MetaDir))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
	// Algo changes reset the level to the new algorithm's default.
	_, cur, err := UpdateSettings(dir, []string{"algo=zstd", "level=19", "algo=gzip"}, 0)
	if err != nil || cur.Algo != "gzip" || cur.Level != 6 {
		t.Fatalf("algo=zstd level=19 algo=gzip: %+v, %v", cur, err)
	}
	for _, d := range []string{t.TempDir()} {
		if _, err := ReadSettings(d); !errors.Is(err, ErrNotStore) {
			t.Fatalf("ReadSettings of an empty dir: %v", err)
		}
		if _, _, err := UpdateSettings(d, []string{"algo=zstd"}, 0); !errors.Is(err, ErrNotStore) {
			t.Fatalf("UpdateSettings of an empty dir: %v", err)
		}
		mustNotExist(t, filepath.Join(d, MetaDir))
	}
}

func FuzzApplySetting(f *testing.F) {
	for _, s := range []string{"algo=zstd", "level=3", "level=-1", "block_size=4096", "algo=", "=", "level=99999999999999999999", "x=y=z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kv string) {
		base := Settings{BlockSize: 4096, Algo: "lz4", Level: 0}
		st, err := ApplySettings(base, []string{kv})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", kv, err)
			}
			return
		}
		id, perr := codec.Parse(st.Algo)
		if perr != nil || st.BlockSize != 4096 {
			t.Fatalf("%q accepted into %+v", kv, st)
		}
		if _, lerr := codec.NormalizeLevel(id, st.Level); lerr != nil {
			t.Fatalf("%q accepted an invalid level: %+v", kv, st)
		}
	})
}

func FuzzParseFormatFile(f *testing.F) {
	f.Add([]byte(`{"magic":"accelfs-store","format_version":1,"block_size":131072,"algo":"lz4","level":0}`))
	f.Add([]byte(`{"magic":"accelfs-store","format_version":1,"block_size":4096,"algo":"zstd","level":22}`))
	f.Add([]byte(`{"magic":"accelfs-store","format_version":1,"block_size":4096,"algo":"zstd","level":22,"x":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ff, err := parseFormatFile(b, "format")
		if err != nil {
			if !errors.Is(err, ErrBadFormat) {
				t.Fatalf("error %v does not wrap ErrBadFormat", err)
			}
			return
		}
		id, perr := codec.Parse(ff.Algo)
		if perr != nil || !validBlockSize(ff.BlockSize) || ff.Magic != formatMagic || ff.Version != FormatVersion {
			t.Fatalf("accepted %+v", ff)
		}
		if _, lerr := codec.NormalizeLevel(id, ff.Level); lerr != nil {
			t.Fatalf("accepted level %+v", ff)
		}
	})
}
