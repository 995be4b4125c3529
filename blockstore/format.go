package blockstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/accelfs/accelfs/codec"
	"golang.org/x/sys/unix"
)

// FormatVersion is the on-disk format version this package writes and reads
// (docs/format.md). It is recorded in the format file, in every backing file
// header and in every record header.
const FormatVersion = 1

var (
	fileMagic   = [8]byte{'a', 'c', 'c', 'e', 'l', 'f', 's', 'F'}
	recordMagic = [4]byte{'a', 'f', 'R', 'C'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// FileID is the random 128-bit identity of a backing file; it keys the file
// in the index. Hardlinks share it (one inode, one header).
type FileID [16]byte

func (id FileID) String() string { return fmt.Sprintf("%x", id[:]) }

// fileHeader is the first 64 bytes of a backing file.
//
//	0  magic "accelfsF"          8
//	8  version u16, 10 header length u16 (64), 12 block size u32
//	16 file ID                   16
//	32 crc32c of [0,32)          4
//	36 reserved (0)              4
//	40 size hint u64: logical size at the last commit that changed it
//	48 size generation u64: the file's generation counter at that commit
//	56 reserved (0)              4
//	60 crc32c of [40,60)         4
//
// Bytes [0,40) never change after InitFile. Bytes [40,64) are rewritten in
// place (one 24-byte write inside the first sector) when a commit changes the
// logical size; they only serve fsck --rebuild and are checked by their own
// crc, so a torn update loses the hint, nothing else.
type fileHeader struct {
	Version   uint16
	BlockSize uint32
	ID        FileID
	SizeHint  int64 // -1 when the dynamic part is invalid
	SizeGen   uint64
}

func (h *fileHeader) marshal() []byte {
	b := make([]byte, FileHeaderSize)
	copy(b[0:8], fileMagic[:])
	binary.LittleEndian.PutUint16(b[8:], h.Version)
	binary.LittleEndian.PutUint16(b[10:], FileHeaderSize)
	binary.LittleEndian.PutUint32(b[12:], h.BlockSize)
	copy(b[16:32], h.ID[:])
	binary.LittleEndian.PutUint32(b[32:], crc32c(b[0:32]))
	if h.SizeHint >= 0 {
		copy(b[40:], marshalSizeHint(h.SizeHint, h.SizeGen))
	} // else: no hint yet (zeros, which fail the hint's checksum)
	return b
}

// marshalSizeHint encodes header bytes [40,64).
func marshalSizeHint(size int64, gen uint64) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b[0:], uint64(size))
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint32(b[20:], crc32c(b[0:20]))
	return b
}

// parseFileHeader validates and decodes a backing file header. Every error
// wraps ErrBadFormat (not ours / unknown version) or ErrCorrupt (ours but
// damaged). An invalid size hint is not an error: SizeHint is -1.
func parseFileHeader(b []byte) (fileHeader, error) {
	var h fileHeader
	if len(b) < FileHeaderSize {
		return h, fmt.Errorf("%w: file header: %d bytes, want %d", ErrCorrupt, len(b), FileHeaderSize)
	}
	if [8]byte(b[0:8]) != fileMagic {
		return h, fmt.Errorf("%w: file header: bad magic %q", ErrBadFormat, b[0:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[32:]), crc32c(b[0:32]); got != want {
		return h, fmt.Errorf("%w: file header: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	h.Version = binary.LittleEndian.Uint16(b[8:])
	if h.Version != FormatVersion {
		return h, fmt.Errorf("%w: file header: version %d (this build reads %d)", ErrBadFormat, h.Version, FormatVersion)
	}
	if hl := binary.LittleEndian.Uint16(b[10:]); hl != FileHeaderSize {
		return h, fmt.Errorf("%w: file header: header length %d", ErrCorrupt, hl)
	}
	h.BlockSize = binary.LittleEndian.Uint32(b[12:])
	if !validBlockSize(int(h.BlockSize)) {
		return h, fmt.Errorf("%w: file header: block size %d", ErrCorrupt, h.BlockSize)
	}
	copy(h.ID[:], b[16:32])
	h.SizeHint = -1
	if binary.LittleEndian.Uint32(b[60:]) == crc32c(b[40:60]) {
		sz := int64(binary.LittleEndian.Uint64(b[40:]))
		if sz >= 0 && sz <= MaxFileSize {
			h.SizeHint = sz
			h.SizeGen = binary.LittleEndian.Uint64(b[48:])
		}
	}
	return h, nil
}

// recordHeader is the 64-byte header in front of every record's payload.
//
//	0  magic "afRC"   4
//	4  version u8, 5 algo u8, 6 level i8, 7 flags u8 (0)
//	8  file ID        16
//	24 block index u64
//	32 generation u64
//	40 raw length u32, 44 stored length u32
//	48 crc32c of the raw (decoded) data u32
//	52 crc32c of the stored payload u32
//	56 reserved (0) u32
//	60 crc32c of [0,60) u32
type recordHeader struct {
	Algo      codec.ID
	Level     int8
	ID        FileID
	Block     int64
	Gen       uint64
	RawLen    uint32
	StoredLen uint32
	RawCRC    uint32
	StoredCRC uint32
}

func (r *recordHeader) marshalTo(b []byte) {
	_ = b[RecordHeaderSize-1]
	copy(b[0:4], recordMagic[:])
	b[4] = FormatVersion
	b[5] = byte(r.Algo)
	b[6] = byte(r.Level)
	b[7] = 0
	copy(b[8:24], r.ID[:])
	binary.LittleEndian.PutUint64(b[24:], uint64(r.Block))
	binary.LittleEndian.PutUint64(b[32:], r.Gen)
	binary.LittleEndian.PutUint32(b[40:], r.RawLen)
	binary.LittleEndian.PutUint32(b[44:], r.StoredLen)
	binary.LittleEndian.PutUint32(b[48:], r.RawCRC)
	binary.LittleEndian.PutUint32(b[52:], r.StoredCRC)
	binary.LittleEndian.PutUint32(b[56:], 0)
	binary.LittleEndian.PutUint32(b[60:], crc32c(b[0:60]))
}

// hasRecordMagic reports whether b starts like a record (for scanning).
func hasRecordMagic(b []byte) bool {
	return len(b) >= 4 && [4]byte(b[0:4]) == recordMagic
}

// parseRecordHeader validates and decodes a record header for a store with
// block size bs. Every length, the algorithm and the block index are checked
// before anything uses them; errors wrap ErrCorrupt.
func parseRecordHeader(b []byte, bs int) (recordHeader, error) {
	var r recordHeader
	if len(b) < RecordHeaderSize {
		return r, fmt.Errorf("%w: record header: %d bytes, want %d", ErrCorrupt, len(b), RecordHeaderSize)
	}
	if !hasRecordMagic(b) {
		return r, fmt.Errorf("%w: record header: bad magic %q", ErrCorrupt, b[0:4])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32c(b[0:60]); got != want {
		return r, fmt.Errorf("%w: record header: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if b[4] != FormatVersion {
		return r, fmt.Errorf("%w: record header: version %d", ErrCorrupt, b[4])
	}
	r.Algo = codec.ID(b[5])
	if !r.Algo.Valid() {
		return r, fmt.Errorf("%w: record header: unknown algorithm %d", ErrCorrupt, b[5])
	}
	r.Level = int8(b[6])
	copy(r.ID[:], b[8:24])
	blk := binary.LittleEndian.Uint64(b[24:])
	if blk >= uint64(MaxFileSize/int64(bs)) {
		return r, fmt.Errorf("%w: record header: block index %d out of range", ErrCorrupt, blk)
	}
	r.Block = int64(blk)
	r.Gen = binary.LittleEndian.Uint64(b[32:])
	r.RawLen = binary.LittleEndian.Uint32(b[40:])
	r.StoredLen = binary.LittleEndian.Uint32(b[44:])
	r.RawCRC = binary.LittleEndian.Uint32(b[48:])
	r.StoredCRC = binary.LittleEndian.Uint32(b[52:])
	if err := checkLens(r.Algo, r.RawLen, r.StoredLen, bs); err != nil {
		return r, fmt.Errorf("record header: %w", err)
	}
	return r, nil
}

// checkLens validates a (raw, stored) length pair for block size bs.
func checkLens(algo codec.ID, raw, stored uint32, bs int) error {
	if raw == 0 || raw > uint32(bs) {
		return fmt.Errorf("%w: raw length %d (block size %d)", ErrCorrupt, raw, bs)
	}
	if stored == 0 || stored > uint32(bs) {
		return fmt.Errorf("%w: stored length %d (block size %d)", ErrCorrupt, stored, bs)
	}
	if algo == codec.None && raw != stored {
		return fmt.Errorf("%w: raw record with stored length %d != raw length %d", ErrCorrupt, stored, raw)
	}
	return nil
}

// decodeRecord checks a whole record (header + payload in rec) against the
// expected identity and returns the header and the decoded data appended to
// dst. want may be nil (scan: accept any identity in the header). The
// decoding itself is left to the caller when decompress is nil.
func verifyRecordPayload(h *recordHeader, payload []byte) error {
	if uint32(len(payload)) != h.StoredLen {
		return fmt.Errorf("%w: payload %d bytes, header says %d", ErrCorrupt, len(payload), h.StoredLen)
	}
	if got := crc32c(payload); got != h.StoredCRC {
		return fmt.Errorf("%w: payload checksum %08x, want %08x", ErrCorrupt, got, h.StoredCRC)
	}
	return nil
}

// formatFile is the JSON document in .accelfs/format.
type formatFile struct {
	Magic     string `json:"magic"`
	Version   int    `json:"format_version"`
	BlockSize int    `json:"block_size"`
	Algo      string `json:"algo"`
	Level     int    `json:"level"`
}

const formatMagic = "accelfs-store"

// readFormatFile reads and validates .accelfs/format (at most 64 KiB) from
// the meta directory (not following a symlink).
func readFormatFile(meta *os.File) (formatFile, error) {
	f, err := openAt(meta, formatName, os.O_RDONLY, 0)
	if err != nil {
		return formatFile{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return formatFile{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return parseFormatFile(b, f.Name())
}

// parseFormatFile decodes and validates the format file's contents (name is
// for messages). Unknown fields are refused: they would be lost by the next
// `accelfs set`.
func parseFormatFile(b []byte, name string) (formatFile, error) {
	var ff formatFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return ff, fmt.Errorf("%w: %s: %v", ErrBadFormat, name, err)
	}
	if dec.More() {
		return ff, fmt.Errorf("%w: %s: data after the JSON object", ErrBadFormat, name)
	}
	if ff.Magic != formatMagic {
		return ff, fmt.Errorf("%w: %s: magic %q", ErrBadFormat, name, ff.Magic)
	}
	if ff.Version != FormatVersion {
		return ff, fmt.Errorf("%w: %s: format version %d (this build reads %d)", ErrBadFormat, name, ff.Version, FormatVersion)
	}
	if !validBlockSize(ff.BlockSize) {
		return ff, fmt.Errorf("%w: %s: block size %d", ErrBadFormat, name, ff.BlockSize)
	}
	id, err := codec.Parse(ff.Algo)
	if err != nil {
		return ff, fmt.Errorf("%w: %s: %v", ErrBadFormat, name, err)
	}
	if _, err := codec.NormalizeLevel(id, ff.Level); err != nil {
		return ff, fmt.Errorf("%w: %s: %v", ErrBadFormat, name, err)
	}
	return ff, nil
}

// writeFormatFile writes .accelfs/format atomically: a temp file (opened
// O_NOFOLLOW, O_EXCL after removing a leftover), fsync, rename over the
// old one, fsync of the directory.
func writeFormatFile(meta *os.File, ff formatFile) error {
	b, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	const tmp = formatName + ".tmp"
	mfd := int(meta.Fd())
	if err := unix.Unlinkat(mfd, tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return metaWriteErr(meta, tmp, err)
	}
	f, err := openAt(meta, tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(mfd, tmp, mfd, formatName)
	}
	if err != nil {
		unix.Unlinkat(mfd, tmp, 0)
		return metaWriteErr(meta, formatName, err)
	}
	return meta.Sync()
}

func metaWriteErr(meta *os.File, name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &os.PathError{Op: "write", Path: filepath.Join(meta.Name(), name), Err: err}
}

// syncDir fsyncs the directory dir (makes a rename or create in it durable).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
