package codec

import (
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// lz4Levels maps our 1..9 onto the library's HC depths; 0 is the fast compressor.
var lz4Levels = [...]lz4.CompressionLevel{lz4.Fast, lz4.Level1, lz4.Level2, lz4.Level3,
	lz4.Level4, lz4.Level5, lz4.Level6, lz4.Level7, lz4.Level8, lz4.Level9}

func lz4Compress(level int, dst, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	start := len(dst)
	dst = grow(dst, lz4.CompressBlockBound(len(src)))
	out := dst[start:]
	var n int
	var err error
	// The library pools its compressors, so both calls are safe concurrently.
	if level == 0 {
		n, err = lz4.CompressBlock(src, out, nil)
	} else {
		n, err = lz4.CompressBlockHC(src, out, lz4Levels[level], nil, nil)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("lz4 compress: %w", err)
	}
	if n == 0 {
		// Cannot happen with a bound-sized destination; refuse rather than
		// record an empty payload for non-empty data.
		return dst[:start], fmt.Errorf("lz4 compress: no output for %d bytes", len(src))
	}
	return dst[:start+n], nil
}

// lz4Decompress fills out exactly; the decoder never writes past len(out).
func lz4Decompress(out, src []byte) error {
	if len(out) == 0 {
		// The library's assembly decoder dereferences dst even when it is
		// empty (found by FuzzDecompress); an empty block has no payload.
		if len(src) != 0 {
			return fmt.Errorf("%d payload bytes for an empty block", len(src))
		}
		return nil
	}
	n, err := lz4.UncompressBlock(src, out)
	if err != nil {
		return err
	}
	if n != len(out) {
		return fmt.Errorf("decoded %d bytes, want %d", n, len(out))
	}
	return nil
}
