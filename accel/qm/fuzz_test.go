package qm

import (
	"bytes"
	"testing"
)

// FuzzDecodeSQE: decoding never panics, and whatever decodes re-encodes to
// the same bytes apart from reserved fields and the unused tag word.
func FuzzDecodeSQE(f *testing.F) {
	for _, typ := range []SQEType{SQETypeV1, SQETypeV3} {
		b := make([]byte, SQESize)
		s := ZipSQE{Type: typ, Alg: AlgZlib, Tag: 0x80010002, InputLen: 4096, DestAvailOut: 8192, Finish: true, NewStream: true, Src: 1 << 40, Dst: 2 << 40}
		s.Encode(b)
		f.Add(b)
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeZipSQE(b)
		if err != nil {
			return
		}
		out := make([]byte, SQESize)
		s.Encode(out)
		s2, err := DecodeZipSQE(out)
		if err != nil || s2 != s {
			t.Fatalf("re-decode differs: %v\n%+v\n%+v", err, s, s2)
		}
		out2 := make([]byte, SQESize)
		s2.Encode(out2)
		if !bytes.Equal(out, out2) {
			t.Fatal("encode not stable")
		}
	})
}

func FuzzDecodeCQE(f *testing.F) {
	b := make([]byte, CQESize)
	EncodeCQE(b, CQE{SQHead: 3, SQNum: 9, Phase: true})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCQE(b)
		if err != nil {
			if len(b) >= CQESize {
				t.Fatal("full-size CQE rejected")
			}
			return
		}
		out := make([]byte, CQESize)
		EncodeCQE(out, c)
		if c2, _ := DecodeCQE(out); c2 != c {
			t.Fatalf("%+v != %+v", c2, c)
		}
	})
}

func FuzzHeaderLen(f *testing.F) {
	f.Add(byte(AlgGzip), GzipHeader[:])
	f.Add(byte(AlgZlib), ZlibHeader[:])
	f.Fuzz(func(t *testing.T, alg byte, b []byte) {
		n, err := headerLen(Alg(alg), b)
		if err == nil && (n < 0 || n > len(b)) {
			t.Fatalf("header length %d of %d bytes", n, len(b))
		}
	})
}
