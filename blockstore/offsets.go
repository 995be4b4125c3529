package blockstore

// Pure offset arithmetic of the backing-file layout (docs/format.md). Nothing
// in this file does I/O; offsets_test.go covers it with tables.
//
// Backing file layout, for block size B and slot size S = roundUp(64+B, 4096):
//
//	[0, 64)                  file header
//	[64, 4096)               inline slot: block 0's record when it fits (small files)
//	4096 + (2*i+j)*S         slot j (0 or 1) of block i, S bytes long

const (
	// FileHeaderSize is the size of the backing file header.
	FileHeaderSize = 64
	// RecordHeaderSize is the size of a record header.
	RecordHeaderSize = 64
	// pageSize is the alignment of slots and of the data area.
	pageSize = 4096
	// dataStart is where block slots begin in a backing file.
	dataStart = pageSize
	// inlineOffset is where the inline slot (block 0 of a small file) starts.
	inlineOffset = FileHeaderSize
	// inlineMax is the largest record (header + payload) the inline slot holds.
	inlineMax = dataStart - inlineOffset

	// MinBlockSize and MaxBlockSize bound the block size of a store.
	MinBlockSize = 4 << 10
	MaxBlockSize = 1 << 20
	// DefaultBlockSize is the block size of a new store.
	DefaultBlockSize = 128 << 10

	// MaxFileSize is the largest logical file size the store accepts
	// (ErrTooLarge beyond). Backing offsets stay far below 2^63 for every
	// block size.
	MaxFileSize = int64(1) << 48
)

// loc says where a block's record lives in its backing file.
type loc uint8

const (
	locNone   loc = 0 // no record: the block is a hole and reads as zeros
	locInline loc = 1 // the inline slot inside the first 4 KiB (block 0 only)
	locSlot0  loc = 2 // the first of the block's two slots
	locSlot1  loc = 3 // the second of the block's two slots
)

func (l loc) String() string {
	switch l {
	case locNone:
		return "none"
	case locInline:
		return "inline"
	case locSlot0:
		return "slot0"
	case locSlot1:
		return "slot1"
	}
	return "loc(?)"
}

// validBlockSize reports whether bs is a power of two in [MinBlockSize, MaxBlockSize].
func validBlockSize(bs int) bool {
	return bs >= MinBlockSize && bs <= MaxBlockSize && bs&(bs-1) == 0
}

// roundUp rounds n up to a multiple of the power of two a.
func roundUp(n, a int64) int64 { return (n + a - 1) &^ (a - 1) }

// slotSize is the size of one slot: a record header plus a raw block, page aligned.
func slotSize(bs int) int64 { return roundUp(int64(RecordHeaderSize+bs), pageSize) }

// numBlocks is the number of blocks a file of the given logical size spans.
func numBlocks(size int64, bs int) int64 {
	if size <= 0 {
		return 0
	}
	return (size + int64(bs) - 1) / int64(bs)
}

// blockOf returns the block holding logical offset off and off's position in it.
func blockOf(off int64, bs int) (block int64, inBlock int) {
	return off / int64(bs), int(off % int64(bs))
}

// blockSpan is the part of a logical range [off, off+n) that falls in one block.
type blockSpan struct {
	Block   int64 // block index
	InBlock int   // offset of the span inside the block
	Len     int   // length of the span
	Pos     int   // offset of the span inside the caller's buffer
}

// explodeRange splits the logical range [off, off+n) into per-block spans, in
// order. n <= 0 gives none.
func explodeRange(off int64, n int, bs int) []blockSpan {
	if n <= 0 || off < 0 {
		return nil
	}
	var spans []blockSpan
	pos := 0
	for pos < n {
		b, in := blockOf(off+int64(pos), bs)
		l := bs - in
		if l > n-pos {
			l = n - pos
		}
		spans = append(spans, blockSpan{Block: b, InBlock: in, Len: l, Pos: pos})
		pos += l
	}
	return spans
}

// locOffset returns the backing-file offset of a block's record at l, and
// false for an impossible combination (no location, inline for a block other
// than 0, or a block index beyond MaxFileSize).
func locOffset(bs int, block int64, l loc) (int64, bool) {
	if block < 0 || block >= MaxFileSize/int64(bs) {
		return 0, false
	}
	switch l {
	case locInline:
		if block != 0 {
			return 0, false
		}
		return inlineOffset, true
	case locSlot0, locSlot1:
		j := int64(l - locSlot0)
		return dataStart + (2*block+j)*slotSize(bs), true
	}
	return 0, false
}

// locCapacity is the largest record (header + payload) location l can hold.
func locCapacity(bs int, l loc) int {
	if l == locInline {
		return inlineMax
	}
	return int(slotSize(bs))
}

// chooseLoc picks where to write a new record of recLen bytes for block:
// never a location in busy (the committed record's, and the one of a record
// whose commit is in flight: copy-on-write); the inline slot for block 0 when
// the record fits there, else the first free slot. ok is false when every
// location is busy (the block must wait for the commit in flight).
func chooseLoc(block int64, recLen int, busy ...loc) (l loc, ok bool) {
	isBusy := func(c loc) bool {
		for _, b := range busy {
			if b == c {
				return true
			}
		}
		return false
	}
	if block == 0 && recLen <= inlineMax && !isBusy(locInline) {
		return locInline, true
	}
	for _, c := range []loc{locSlot0, locSlot1} {
		if !isBusy(c) {
			return c, true
		}
	}
	return locNone, false
}

// locAt maps a backing-file offset back to the (block, loc) whose record
// starts there, for scanning; ok is false for an offset that is no record start.
func locAt(bs int, off int64) (block int64, l loc, ok bool) {
	if off == inlineOffset {
		return 0, locInline, true
	}
	if off < dataStart {
		return 0, locNone, false
	}
	s := slotSize(bs)
	rel := off - dataStart
	if rel%s != 0 {
		return 0, locNone, false
	}
	n := rel / s
	return n / 2, locSlot0 + loc(n%2), true
}

// writeSteps splits a write of n bytes at off into the lengths of the steps
// WriteAt applies one at a time (each under the content lock): at most chunk
// bytes each (chunk is a multiple of bs), and every boundary between steps
// falls on a block boundary, so no block is ever split between two steps (a
// commit between steps never sees half of a block's update).
func writeSteps(off int64, n, bs, chunk int) []int {
	var steps []int
	for n > 0 {
		end := (off + int64(chunk)) / int64(bs) * int64(bs)
		l := int(min(int64(n), end-off))
		steps = append(steps, l)
		off += int64(l)
		n -= l
	}
	return steps
}
