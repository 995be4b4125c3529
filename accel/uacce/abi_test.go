package uacce

import (
	"encoding/binary"
	"testing"
)

// The numbers below are the spec's (§1.5 table, K-UAPI / K-QMUAPI).
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name string
		got  IoctlCmd
		want uint32
	}{
		{"UACCE_CMD_START_Q", CmdStartQ, 0x5700},
		{"UACCE_CMD_PUT_Q", CmdPutQ, 0x5701},
		{"UACCE_CMD_QM_SET_QP_CTX", CmdSetQPCtx, 0xC004480A},
		{"UACCE_CMD_QM_SET_QP_INFO", CmdSetQPInfo, 0xC010480B},
	} {
		if uint32(c.got) != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, uint32(c.got), c.want)
		}
	}
	if CmdSetQPInfo.Dir() != 3 || CmdSetQPInfo.Size() != 16 || CmdSetQPInfo.Type() != 'H' || CmdSetQPInfo.Nr() != 11 {
		t.Errorf("SET_QP_INFO fields: dir %d size %d type %c nr %d", CmdSetQPInfo.Dir(), CmdSetQPInfo.Size(), CmdSetQPInfo.Type(), CmdSetQPInfo.Nr())
	}
	if CmdStartQ.Dir() != 0 || CmdStartQ.Size() != 0 || CmdStartQ.Type() != 'W' {
		t.Errorf("START_Q fields wrong")
	}
}

func TestQPStructLayouts(t *testing.T) {
	if SizeofQPCtx != 4 || SizeofQPInfo != 16 {
		t.Fatalf("sizes %d %d, want 4 16", SizeofQPCtx, SizeofQPInfo)
	}
	b := QPCtx{ID: 0x1234, QCType: 1}.Marshal()
	if binary.LittleEndian.Uint16(b[0:]) != 0x1234 || binary.LittleEndian.Uint16(b[2:]) != 1 {
		t.Errorf("hisi_qp_ctx bytes % x", b)
	}
	if UnmarshalQPCtx(b) != (QPCtx{ID: 0x1234, QCType: 1}) {
		t.Error("QPCtx round trip")
	}
	i := QPInfo{SQESize: 128, SQDepth: 1024, CQDepth: 512}
	ib := i.Marshal()
	if binary.LittleEndian.Uint32(ib[0:]) != 128 || binary.LittleEndian.Uint16(ib[4:]) != 1024 ||
		binary.LittleEndian.Uint16(ib[6:]) != 512 || binary.LittleEndian.Uint64(ib[8:]) != 0 {
		t.Errorf("hisi_qp_info bytes % x", ib)
	}
	if UnmarshalQPInfo(ib) != i {
		t.Error("QPInfo round trip")
	}
	if RegionMMIO != 0 || RegionDUS != 1 {
		t.Error("region types must be the mmap page offsets 0 and 1 (§1.4)")
	}
	if Compress.String() != "compress" || Decompress.String() != "decompress" || Direction(7).String() != "qc_type(7)" {
		t.Error("direction names")
	}
}

func TestFullBarrier(t *testing.T) {
	FullBarrier() // must not fault on this architecture
}
