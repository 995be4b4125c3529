package blockstore

import (
	"encoding/binary"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/codec"
)

// The bbolt index (docs/format.md "Index"). Three buckets:
//
//	meta:   "version" -> u32 format version; "stats" -> statCounters
//	files:  file ID (16) -> fileVal (size, next generation)
//	blocks: file ID (16) ++ block index (u64 big endian) -> entry
//
// All values have fixed sizes and are validated when read (the index is on
// disk, hence untrusted like everything else).
var (
	bucketMeta   = []byte("meta")
	bucketFiles  = []byte("files")
	bucketBlocks = []byte("blocks")
	keyVersion   = []byte("version")
	keyStats     = []byte("stats")
)

// entry is the index's view of one stored block: where its record is and what
// the record header must say.
type entry struct {
	Loc       loc
	Algo      codec.ID
	Level     int8
	RawLen    uint32
	StoredLen uint32
	RawCRC    uint32
	StoredCRC uint32
	Gen       uint64
	// bad is set (in memory only) for an index value that failed validation;
	// reading the block gives ErrCorrupt.
	bad error
}

const entrySize = 28

func (e *entry) marshal() []byte {
	b := make([]byte, entrySize)
	b[0] = byte(e.Loc)
	b[1] = byte(e.Algo)
	b[2] = byte(e.Level)
	b[3] = 0
	binary.LittleEndian.PutUint32(b[4:], e.RawLen)
	binary.LittleEndian.PutUint32(b[8:], e.StoredLen)
	binary.LittleEndian.PutUint32(b[12:], e.RawCRC)
	binary.LittleEndian.PutUint32(b[16:], e.StoredCRC)
	binary.LittleEndian.PutUint64(b[20:], e.Gen)
	return b
}

// parseEntry decodes and validates an index entry for block of a store with
// block size bs. Errors wrap ErrCorrupt.
func parseEntry(b []byte, block int64, bs int) (entry, error) {
	var e entry
	if len(b) != entrySize {
		return e, fmt.Errorf("%w: index entry: %d bytes, want %d", ErrCorrupt, len(b), entrySize)
	}
	e.Loc = loc(b[0])
	e.Algo = codec.ID(b[1])
	e.Level = int8(b[2])
	e.RawLen = binary.LittleEndian.Uint32(b[4:])
	e.StoredLen = binary.LittleEndian.Uint32(b[8:])
	e.RawCRC = binary.LittleEndian.Uint32(b[12:])
	e.StoredCRC = binary.LittleEndian.Uint32(b[16:])
	e.Gen = binary.LittleEndian.Uint64(b[20:])
	if _, ok := locOffset(bs, block, e.Loc); !ok {
		return e, fmt.Errorf("%w: index entry: location %d for block %d", ErrCorrupt, b[0], block)
	}
	if !e.Algo.Valid() {
		return e, fmt.Errorf("%w: index entry: unknown algorithm %d", ErrCorrupt, b[1])
	}
	if err := checkLens(e.Algo, e.RawLen, e.StoredLen, bs); err != nil {
		return e, fmt.Errorf("index entry: %w", err)
	}
	if RecordHeaderSize+int(e.StoredLen) > locCapacity(bs, e.Loc) {
		return e, fmt.Errorf("%w: index entry: record of %d bytes does not fit %s", ErrCorrupt, e.StoredLen, e.Loc)
	}
	return e, nil
}

// recordLen is the size of the entry's record in the backing file.
func (e *entry) recordLen() int64 { return RecordHeaderSize + int64(e.StoredLen) }

// fileVal is a files-bucket value.
type fileVal struct {
	Size    int64
	NextGen uint64
}

const fileValSize = 24

func (f *fileVal) marshal() []byte {
	b := make([]byte, fileValSize)
	binary.LittleEndian.PutUint64(b[0:], uint64(f.Size))
	binary.LittleEndian.PutUint64(b[8:], f.NextGen)
	return b
}

func parseFileVal(b []byte) (fileVal, error) {
	var f fileVal
	if len(b) != fileValSize {
		return f, fmt.Errorf("%w: index file entry: %d bytes, want %d", ErrCorrupt, len(b), fileValSize)
	}
	sz := binary.LittleEndian.Uint64(b[0:])
	if sz > uint64(MaxFileSize) {
		return f, fmt.Errorf("%w: index file entry: size %d", ErrCorrupt, sz)
	}
	f.Size = int64(sz)
	f.NextGen = binary.LittleEndian.Uint64(b[8:])
	return f, nil
}

func blockKey(id FileID, block int64) []byte {
	k := make([]byte, 24)
	copy(k, id[:])
	binary.BigEndian.PutUint64(k[16:], uint64(block))
	return k
}

// parseBlockKey splits a blocks-bucket key.
func parseBlockKey(k []byte) (FileID, int64, bool) {
	var id FileID
	if len(k) != 24 {
		return id, 0, false
	}
	copy(id[:], k)
	b := binary.BigEndian.Uint64(k[16:])
	if b >= uint64(MaxFileSize/MinBlockSize) {
		return id, 0, false
	}
	return id, int64(b), true
}

// statCounters are the aggregate stats kept in the index (meta/"stats") and
// updated by every commit, so Stats is O(1).
type statCounters struct {
	Logical      int64 // sum of logical file sizes
	Stored       int64 // sum of record sizes (header + payload) of committed records
	TotalBlocks  int64 // sum over files of blocks spanned by the logical size
	StoredBlocks int64 // committed records
	Raw          int64 // committed records stored uncompressed
	Files        int64 // files entries
	Algo         [8]int64
}

const statsSize = 14 * 8

func (c *statCounters) marshal() []byte {
	b := make([]byte, statsSize)
	v := []int64{c.Logical, c.Stored, c.TotalBlocks, c.StoredBlocks, c.Raw, c.Files}
	v = append(v, c.Algo[:]...)
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(x))
	}
	return b
}

func parseStats(b []byte) (statCounters, error) {
	var c statCounters
	if len(b) != statsSize {
		return c, fmt.Errorf("%w: index stats: %d bytes, want %d", ErrCorrupt, len(b), statsSize)
	}
	get := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[i*8:])) }
	c.Logical, c.Stored, c.TotalBlocks, c.StoredBlocks, c.Raw, c.Files = get(0), get(1), get(2), get(3), get(4), get(5)
	for i := range c.Algo {
		c.Algo[i] = get(6 + i)
	}
	return c, nil
}

// addEntry adds (sign=1) or removes (sign=-1) one record's contribution.
func (c *statCounters) addEntry(e *entry, sign int64) {
	if e.Loc == locNone || e.bad != nil {
		return
	}
	c.StoredBlocks += sign
	c.Stored += sign * e.recordLen()
	if int(e.Algo) < len(c.Algo) {
		c.Algo[e.Algo] += sign
	}
	if e.Algo == codec.None {
		c.Raw += sign
	}
}

// addSize accounts a logical size change from old to new.
func (c *statCounters) addSize(old, new int64, bs int) {
	c.Logical += new - old
	c.TotalBlocks += numBlocks(new, bs) - numBlocks(old, bs)
}

func (c *statCounters) add(d *statCounters) {
	c.Logical += d.Logical
	c.Stored += d.Stored
	c.TotalBlocks += d.TotalBlocks
	c.StoredBlocks += d.StoredBlocks
	c.Raw += d.Raw
	c.Files += d.Files
	for i := range c.Algo {
		c.Algo[i] += d.Algo[i]
	}
}

// initIndex creates the buckets of a new index (fresh) and checks the
// version of an existing one. It also sets the open mark (sweep.go) in the
// same transaction and reports whether the previous run left it (unclean).
func initIndex(db *bolt.DB) (st statCounters, fresh, unclean bool, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		fresh = tx.Bucket(bucketMeta) == nil
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		unclean = meta.Get(keyOpen) != nil
		if err := meta.Put(keyOpen, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketFiles); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketBlocks); err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("%w: index version value of %d bytes", ErrCorrupt, len(v))
			}
			if ver := binary.LittleEndian.Uint32(v); ver != FormatVersion {
				return fmt.Errorf("%w: index format version %d (this build reads %d)", ErrBadFormat, ver, FormatVersion)
			}
		} else {
			v := make([]byte, 4)
			binary.LittleEndian.PutUint32(v, FormatVersion)
			if err := meta.Put(keyVersion, v); err != nil {
				return err
			}
		}
		if v := meta.Get(keyStats); v != nil {
			st, err = parseStats(v)
			return err
		}
		return meta.Put(keyStats, st.marshal())
	})
	return st, fresh, unclean, err
}

// readIndexMeta checks an existing index without writing (read-only open):
// its buckets must exist and its version match.
func readIndexMeta(db *bolt.DB) (st statCounters, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketFiles) == nil || tx.Bucket(bucketBlocks) == nil {
			return fmt.Errorf("%w: index has no buckets (never initialized)", ErrCorrupt)
		}
		v := meta.Get(keyVersion)
		if len(v) != 4 {
			return fmt.Errorf("%w: index version value of %d bytes", ErrCorrupt, len(v))
		}
		if ver := binary.LittleEndian.Uint32(v); ver != FormatVersion {
			return fmt.Errorf("%w: index format version %d (this build reads %d)", ErrBadFormat, ver, FormatVersion)
		}
		if v := meta.Get(keyStats); v != nil {
			st, err = parseStats(v)
			return err
		}
		return nil
	})
	return st, err
}

// putAdopted makes the records of an unindexed file durable (fdatasync of
// f) and puts the file and its blocks in the index in one transaction,
// stats included: the one place adoption (at open, and by fsck --repair)
// writes the index. It adopts nothing, adopted false, when the file has an
// index entry by then (another opener adopted it). The caller holds
// commitMu.
func (s *Store) putAdopted(id FileID, val fileVal, best map[int64]entry, f *os.File) (adopted bool, err error) {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return false, fmt.Errorf("%s: fdatasync: %w", f.Name(), ioErr(err))
	}
	var d statCounters
	err = s.update(func(tx *bolt.Tx) error {
		d, adopted = statCounters{}, false
		files, blocks := tx.Bucket(bucketFiles), tx.Bucket(bucketBlocks)
		if files.Get(id[:]) != nil {
			return nil
		}
		adopted = true
		if err := files.Put(id[:], val.marshal()); err != nil {
			return err
		}
		d.Files++
		d.addSize(0, val.Size, s.bs)
		for b, en := range best {
			if err := blocks.Put(blockKey(id, b), en.marshal()); err != nil {
				return err
			}
			d.addEntry(&en, 1)
		}
		st := s.committedStats()
		st.add(&d)
		return tx.Bucket(bucketMeta).Put(keyStats, st.marshal())
	})
	if err != nil {
		return false, err
	}
	if adopted {
		s.addStats(&d)
	}
	return adopted, nil
}
