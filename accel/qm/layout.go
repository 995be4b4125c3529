package qm

import (
	"encoding/binary"
	"fmt"
)

// CQESize is the size of one completion queue entry (§2.1: QM_QC_CQE_SIZE
// code 4 = 16 bytes; §2.3).
const CQESize = 16

// Layout gives the byte offsets of one queue's DUS region (§2.2, K-QM
// hisi_qp_memory_init / qm_alloc_uacce, U-QM hisi_qm_setup_info):
//
//	[0, SQESize*SQDepth)                 SQ ring
//	[SQOff+SQSize, +16*CQDepth)          CQ ring
//	padding to the page boundary, then one status page whose last 8 bytes are
//	ds_rx (size-8) and ds_tx (size-4).
type Layout struct {
	SQESize, SQDepth, CQDepth, PageSize int

	SQOff int // always 0
	CQOff int // SQESize*SQDepth
	// Size is the DUS size the kernel allocates:
	// ((PAGE_SIZE-1 + sqe*sq_depth + 16*cq_depth + PAGE_SIZE) >> PAGE_SHIFT)
	// pages (§2.2): 37 pages = 151552 bytes for zip with 4 KiB pages.
	Size    int
	DsRxOff int // Size-8: ds_rx, 1 = receiving disabled
	DsTxOff int // Size-4: ds_tx, 1 = sending disabled
}

// DUSLayout computes the layout for the given queue geometry.
func DUSLayout(sqeSize, sqDepth, cqDepth, pageSize int) (Layout, error) {
	// Depths are u16 in hisi_qp_info and ring indices are 16-bit (doorbell
	// index, CQE sq_head), so at most 0xffff entries.
	if sqeSize <= 0 || sqeSize%16 != 0 || sqDepth < 2 || cqDepth < 2 || sqDepth > 0xffff || cqDepth > 0xffff ||
		pageSize < 4096 || pageSize&(pageSize-1) != 0 {
		return Layout{}, fmt.Errorf("qm: bad queue geometry sqe=%d sq=%d cq=%d page=%d", sqeSize, sqDepth, cqDepth, pageSize)
	}
	l := Layout{SQESize: sqeSize, SQDepth: sqDepth, CQDepth: cqDepth, PageSize: pageSize}
	l.CQOff = sqeSize * sqDepth
	pages := (pageSize - 1 + sqeSize*sqDepth + CQESize*cqDepth + pageSize) / pageSize
	l.Size = pages * pageSize
	l.DsRxOff = l.Size - 8
	l.DsTxOff = l.Size - 4
	return l, nil
}

// withMappedSize places the status words at the end of the actual mapping
// (U-QM: ds_tx_base = dus_base + size - 4), which must hold the rings.
func (l Layout) withMappedSize(n int) (Layout, error) {
	if n < l.CQOff+CQESize*l.CQDepth+8 {
		return Layout{}, fmt.Errorf("qm: DUS region of %d bytes cannot hold rings of %d bytes", n, l.CQOff+CQESize*l.CQDepth)
	}
	l.Size, l.DsRxOff, l.DsTxOff = n, n-8, n-4
	return l, nil
}

// Doorbell commands (K-QMH: SQ = 0, CQ = 1, EQ = 2, AEQ = 3; §2.5).
type DBCmd uint8

const (
	DBSQ  DBCmd = 0
	DBCQ  DBCmd = 1
	DBEQ  DBCmd = 2
	DBAEQ DBCmd = 3
)

// Doorbell register offsets inside the queue's MMIO map (§2.5).
const (
	DoorbellOffV1 = 0x340  // QM_DOORBELL_BASE_V1
	DoorbellOffV2 = 0x1000 // QM_DOORBELL_SQ_CQ_BASE_V2 (v2, v3, unknown)
)

// DoorbellOffset returns the register offset for a QM api version; unknown
// versions use the v2 format (U-QM hisi_qm_setup_db).
func DoorbellOffset(apiVersion int) int {
	if apiVersion == 1 {
		return DoorbellOffV1
	}
	return DoorbellOffV2
}

// Doorbell is a decoded doorbell value.
type Doorbell struct {
	QN       uint16
	Cmd      DBCmd
	Rand     uint16 // v2+ randata, bits 16-31 (the kernel and we write 0)
	Index    uint16
	Priority uint16
}

// EncodeDoorbell builds the 64-bit doorbell (§2.5; K-QM qm_db_v1/qm_db_v2,
// U-QM hacc_db_v1/v2):
//
//	v1:  qn bits 0-15, cmd bits 16-19, index 32-47, priority 48-63
//	v2+: qn bits 0-11, cmd bits 12-15, randata 16-31, index 32-47, priority 48-63
func EncodeDoorbell(apiVersion int, d Doorbell) uint64 {
	var v uint64
	if apiVersion == 1 {
		v = uint64(d.QN) | uint64(d.Cmd&0xf)<<16
	} else {
		v = uint64(d.QN&0xfff) | uint64(d.Cmd&0xf)<<12 | uint64(d.Rand)<<16
	}
	return v | uint64(d.Index)<<32 | uint64(d.Priority)<<48
}

// DecodeDoorbell is the inverse of EncodeDoorbell (used by the emulator).
func DecodeDoorbell(apiVersion int, v uint64) Doorbell {
	d := Doorbell{Index: uint16(v >> 32), Priority: uint16(v >> 48)}
	if apiVersion == 1 {
		d.QN, d.Cmd = uint16(v), DBCmd(v>>16)&0xf
	} else {
		d.QN, d.Cmd, d.Rand = uint16(v)&0xfff, DBCmd(v>>12)&0xf, uint16(v>>16)
	}
	return d
}

// CQE field offsets (§2.3, K-QM struct qm_cqe, U-QM struct cqe).
const (
	CQEOffCmdID  = 4
	CQEOffSQHead = 8
	CQEOffSQNum  = 10
	CQEOffW7     = 14 // bit 0 = phase
	// CQEOffPhaseWord is the aligned 32-bit word (rsvd2 | w7<<16) through
	// which the phase is published and observed atomically.
	CQEOffPhaseWord = 12
)

// CQE is a decoded completion entry.
type CQE struct {
	CmdID  uint16
	SQHead uint16 // SQ slot that completed; its result is written back there
	SQNum  uint16 // qp number
	Phase  bool
}

// DecodeCQE decodes a 16-byte CQE (b must hold at least CQESize bytes).
func DecodeCQE(b []byte) (CQE, error) {
	if len(b) < CQESize {
		return CQE{}, fmt.Errorf("qm: CQE of %d bytes: %w", len(b), ErrBadSQE)
	}
	return CQE{
		CmdID:  binary.LittleEndian.Uint16(b[CQEOffCmdID:]),
		SQHead: binary.LittleEndian.Uint16(b[CQEOffSQHead:]),
		SQNum:  binary.LittleEndian.Uint16(b[CQEOffSQNum:]),
		Phase:  binary.LittleEndian.Uint16(b[CQEOffW7:])&1 == 1,
	}, nil
}

// EncodeCQE writes c into b (all 16 bytes, reserved fields zero).
func EncodeCQE(b []byte, c CQE) {
	clear(b[:CQESize])
	binary.LittleEndian.PutUint16(b[CQEOffCmdID:], c.CmdID)
	binary.LittleEndian.PutUint16(b[CQEOffSQHead:], c.SQHead)
	binary.LittleEndian.PutUint16(b[CQEOffSQNum:], c.SQNum)
	if c.Phase {
		binary.LittleEndian.PutUint16(b[CQEOffW7:], 1)
	}
}
