package codec

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstd encoders are safe for concurrent EncodeAll and keep their own pool,
// so one per library level is enough; built on first use.
var (
	zstdEncMu  sync.Mutex
	zstdEncs   = map[zstd.EncoderLevel]*zstd.Encoder{}
	zstdDecOne sync.Once
	zstdDec    *zstd.Decoder
	zstdDecErr error
)

func zstdEncoder(level int) (*zstd.Encoder, error) {
	l := zstd.EncoderLevelFromZstd(level)
	zstdEncMu.Lock()
	defer zstdEncMu.Unlock()
	if e := zstdEncs[l]; e != nil {
		return e, nil
	}
	// CRC off: every stored block already carries a crc32c of its raw data.
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	zstdEncs[l] = e
	return e, nil
}

func zstdDecoder() (*zstd.Decoder, error) {
	zstdDecOne.Do(func() {
		// MaxMemory caps what one DecodeAll may produce, whatever the frame says.
		zstdDec, zstdDecErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxRawLen), zstd.WithDecoderMaxWindow(MaxRawLen))
	})
	return zstdDec, zstdDecErr
}

func zstdCompress(level int, dst, src []byte) ([]byte, error) {
	e, err := zstdEncoder(level)
	if err != nil {
		return dst, fmt.Errorf("zstd encoder: %w", err)
	}
	return e.EncodeAll(src, dst), nil
}

func zstdDecompress(out, src []byte) error {
	// Check the declared size first: a frame that says it holds more than
	// out is refused before anything is decoded.
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return err
	}
	if h.HasFCS && h.FrameContentSize != uint64(len(out)) {
		return fmt.Errorf("frame declares %d bytes, want %d", h.FrameContentSize, len(out))
	}
	d, err := zstdDecoder()
	if err != nil {
		return err
	}
	res, err := d.DecodeAll(src, out[:0])
	if err != nil {
		return err
	}
	if len(res) != len(out) {
		return fmt.Errorf("decoded %d bytes, want %d", len(res), len(out))
	}
	if len(out) > 0 && &res[0] != &out[0] {
		// DecodeAll reallocated (it should not with enough capacity); keep
		// the contract that out holds the data.
		copy(out, res)
	}
	return nil
}
