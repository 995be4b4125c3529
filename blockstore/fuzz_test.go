package blockstore

import (
	"bytes"
	"testing"

	"github.com/accelfs/accelfs/codec"
)

// Fuzz targets for everything that parses bytes from disk. Seed corpus:
// testdata/fuzz/<FuzzName>/ (committed) plus the f.Add seeds below.

func FuzzParseFileHeader(f *testing.F) {
	h := fileHeader{Version: FormatVersion, BlockSize: 4096, ID: FileID{1, 2, 3}, SizeHint: 12345, SizeGen: 7}
	f.Add(h.marshal())
	f.Add(make([]byte, FileHeaderSize))
	f.Add([]byte("accelfsF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseFileHeader(b)
		if err != nil {
			return
		}
		if !validBlockSize(int(h.BlockSize)) || h.Version != FormatVersion || h.SizeHint > MaxFileSize {
			t.Fatalf("accepted invalid header %+v", h)
		}
		// Re-encoding the immutable part gives the same bytes.
		h2 := h
		if h2.SizeHint < 0 {
			h2.SizeHint = 0
		}
		if !bytes.Equal(h2.marshal()[:36], b[:36]) {
			t.Fatalf("header does not round-trip")
		}
	})
}

func validRecord(bs int, algo codec.ID, data []byte) []byte {
	payload := data
	if algo != codec.None {
		payload, _ = codec.Compress(algo, 0, nil, data)
	}
	h := recordHeader{Algo: algo, ID: FileID{9}, Block: 3, Gen: 11, RawLen: uint32(len(data)), StoredLen: uint32(len(payload)),
		RawCRC: crc32c(data), StoredCRC: crc32c(payload)}
	rec := make([]byte, RecordHeaderSize+len(payload))
	h.marshalTo(rec)
	copy(rec[RecordHeaderSize:], payload)
	return rec
}

func FuzzParseRecordHeader(f *testing.F) {
	for _, algo := range codec.All() {
		f.Add(validRecord(4096, algo, compressible(3000, int(algo)))[:RecordHeaderSize])
	}
	f.Add(make([]byte, RecordHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, bs := range []int{MinBlockSize, MaxBlockSize} {
			h, err := parseRecordHeader(b, bs)
			if err != nil {
				continue
			}
			if !h.Algo.Valid() || h.RawLen == 0 || h.RawLen > uint32(bs) || h.StoredLen == 0 || h.StoredLen > uint32(bs) || h.Block < 0 {
				t.Fatalf("accepted invalid record header %+v for block size %d", h, bs)
			}
			var out [RecordHeaderSize]byte
			h.marshalTo(out[:])
			if !bytes.Equal(out[:], b[:RecordHeaderSize]) {
				t.Fatalf("record header does not round-trip")
			}
		}
	})
}

// FuzzRecord runs the whole read-verify-decode path of one block on
// arbitrary bytes placed in a backing file: it must return the original
// data or an error, never panic, never allocate beyond the block size.
func FuzzRecord(f *testing.F) {
	for _, algo := range codec.All() {
		f.Add(validRecord(4096, algo, compressible(3000, int(algo))))
	}
	// One store and one backing file for every input (opening a store per
	// input would make the fuzzer 100x slower).
	s := fuzzStore(f, f.TempDir())
	defer s.Close()
	e := fuzzInode(f, s)
	defer e.f.Close()
	f.Fuzz(func(t *testing.T, rec []byte) {
		if len(rec) > RecordHeaderSize+MaxBlockSize {
			return
		}
		if err := e.f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		off, _ := locOffset(s.bs, 3, locSlot0)
		if _, err := e.f.WriteAt(rec, off); err != nil {
			t.Fatal(err)
		}
		h, herr := parseRecordHeader(rec, s.bs)
		// The index entry says what a valid header says (or garbage otherwise).
		en := entry{Loc: locSlot0, Algo: h.Algo, RawLen: h.RawLen, StoredLen: h.StoredLen, RawCRC: h.RawCRC, StoredCRC: h.StoredCRC, Gen: h.Gen}
		if herr != nil {
			en = entry{Loc: locSlot0, Algo: codec.LZ4, RawLen: 100, StoredLen: 100, Gen: 1}
		}
		fe := &fetched{block: 3, en: en}
		if err := e.fetch(t.Context(), []*fetched{fe}); err != nil {
			t.Fatal(err)
		}
		if fe.err == nil {
			if herr != nil || crc32c(fe.data) != h.RawCRC || len(fe.data) != int(h.RawLen) {
				t.Fatalf("accepted a bad record")
			}
		}
	})
}
