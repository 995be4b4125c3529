package blockstore

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// TestWriteFuzzCorpus regenerates the committed seed corpus under
// testdata/fuzz when ACCELFS_WRITE_CORPUS=1 (and checks it exists otherwise).
func TestWriteFuzzCorpus(t *testing.T) {
	corpus := map[string]map[string][]byte{"FuzzParseFileHeader": {}, "FuzzParseRecordHeader": {}, "FuzzRecord": {}}
	h := fileHeader{Version: FormatVersion, BlockSize: 128 << 10, ID: FileID{0xaa, 0xbb}, SizeHint: 1 << 20, SizeGen: 42}
	hb := h.marshal()
	corpus["FuzzParseFileHeader"]["valid"] = hb
	bad := append([]byte(nil), hb...)
	binary.LittleEndian.PutUint32(bad[12:], 0xfffffff0)
	binary.LittleEndian.PutUint32(bad[32:], crc32c(bad[:32]))
	corpus["FuzzParseFileHeader"]["absurd-blocksize"] = bad
	corpus["FuzzParseFileHeader"]["truncated"] = hb[:40]
	torn := append([]byte(nil), hb...)
	torn[45] ^= 1
	corpus["FuzzParseFileHeader"]["torn-size-hint"] = torn
	for _, algo := range codec.All() {
		rec := validRecord(4096, algo, compressible(3000, int(algo)))
		corpus["FuzzRecord"]["valid-"+algo.String()] = rec
		corpus["FuzzParseRecordHeader"]["valid-"+algo.String()] = rec[:RecordHeaderSize]
		flipped := append([]byte(nil), rec...)
		flipped[len(flipped)/2+RecordHeaderSize/2] ^= 0x10
		corpus["FuzzRecord"]["flipped-"+algo.String()] = flipped
	}
	rec := validRecord(4096, codec.LZ4, compressible(3000, 1))
	for name, mod := range map[string]func([]byte){
		"stored-huge": func(h []byte) { binary.LittleEndian.PutUint32(h[44:], 0xffffffff) },
		"raw-huge":    func(h []byte) { binary.LittleEndian.PutUint32(h[40:], 0x7fffffff) },
		"algo-bad":    func(h []byte) { h[5] = 200 },
		"block-huge":  func(h []byte) { binary.LittleEndian.PutUint64(h[24:], 1<<62) },
	} {
		r := append([]byte(nil), rec...)
		mod(r)
		binary.LittleEndian.PutUint32(r[60:], crc32c(r[:60]))
		corpus["FuzzRecord"][name] = r
		corpus["FuzzParseRecordHeader"][name] = r[:RecordHeaderSize]
	}
	corpus["FuzzRecord"]["truncated"] = rec[:RecordHeaderSize+10]
	for fz, m := range corpus {
		dir := filepath.Join("testdata", "fuzz", fz)
		for name, b := range m {
			path := filepath.Join(dir, name)
			if os.Getenv("ACCELFS_WRITE_CORPUS") == "1" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if _, err := os.Stat(path); err != nil {
				t.Errorf("seed corpus file missing: %v (regenerate with ACCELFS_WRITE_CORPUS=1)", err)
			}
		}
	}
}
