package uacce

import (
	"encoding/binary"
	"strconv"
)

// IoctlCmd is an ioctl request number in the generic Linux _IOC encoding
// used by arm64 and x86 (asm-generic/ioctl.h): dir in bits 31:30, argument
// size in 29:16, type in 15:8, number in 7:0.
type IoctlCmd uint32

// ioctl directions as seen from user space (asm-generic/ioctl.h).
const (
	iocNone  = 0
	iocWrite = 1 // user -> kernel
	iocRead  = 2 // kernel -> user
)

func ioc(dir, typ, nr byte, size uint32) IoctlCmd {
	// _IOC_SIZEBITS is 14; every size used here is tiny and fixed.
	return IoctlCmd(uint32(dir)<<30 | (size&0x3fff)<<16 | uint32(typ)<<8 | uint32(nr))
}

// IO is _IO(typ, nr).
func IO(typ, nr byte) IoctlCmd { return ioc(iocNone, typ, nr, 0) }

// IOWR is _IOWR(typ, nr, size).
func IOWR(typ, nr byte, size uint32) IoctlCmd { return ioc(iocRead|iocWrite, typ, nr, size) }

// Dir returns the direction bits, Size the argument size, Type and Nr the
// type character and number.
func (c IoctlCmd) Dir() uint32  { return uint32(c) >> 30 }
func (c IoctlCmd) Size() uint32 { return (uint32(c) >> 16) & 0x3fff }
func (c IoctlCmd) Type() byte   { return byte(c >> 8) }
func (c IoctlCmd) Nr() byte     { return byte(c) }

// Struct sizes of the QM uAPI (§1.5 table, K-QMUAPI).
const (
	SizeofQPCtx  = 4  // struct hisi_qp_ctx { __u16 id; __u16 qc_type; }
	SizeofQPInfo = 16 // struct hisi_qp_info { __u32 sqe_size; __u16 sq_depth; __u16 cq_depth; __u64 reserved; }
)

// ioctl requests of the mainline ABI (§1.5; K-UAPI, K-QMUAPI). Only these
// numbers are assumed; pre-mainline trees numbered them differently (§1.5
// pitfall, OLD-UAPI).
var (
	CmdStartQ    = IO('W', 0)                  // UACCE_CMD_START_Q = 0x5700
	CmdPutQ      = IO('W', 1)                  // UACCE_CMD_PUT_Q   = 0x5701
	CmdSetQPCtx  = IOWR('H', 10, SizeofQPCtx)  // UACCE_CMD_QM_SET_QP_CTX  = 0xC004480A
	CmdSetQPInfo = IOWR('H', 11, SizeofQPInfo) // UACCE_CMD_QM_SET_QP_INFO = 0xC010480B
)

// Region types = mmap page offsets (§1.4, K-UAPI UACCE_QFRT_*; K-UACCE
// uacce_fops_mmap uses vm_pgoff as the type).
const (
	RegionMMIO = 0
	RegionDUS  = 1
)

// Defaults a pre-6.3 kernel implies when QM_SET_QP_INFO fails with EINVAL
// (§1.5, §2.1; U-QM his_qm_set_qp_ctx falls back to QM_Q_DEPTH 1024).
const (
	DefaultDepth   = 1024
	DefaultSQESize = 128 // hisi_zip HZIP_SQE_SIZE (§2.1, K-ZIPM)
)

// Direction is the queue's qc_type written by QM_SET_QP_CTX before START:
// for hisi_zip 0 = compression, 1 = decompression (§1.5, K-ZIPC). Mainline
// accepts only 0 and 1.
type Direction uint16

const (
	Compress   Direction = 0
	Decompress Direction = 1
)

func (d Direction) String() string {
	switch d {
	case Compress:
		return "compress"
	case Decompress:
		return "decompress"
	}
	return "qc_type(" + strconv.Itoa(int(d)) + ")"
}

// QPCtx is struct hisi_qp_ctx (4 bytes, little-endian, §1.5 table):
// id u16 at 0 (out: hardware qp number), qc_type u16 at 2 (in).
type QPCtx struct {
	ID     uint16
	QCType uint16
}

// Marshal encodes c in the kernel layout.
func (c QPCtx) Marshal() [SizeofQPCtx]byte {
	var b [SizeofQPCtx]byte
	binary.LittleEndian.PutUint16(b[0:], c.ID)
	binary.LittleEndian.PutUint16(b[2:], c.QCType)
	return b
}

// UnmarshalQPCtx decodes the kernel layout.
func UnmarshalQPCtx(b [SizeofQPCtx]byte) QPCtx {
	return QPCtx{ID: binary.LittleEndian.Uint16(b[0:]), QCType: binary.LittleEndian.Uint16(b[2:])}
}

// QPInfo is struct hisi_qp_info (16 bytes, §1.5 table): sqe_size u32 at 0,
// sq_depth u16 at 4, cq_depth u16 at 6, reserved u64 at 8.
type QPInfo struct {
	SQESize uint32
	SQDepth uint16
	CQDepth uint16
}

// Marshal encodes i in the kernel layout (reserved = 0).
func (i QPInfo) Marshal() [SizeofQPInfo]byte {
	var b [SizeofQPInfo]byte
	binary.LittleEndian.PutUint32(b[0:], i.SQESize)
	binary.LittleEndian.PutUint16(b[4:], i.SQDepth)
	binary.LittleEndian.PutUint16(b[6:], i.CQDepth)
	return b
}

// UnmarshalQPInfo decodes the kernel layout.
func UnmarshalQPInfo(b [SizeofQPInfo]byte) QPInfo {
	return QPInfo{
		SQESize: binary.LittleEndian.Uint32(b[0:]),
		SQDepth: binary.LittleEndian.Uint16(b[4:]),
		CQDepth: binary.LittleEndian.Uint16(b[6:]),
	}
}
