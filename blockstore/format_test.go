package blockstore

import "testing"

func TestNoSizeHintAtInit(t *testing.T) {
	h := fileHeader{Version: FormatVersion, BlockSize: 4096, SizeHint: -1}
	got, err := parseFileHeader(h.marshal())
	if err != nil || got.SizeHint != -1 {
		t.Fatalf("a fresh header has a size hint: %+v %v", got, err)
	}
	h.SizeHint = 0
	if got, _ := parseFileHeader(h.marshal()); got.SizeHint != 0 {
		t.Fatalf("hint 0 lost: %+v", got)
	}
}
