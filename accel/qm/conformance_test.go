package qm

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// DUS offsets of §2.2: zip SQ = 1024*128 = 128 KiB at 0, CQ = 16 KiB after
// it, 37 pages = 151552 bytes with 4 KiB pages, 4 pages with 64 KiB pages;
// ds_rx/ds_tx are the last two u32s.
func TestDUSLayoutConformance(t *testing.T) {
	l, err := DUSLayout(128, 1024, 1024, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if l.SQOff != 0 || l.CQOff != 131072 || l.Size != 151552 || l.Size/4096 != 37 || l.DsRxOff != 151544 || l.DsTxOff != 151548 {
		t.Errorf("4K layout %+v", l)
	}
	l64, err := DUSLayout(128, 1024, 1024, 65536)
	if err != nil {
		t.Fatal(err)
	}
	if l64.Size != 262144 || l64.DsTxOff != 262140 {
		t.Errorf("64K layout %+v", l64)
	}
	if _, err := DUSLayout(128, 1, 1024, 4096); err == nil {
		t.Error("depth 1 accepted")
	}
	if _, err := DUSLayout(128, 1024, 1<<16, 4096); err == nil {
		t.Error("CQ depth 65536 accepted (16-bit ring indices)")
	}
	if _, err := DUSLayout(128, 1024, 1024, 3000); err == nil {
		t.Error("page 3000 accepted")
	}
}

// Doorbell encodings of §2.5 (K-QM qm_db_v1 / qm_db_v2).
func TestDoorbellConformance(t *testing.T) {
	if DoorbellOffset(1) != 0x340 || DoorbellOffset(2) != 0x1000 || DoorbellOffset(3) != 0x1000 || DoorbellOffset(0) != 0x1000 {
		t.Error("doorbell offsets")
	}
	cases := []struct {
		ver  int
		d    Doorbell
		want uint64
	}{
		// v1: qn 0-15, cmd 16-19, index 32-47, priority 48-63
		{1, Doorbell{QN: 0x0abc, Cmd: DBSQ, Index: 0x3ff}, 0x0000_03ff_0000_0abc},
		{1, Doorbell{QN: 7, Cmd: DBCQ, Index: 5, Priority: 1}, 0x0001_0005_0001_0007},
		// v2/v3: qn 0-11, cmd 12-15, rand 16-31, index 32-47, priority 48-63
		{2, Doorbell{QN: 0x3ff, Cmd: DBSQ, Index: 0x200}, 0x0000_0200_0000_03ff},
		{3, Doorbell{QN: 7, Cmd: DBCQ, Index: 5, Priority: 1}, 0x0001_0005_0000_1007},
		{2, Doorbell{QN: 1, Cmd: DBAEQ, Rand: 0xbeef, Index: 2}, 0x0000_0002_beef_3001},
	}
	for _, c := range cases {
		if got := EncodeDoorbell(c.ver, c.d); got != c.want {
			t.Errorf("v%d %+v = %#016x, want %#016x", c.ver, c.d, got, c.want)
		}
		if got := DecodeDoorbell(c.ver, c.want); got != c.d {
			t.Errorf("decode v%d %#x = %+v, want %+v", c.ver, c.want, got, c.d)
		}
	}
}

// CQE offsets of §2.3.
func TestCQEConformance(t *testing.T) {
	b := make([]byte, CQESize)
	EncodeCQE(b, CQE{CmdID: 0x1111, SQHead: 0x2222, SQNum: 0x0333, Phase: true})
	le := binary.LittleEndian
	if le.Uint16(b[4:]) != 0x1111 || le.Uint16(b[8:]) != 0x2222 || le.Uint16(b[10:]) != 0x0333 || le.Uint16(b[14:]) != 1 ||
		le.Uint32(b[0:]) != 0 || le.Uint16(b[6:]) != 0 || le.Uint16(b[12:]) != 0 {
		t.Errorf("CQE bytes % x", b)
	}
	if le.Uint32(b[CQEOffPhaseWord:])>>16 != 1 {
		t.Error("phase word must carry w7 in its high half")
	}
	c, err := DecodeCQE(b)
	if err != nil || c != (CQE{CmdID: 0x1111, SQHead: 0x2222, SQNum: 0x0333, Phase: true}) {
		t.Errorf("decode %+v %v", c, err)
	}
}

// SQE dword positions of §3.1, for both layouts.
func TestSQEFieldOffsets(t *testing.T) {
	for _, typ := range []SQEType{SQETypeV1, SQETypeV3} {
		s := ZipSQE{
			Type: typ, Consumed: 0x01010101, Produced: 0x02020202, CompDataLen: 0x03030303,
			Status: StatusDecompEnd | StatusLastBlock, InputLen: 0x04040404,
			SGLOffIn: 0x123456, Finish: true, Stateful: false, NewStream: true, SGLOffOut: 0x654321,
			Alg: AlgGzip, BufType: 1, WinSize: 4, Tag: 0xdeadbeef, DestAvailOut: 0x05050505,
			CtxDW0: 0x06060606, Src: 0x1122334455667788, Dst: 0x8877665544332211,
			StreamCtx: 0x0a0b0c0d0e0f1011, Literals: 0x1213141516171819,
			CtxDW1: 0x07070707, CtxDW2: 0x08080808, ISize: 0x09090909, Checksum: 0x0a0a0a0a,
		}
		b := make([]byte, SQESize)
		s.Encode(b)
		dw := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }
		want := map[int]uint32{
			0: 0x01010101, 1: 0x02020202, 2: 0x03030303, 3: 0x113, 4: 0x04040404,
			7:  0x123456 | 1<<25 | 1<<27 | uint32(typ)<<28,
			8:  0x654321,
			9:  0x03 | 1<<8 | 4<<12,
			14: 0x05050505, 15: 0x06060606,
			18: 0x55667788, 19: 0x11223344, 20: 0x44332211, 21: 0x88776655,
			22: 0x0e0f1011, 23: 0x0a0b0c0d, 24: 0x16171819, 25: 0x12131415,
			28: 0x07070707, 29: 0x08080808, 30: 0x09090909, 31: 0x0a0a0a0a,
		}
		if typ == SQETypeV1 {
			want[13], want[26] = 0xdeadbeef, 0
		} else {
			want[13], want[26] = 0, 0xdeadbeef
		}
		for i := 0; i < 32; i++ {
			if dw(i) != want[i] {
				t.Errorf("type %d dw%d = %#x, want %#x", typ, i, dw(i), want[i])
			}
		}
		got, err := DecodeZipSQE(b)
		if err != nil || got != s {
			t.Errorf("type %d decode: %v\n got %+v\nwant %+v", typ, err, got, s)
		}
		if !got.LastBlock() || got.Code() != StatusDecompEnd {
			t.Error("status helpers")
		}
	}
	bad := make([]byte, SQESize)
	binary.LittleEndian.PutUint32(bad[4*DW7:], 5<<28)
	if _, err := DecodeZipSQE(bad); err == nil {
		t.Error("type 5 accepted")
	}
	if _, err := DecodeZipSQE(bad[:100]); err == nil {
		t.Error("short SQE accepted")
	}
}

func TestSQETypeChoice(t *testing.T) {
	if SQETypeFor(2, AlgZlib) != SQETypeV1 || SQETypeFor(2, AlgGzip) != SQETypeV1 || SQETypeFor(2, AlgDeflate) != SQETypeV3 ||
		SQETypeFor(3, AlgZlib) != SQETypeV3 || SQETypeFor(1, AlgGzip) != SQETypeV1 {
		t.Error("layout choice")
	}
	if AlgDeflate != 1 || AlgZlib != 2 || AlgGzip != 3 || AlgLZ77Zstd != 0x43 {
		t.Error("alg type codes (§3.1)")
	}
	if StatusNegComp != 0x0d || StatusDstLenOut != 0x0e || StatusCRC != 0x10 || StatusDecompEnd != 0x13 || StatusLastBlock != 0x100 {
		t.Error("status codes (§3.2)")
	}
}

func TestHeaderLen(t *testing.T) {
	cases := []struct {
		alg Alg
		in  []byte
		n   int
		ok  bool
	}{
		{AlgZlib, []byte{0x78, 0x9c, 1}, 2, true},
		{AlgZlib, []byte{0x78, 0x01}, 2, true},
		{AlgZlib, []byte{0x78, 0x9d}, 0, false}, // bad FCHECK
		{AlgZlib, []byte{0x78, 0xbb}, 0, false}, // FDICT
		{AlgGzip, GzipHeader[:], 10, true},
		{AlgGzip, append([]byte{0x1f, 0x8b, 8, 0x04 | 0x08, 0, 0, 0, 0, 0, 3, 2, 0, 'x', 'y', 'n', 0}, 1), 16, true}, // FEXTRA+FNAME
		{AlgGzip, []byte{0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 3, 'n'}, 0, false},                                      // unterminated name
		{AlgGzip, []byte{0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 3, 0xff, 0xff}, 0, false},                               // huge FEXTRA
		{AlgGzip, []byte{0x1f, 0x8c, 8, 0, 0, 0, 0, 0, 0, 3}, 0, false},
		{AlgDeflate, nil, 0, true},
	}
	// FHCRC: the low 16 bits of the header's CRC-32, checked.
	h := []byte{0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 3}
	crc := crc32.ChecksumIEEE(h)
	good := append(bytes.Clone(h), byte(crc), byte(crc>>8), 0xaa)
	bad := append(bytes.Clone(h), byte(crc)^1, byte(crc>>8), 0xaa)
	cases = append(cases, struct {
		alg Alg
		in  []byte
		n   int
		ok  bool
	}{AlgGzip, good, 12, true}, struct {
		alg Alg
		in  []byte
		n   int
		ok  bool
	}{AlgGzip, bad, 0, false})
	for i, c := range cases {
		n, err := headerLen(c.alg, c.in)
		if (err == nil) != c.ok || (c.ok && n != c.n) {
			t.Errorf("case %d: %d %v", i, n, err)
		}
	}
}
