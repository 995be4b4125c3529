package codec

import (
	"fmt"
	"strconv"
)

// ID identifies a compression format. The numbers are part of the on-disk
// format (docs/format.md): never renumber.
type ID uint8

// The algorithms. Values are stored in every block record.
const (
	None    ID = 0 // stored as is
	LZ4     ID = 1 // LZ4 block format
	Zstd    ID = 2 // one zstd frame
	Deflate ID = 3 // raw deflate, RFC 1951
	Zlib    ID = 4 // RFC 1950
	Gzip    ID = 5 // RFC 1952, one member
)

// MaxRawLen bounds what one call may decode to. It matches the hisi_zip
// per-request limit (8 MiB) and is far above the largest block size (1 MiB).
const MaxRawLen = 8 << 20

var names = [...]string{None: "none", LZ4: "lz4", Zstd: "zstd", Deflate: "deflate", Zlib: "zlib", Gzip: "gzip"}

// All lists every known algorithm, in id order.
func All() []ID { return []ID{None, LZ4, Zstd, Deflate, Zlib, Gzip} }

// Valid reports whether id is a known algorithm.
func (id ID) Valid() bool { return int(id) < len(names) }

// String returns the algorithm's name, or "algo(N)" for an unknown id.
func (id ID) String() string {
	if id.Valid() {
		return names[id]
	}
	return "algo(" + strconv.Itoa(int(id)) + ")"
}

// Parse returns the algorithm with the given name.
func Parse(name string) (ID, error) {
	for i, n := range names {
		if n == name {
			return ID(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (known: none, lz4, zstd, deflate, zlib, gzip)", ErrUnknownAlgo, name)
}

// levelRange gives min, max and default level per algorithm.
func levelRange(id ID) (lo, hi, def int, err error) {
	switch id {
	case None:
		return 0, 0, 0, nil
	case LZ4:
		return 0, 9, 0, nil // 0 = fast; 1..9 = HC depth
	case Zstd:
		return 1, 22, 3, nil // zstd's own scale, mapped onto klauspost's levels
	case Deflate, Zlib, Gzip:
		return 1, 9, 6, nil
	}
	return 0, 0, 0, fmt.Errorf("%w: %d", ErrUnknownAlgo, id)
}

// NormalizeLevel maps level 0 to the algorithm's default and checks the range.
func NormalizeLevel(id ID, level int) (int, error) {
	lo, hi, def, err := levelRange(id)
	if err != nil {
		return 0, err
	}
	if level == 0 {
		return def, nil
	}
	if level < lo || level > hi {
		return 0, fmt.Errorf("%w: %s accepts %d..%d, got %d", ErrBadLevel, id, lo, hi, level)
	}
	return level, nil
}

// Compress appends the compressed form of src to dst and returns it.
// Level 0 means the algorithm's default.
func Compress(id ID, level int, dst, src []byte) ([]byte, error) {
	level, err := NormalizeLevel(id, level)
	if err != nil {
		return dst, err
	}
	switch id {
	case None:
		return append(dst, src...), nil
	case LZ4:
		return lz4Compress(level, dst, src)
	case Zstd:
		return zstdCompress(level, dst, src)
	case Deflate, Zlib, Gzip:
		return flateCompress(id, level, dst, src)
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownAlgo, id)
}

// Decompress appends exactly rawLen decoded bytes to dst. It returns an error
// wrapping ErrCorrupt when src does not decode to exactly rawLen bytes; it never
// grows the output beyond rawLen, whatever src claims.
func Decompress(id ID, dst, src []byte, rawLen int) ([]byte, error) {
	if rawLen < 0 || rawLen > MaxRawLen {
		return dst, fmt.Errorf("%w: raw length %d (max %d)", ErrTooLarge, rawLen, MaxRawLen)
	}
	if !id.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnknownAlgo, id)
	}
	start := len(dst)
	dst = grow(dst, rawLen)
	out := dst[start : start+rawLen]
	if err := decode(id, out, src); err != nil {
		return dst[:start], fmt.Errorf("%w: %s: %v", ErrCorrupt, id, err)
	}
	return dst, nil
}

// decode runs one decoder. The third-party decoders are fuzzed, but a panic
// on hostile input in one of them must still become an error, not a crash of
// the filesystem: hence the recover.
func decode(id ID, out, src []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	switch id {
	case None:
		if len(src) != len(out) {
			err = fmt.Errorf("stored length %d != raw length %d", len(src), len(out))
		} else {
			copy(out, src)
		}
	case LZ4:
		err = lz4Decompress(out, src)
	case Zstd:
		err = zstdDecompress(out, src)
	case Deflate, Zlib, Gzip:
		err = flateDecompress(id, out, src)
	}
	return err
}

// grow extends dst by n bytes, reallocating only when capacity is short.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst[:len(dst)+n]
	}
	nb := make([]byte, len(dst)+n)
	copy(nb, dst)
	return nb
}
