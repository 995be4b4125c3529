package qm

import (
	"encoding/binary"
	"fmt"
)

// SQESize is the hisi_zip SQE size: 128 bytes = 32 little-endian u32
// (§2.1 HZIP_SQE_SIZE, §3).
const SQESize = 128

// SQEType is dw7[31:28], which selects the SQE layout (§3.1).
type SQEType uint8

const (
	// SQETypeV1 is the "v1 layout" (kernel zip.h / UADK v1 hisi_zip_sqe):
	// tag in dw13, used on QM v2 hardware for zlib/gzip (what issue 4 calls
	// the v2 layout: the layout of the hardware generation hisi_qm_v2).
	SQETypeV1 SQEType = 0
	// SQETypeV3 is the "v3 layout" (UADK hisi_zip_sqe, sqe_type 3): tag in
	// dw26, used on QM v3 and for deflate.
	SQETypeV3 SQEType = 3
)

// SQETypeFor chooses the layout: the v1 layout for zlib/gzip on QM v1/v2
// hardware, the v3 layout otherwise (§3.1, U-ZIP hisi_zip_sqe_ops_adapt).
func SQETypeFor(apiVersion int, alg Alg) SQEType {
	if apiVersion > 0 && apiVersion < 3 && (alg == AlgZlib || alg == AlgGzip) {
		return SQETypeV1
	}
	return SQETypeV3
}

// Alg is the request type in dw9[7:0] (§3.1; U-ZIP enum alg_type).
type Alg uint8

const (
	AlgDeflate     Alg = 0x01 // raw RFC 1951
	AlgZlib        Alg = 0x02 // RFC 1950 (header written by software, §3.4)
	AlgGzip        Alg = 0x03 // RFC 1952 (header written by software, §3.4)
	AlgLZ4         Alg = 0x04
	AlgLZ77Only    Alg = 0x40
	AlgLZ77Zstd    Alg = 0x43
	maxFlatInput       = 8 << 20 // HZ_MAX_SIZE: flat input > 8 MiB is rejected (§3.5)
	maxDestAvail       = 8 << 20 // dest_avail_out is clamped to 8 MiB (§3.5)
	minDestAvailV1     = 0x10    // v1 hardware ignores dest_avail_out < 0x10 (§3.2, U-V1 BYPASS_DEST_LEN)
)

// String returns the algorithm name used in the sysfs algorithms list.
func (a Alg) String() string {
	switch a {
	case AlgDeflate:
		return "deflate"
	case AlgZlib:
		return "zlib"
	case AlgGzip:
		return "gzip"
	case AlgLZ4:
		return "lz4"
	case AlgLZ77Only:
		return "lz77_only"
	case AlgLZ77Zstd:
		return "lz77_zstd"
	}
	return fmt.Sprintf("alg(%#x)", uint8(a))
}

// Status codes, dw3[7:0] (§3.2; U-ZIP parse_zip_sqe, K-ZIPH).
const (
	StatusOK         = 0x00
	StatusNegComp    = 0x0d // HZIP_NC_ERR "negative compression": success
	StatusDstLenOut  = 0x0e // ERR_DSTLEN_OUT: output space insufficient
	StatusInDIF      = 0x0f
	StatusCRC        = 0x10
	StatusOutDIF     = 0x12
	StatusDecompEnd  = 0x13 // HZ_DECOMP_END; with LastBlock = end of stream
	StatusLastBlock  = 0x100
	statusCodeMask   = 0xff
	CtxStNoSpace     = 0x1 // DECOMP_NO_SPACE (ctx_dw0[3:0])
	CtxStDecompingNS = 0x2 // DECOMPING_NO_SPACE
)

// dw7 bits (§3.1).
const (
	dw7FlushFinish = 1 << 25 // 1 = FINISH, 0 = SYNC_FLUSH
	dw7Stateful    = 1 << 26 // stream mode
	dw7NewStream   = 1 << 27 // stream position: first request of a stream
	dw7TypeShift   = 28
)

// Dword indices of the hisi_zip SQE (§3.1 table). Byte offset = 4*index.
const (
	DWConsumed     = 0
	DWProduced     = 1
	DWCompDataLen  = 2
	DWStatus       = 3 // 7:0 status, bit 8 last block
	DWInputLen     = 4
	DW7            = 7
	DW8            = 8
	DW9            = 9 // 7:0 alg, 11:8 buffer type, 15:12 window
	DWTagV1        = 13
	DWDestAvailOut = 14
	DWCtx0         = 15
	DWSrcLo        = 18
	DWDstLo        = 20
	DWStreamCtxLo  = 22
	DWLiteralsLo   = 24
	DWTagV3        = 26
	DWTagHiV3      = 27
	DWCtx1         = 28
	DWCtx2         = 29
	DWISize        = 30
	DWChecksum     = 31
)

// ZipSQE is a decoded hisi_zip SQE. Input fields are written by the driver;
// output fields are written back by the device into the same slot (§2.3).
type ZipSQE struct {
	Type SQEType // dw7[31:28], selects tag position

	// Driver -> device.
	InputLen     uint32 // dw4
	SGLOffIn     uint32 // dw7[23:0]
	Finish       bool   // dw7 bit 25 (FINISH flush)
	Stateful     bool   // dw7 bit 26
	NewStream    bool   // dw7 bit 27
	SGLOffOut    uint32 // dw8[23:0]
	Alg          Alg    // dw9[7:0]
	BufType      uint8  // dw9[11:8]: 0 flat, 1 hardware SGL
	WinSize      uint8  // dw9[15:12]
	Tag          uint32 // dw13 (v1) or dw26 (v3)
	DestAvailOut uint32 // dw14 (in/out)
	Src          uint64 // dw18/19
	Dst          uint64 // dw20/21
	StreamCtx    uint64 // dw22/23
	Literals     uint64 // dw24/25 (v3 lz77 literals; v1 cipher key)

	// Device -> driver (and stream state in/out).
	Consumed    uint32 // dw0
	Produced    uint32 // dw1
	CompDataLen uint32 // dw2
	Status      uint16 // dw3[8:0]: code | LastBlock bit
	CtxDW0      uint32 // dw15 (3:0 ctx_st)
	CtxDW1      uint32 // dw28
	CtxDW2      uint32 // dw29
	ISize       uint32 // dw30
	Checksum    uint32 // dw31
}

// Code returns the status code dw3[7:0].
func (s *ZipSQE) Code() uint8 { return uint8(s.Status & statusCodeMask) }

// LastBlock returns dw3 bit 8.
func (s *ZipSQE) LastBlock() bool { return s.Status&StatusLastBlock != 0 }

// Encode writes s into b[:SQESize]; every other byte is zeroed.
func (s *ZipSQE) Encode(b []byte) {
	b = b[:SQESize]
	clear(b)
	put := func(dw int, v uint32) { binary.LittleEndian.PutUint32(b[4*dw:], v) }
	put64 := func(dw int, v uint64) { put(dw, uint32(v)); put(dw+1, uint32(v>>32)) }
	put(DWConsumed, s.Consumed)
	put(DWProduced, s.Produced)
	put(DWCompDataLen, s.CompDataLen)
	put(DWStatus, uint32(s.Status&0x1ff))
	put(DWInputLen, s.InputLen)
	dw7 := s.SGLOffIn&0xffffff | uint32(s.Type&0xf)<<dw7TypeShift
	if s.Finish {
		dw7 |= dw7FlushFinish
	}
	if s.Stateful {
		dw7 |= dw7Stateful
	}
	if s.NewStream {
		dw7 |= dw7NewStream
	}
	put(DW7, dw7)
	put(DW8, s.SGLOffOut&0xffffff)
	put(DW9, uint32(s.Alg)|uint32(s.BufType&0xf)<<8|uint32(s.WinSize&0xf)<<12)
	if s.Type == SQETypeV1 {
		put(DWTagV1, s.Tag)
	} else {
		put(DWTagV3, s.Tag)
	}
	put(DWDestAvailOut, s.DestAvailOut)
	put(DWCtx0, s.CtxDW0)
	put64(DWSrcLo, s.Src)
	put64(DWDstLo, s.Dst)
	put64(DWStreamCtxLo, s.StreamCtx)
	put64(DWLiteralsLo, s.Literals)
	put(DWCtx1, s.CtxDW1)
	put(DWCtx2, s.CtxDW2)
	put(DWISize, s.ISize)
	put(DWChecksum, s.Checksum)
}

// DecodeZipSQE decodes a 128-byte SQE. It fails (ErrBadSQE) on a short
// buffer or an SQE type other than 0 and 3; it never panics.
func DecodeZipSQE(b []byte) (ZipSQE, error) {
	if len(b) < SQESize {
		return ZipSQE{}, fmt.Errorf("qm: SQE of %d bytes: %w", len(b), ErrBadSQE)
	}
	get := func(dw int) uint32 { return binary.LittleEndian.Uint32(b[4*dw:]) }
	get64 := func(dw int) uint64 { return uint64(get(dw)) | uint64(get(dw+1))<<32 }
	dw7, dw9 := get(DW7), get(DW9)
	s := ZipSQE{
		Type:         SQEType(dw7 >> dw7TypeShift),
		Consumed:     get(DWConsumed),
		Produced:     get(DWProduced),
		CompDataLen:  get(DWCompDataLen),
		Status:       uint16(get(DWStatus) & 0x1ff),
		InputLen:     get(DWInputLen),
		SGLOffIn:     dw7 & 0xffffff,
		Finish:       dw7&dw7FlushFinish != 0,
		Stateful:     dw7&dw7Stateful != 0,
		NewStream:    dw7&dw7NewStream != 0,
		SGLOffOut:    get(DW8) & 0xffffff,
		Alg:          Alg(dw9),
		BufType:      uint8(dw9>>8) & 0xf,
		WinSize:      uint8(dw9>>12) & 0xf,
		DestAvailOut: get(DWDestAvailOut),
		CtxDW0:       get(DWCtx0),
		Src:          get64(DWSrcLo),
		Dst:          get64(DWDstLo),
		StreamCtx:    get64(DWStreamCtxLo),
		Literals:     get64(DWLiteralsLo),
		CtxDW1:       get(DWCtx1),
		CtxDW2:       get(DWCtx2),
		ISize:        get(DWISize),
		Checksum:     get(DWChecksum),
	}
	switch s.Type {
	case SQETypeV1:
		s.Tag = get(DWTagV1)
	case SQETypeV3:
		s.Tag = get(DWTagV3)
	default:
		return s, fmt.Errorf("qm: SQE type %d: %w", s.Type, ErrBadSQE)
	}
	return s, nil
}
