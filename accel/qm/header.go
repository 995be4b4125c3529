package qm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Stream headers written by software (§3.4; U-ZIP fill_buf_deflate_generic,
// old K-ZIPC add_comp_head): the device emits the deflate body and the
// trailer only.
var (
	ZlibHeader = [2]byte{0x78, 0x9c}
	GzipHeader = [10]byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03}
)

// compHeader returns the header software prepends to compressed output.
func compHeader(alg Alg) []byte {
	switch alg {
	case AlgZlib:
		return ZlibHeader[:]
	case AlgGzip:
		return GzipHeader[:]
	}
	return nil
}

// headerLen returns the length of the zlib/gzip header at the start of a
// compressed stream, validating it; 0 for raw deflate. UADK assumes the fixed
// 10-byte gzip header (§3.4); this also skips the optional FEXTRA, FNAME,
// FCOMMENT and FHCRC fields so streams from other writers work.
func headerLen(alg Alg, src []byte) (int, error) {
	switch alg {
	case AlgDeflate:
		return 0, nil
	case AlgZlib:
		// RFC 1950: CMF (CM=8, CINFO<=7), FLG with FCHECK, no preset dictionary.
		if len(src) < 2 {
			return 0, fmt.Errorf("qm: zlib header: %d bytes: %w", len(src), ErrBadRequest)
		}
		cmf, flg := src[0], src[1]
		if cmf&0x0f != 8 || cmf>>4 > 7 || (uint16(cmf)<<8|uint16(flg))%31 != 0 || flg&0x20 != 0 {
			return 0, fmt.Errorf("qm: zlib header %02x %02x: %w", cmf, flg, ErrBadRequest)
		}
		return 2, nil
	case AlgGzip:
		// RFC 1952 member header.
		if len(src) < 10 || src[0] != 0x1f || src[1] != 0x8b || src[2] != 8 || src[3]&0xe0 != 0 {
			return 0, fmt.Errorf("qm: gzip header: %w", ErrBadRequest)
		}
		flg, n := src[3], 10
		if flg&0x04 != 0 { // FEXTRA
			if len(src) < n+2 {
				return 0, fmt.Errorf("qm: gzip FEXTRA: %w", ErrBadRequest)
			}
			n += 2 + (int(src[n]) | int(src[n+1])<<8)
		}
		for _, bit := range []byte{0x08, 0x10} { // FNAME, FCOMMENT: zero-terminated
			if flg&bit == 0 {
				continue
			}
			for {
				if n >= len(src) {
					return 0, fmt.Errorf("qm: gzip header string: %w", ErrBadRequest)
				}
				n++
				if src[n-1] == 0 {
					break
				}
			}
		}
		if flg&0x02 != 0 { // FHCRC: low 16 bits of the CRC-32 of the header before it
			if n+2 > len(src) {
				return 0, fmt.Errorf("qm: gzip FHCRC: %w", ErrBadRequest)
			}
			if uint16(crc32.ChecksumIEEE(src[:n])) != binary.LittleEndian.Uint16(src[n:]) {
				return 0, fmt.Errorf("qm: gzip header CRC mismatch: %w", ErrBadRequest)
			}
			n += 2
		}
		if n > len(src) {
			return 0, fmt.Errorf("qm: gzip header: %w", ErrBadRequest)
		}
		return n, nil
	}
	return 0, fmt.Errorf("qm: algorithm %v: %w", alg, ErrBadRequest)
}
