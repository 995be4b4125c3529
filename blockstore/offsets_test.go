package blockstore

import (
	"reflect"
	"testing"
)

func TestSlotSize(t *testing.T) {
	for _, tc := range []struct {
		bs   int
		want int64
	}{
		{4096, 8192},
		{8192, 12288},
		{128 << 10, 132 << 10},
		{1 << 20, (1 << 20) + 4096},
	} {
		if got := slotSize(tc.bs); got != tc.want {
			t.Errorf("slotSize(%d) = %d, want %d", tc.bs, got, tc.want)
		}
	}
}

func TestValidBlockSize(t *testing.T) {
	for bs, want := range map[int]bool{0: false, 2048: false, 4096: true, 6144: false, 65536: true, 1 << 20: true, 2 << 20: false, -4096: false} {
		if got := validBlockSize(bs); got != want {
			t.Errorf("validBlockSize(%d) = %v", bs, got)
		}
	}
}

func TestNumBlocks(t *testing.T) {
	for _, tc := range []struct {
		size int64
		bs   int
		want int64
	}{
		{0, 4096, 0}, {-1, 4096, 0}, {1, 4096, 1}, {4096, 4096, 1}, {4097, 4096, 2},
		{128 << 10, 128 << 10, 1}, {MaxFileSize, 4096, MaxFileSize / 4096},
	} {
		if got := numBlocks(tc.size, tc.bs); got != tc.want {
			t.Errorf("numBlocks(%d, %d) = %d, want %d", tc.size, tc.bs, got, tc.want)
		}
	}
}

func TestExplodeRange(t *testing.T) {
	for _, tc := range []struct {
		off  int64
		n    int
		bs   int
		want []blockSpan
	}{
		{0, 0, 4096, nil},
		{-1, 10, 4096, nil},
		{0, 10, 4096, []blockSpan{{0, 0, 10, 0}}},
		{4090, 10, 4096, []blockSpan{{0, 4090, 6, 0}, {1, 0, 4, 6}}},
		{4096, 4096, 4096, []blockSpan{{1, 0, 4096, 0}}},
		{100, 3 * 4096, 4096, []blockSpan{{0, 100, 3996, 0}, {1, 0, 4096, 3996}, {2, 0, 4096, 8092}, {3, 0, 100, 12188}}},
		{1 << 40, 1, 1 << 20, []blockSpan{{1 << 20, 0, 1, 0}}},
	} {
		if got := explodeRange(tc.off, tc.n, tc.bs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("explodeRange(%d, %d, %d) = %v, want %v", tc.off, tc.n, tc.bs, got, tc.want)
		}
	}
}

func TestLocOffset(t *testing.T) {
	for _, tc := range []struct {
		bs    int
		block int64
		l     loc
		want  int64
		ok    bool
	}{
		{4096, 0, locInline, 64, true},
		{4096, 1, locInline, 0, false},
		{4096, 0, locNone, 0, false},
		{4096, 0, locSlot0, 4096, true},
		{4096, 0, locSlot1, 4096 + 8192, true},
		{4096, 1, locSlot0, 4096 + 2*8192, true},
		{4096, 1, locSlot1, 4096 + 3*8192, true},
		{128 << 10, 3, locSlot1, 4096 + 7*(132<<10), true},
		{4096, -1, locSlot0, 0, false},
		{4096, MaxFileSize / 4096, locSlot0, 0, false},
		{4096, MaxFileSize/4096 - 1, locSlot1, 4096 + (2*(MaxFileSize/4096-1)+1)*8192, true},
		{4096, 0, loc(7), 0, false},
	} {
		got, ok := locOffset(tc.bs, tc.block, tc.l)
		if got != tc.want || ok != tc.ok {
			t.Errorf("locOffset(%d, %d, %v) = %d, %v; want %d, %v", tc.bs, tc.block, tc.l, got, ok, tc.want, tc.ok)
		}
		if ok {
			b, l, ok2 := locAt(tc.bs, got)
			if !ok2 || b != tc.block || l != tc.l {
				t.Errorf("locAt(%d, %d) = %d, %v, %v; want %d, %v", tc.bs, got, b, l, ok2, tc.block, tc.l)
			}
		}
	}
	if _, _, ok := locAt(4096, 4097); ok {
		t.Error("locAt accepted an unaligned offset")
	}
	if _, _, ok := locAt(4096, 100); ok {
		t.Error("locAt accepted an offset inside the inline slot")
	}
}

func TestChooseLoc(t *testing.T) {
	for _, tc := range []struct {
		block  int64
		recLen int
		busy   []loc
		want   loc
		ok     bool
	}{
		{0, 100, nil, locInline, true},
		{0, 100, []loc{locNone}, locInline, true},
		{0, 100, []loc{locInline}, locSlot0, true},
		{0, 100, []loc{locSlot0}, locInline, true},
		{0, inlineMax, nil, locInline, true},
		{0, inlineMax + 1, nil, locSlot0, true},
		{0, inlineMax + 1, []loc{locSlot0}, locSlot1, true},
		{0, inlineMax + 1, []loc{locInline}, locSlot0, true},
		{0, 100, []loc{locInline, locSlot0}, locSlot1, true},
		{0, inlineMax + 1, []loc{locSlot1, locSlot0}, locNone, false},
		{1, 100, nil, locSlot0, true},
		{1, 100, []loc{locSlot0}, locSlot1, true},
		{1, 100, []loc{locSlot1}, locSlot0, true},
		{1, 100, []loc{locSlot1, locSlot0}, locNone, false},
		{1, 100, []loc{locSlot0, locNone}, locSlot1, true},
	} {
		got, ok := chooseLoc(tc.block, tc.recLen, tc.busy...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("chooseLoc(%d, %d, %v) = %v, %v; want %v, %v", tc.block, tc.recLen, tc.busy, got, ok, tc.want, tc.ok)
		}
		for _, b := range tc.busy {
			if ok && got == b {
				t.Errorf("chooseLoc(%d, %d, %v) chose a busy location", tc.block, tc.recLen, tc.busy)
			}
		}
	}
}

func TestUsedLen(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want int
	}{
		{nil, 0}, {make([]byte, 100), 0}, {[]byte{1}, 1}, {append([]byte{1}, make([]byte, 20)...), 1},
		{append(make([]byte, 20), 1), 21}, {append(append(make([]byte, 9), 5), make([]byte, 17)...), 10},
	} {
		if got := usedLen(tc.b); got != tc.want {
			t.Errorf("usedLen(%v) = %d, want %d", tc.b, got, tc.want)
		}
		if isZero(tc.b) != (tc.want == 0) {
			t.Errorf("isZero(%v) wrong", tc.b)
		}
	}
}

func TestWriteSteps(t *testing.T) {
	for _, tc := range []struct {
		off       int64
		n, bs, ch int
		want      []int
	}{
		{0, 0, 4096, 8192, nil},
		{0, 100, 4096, 8192, []int{100}},
		{0, 8192, 4096, 8192, []int{8192}},
		{0, 10000, 4096, 8192, []int{8192, 1808}},
		{100, 10000, 4096, 8192, []int{8092, 1908}},
		{4095, 2, 4096, 4096, []int{1, 1}},
		{5000, 30000, 4096, 8192, []int{7288, 8192, 8192, 6328}},
	} {
		got := writeSteps(tc.off, tc.n, tc.bs, tc.ch)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("writeSteps(%d, %d, %d, %d) = %v, want %v", tc.off, tc.n, tc.bs, tc.ch, got, tc.want)
		}
		off := tc.off
		for i, l := range got {
			if l <= 0 || l > tc.ch {
				t.Errorf("step %d of %d bytes", i, l)
			}
			off += int64(l)
			if i < len(got)-1 && off%int64(tc.bs) != 0 {
				t.Errorf("writeSteps(%d, %d): boundary %d not block aligned", tc.off, tc.n, off)
			}
		}
	}
}
