// Package blockstore stores the contents of accelfs files as compressed,
// checksummed blocks inside their backing files, with the block maps in a
// bbolt index. It knows nothing of FUSE: fs/ maps POSIX operations onto
// Store and File, and the (de)compression runs through the small Compressor
// interface declared here (accel/session implements it; NewCPUCompressor is
// the plain CPU one).
//
// Terms:
//
//   - Block: a fixed-size piece of a file's logical contents (the store's
//     block size, a power of two from 4 KiB to 1 MiB chosen when the store
//     is created). Block i covers logical bytes [i*B, (i+1)*B).
//   - Record: one stored version of one block in the backing file: a 64-byte
//     self-describing header (file ID, block index, generation, algorithm,
//     level, raw and stored length, crc32c of the raw data, of the payload
//     and of the header) followed by the payload (compressed, or raw when
//     compression saves less than 1/8). An all-zero block has no record (a
//     hole); trailing zeros of a block are not stored.
//   - Slot: a fixed, 4 KiB-aligned place for a record. Each block has two;
//     block 0 also has the inline slot right after the file header inside
//     the first 4 KiB (small files). A new record goes to a slot the
//     committed index does not reference (copy-on-write); after the index
//     commit the superseded slot is punched out (sparse backing files).
//   - Generation: a per-file counter stamped on every record; the index
//     entry and the record must agree, and fsck --rebuild keeps the highest
//     valid generation of each block.
//   - File ID: the random 128-bit identity in a backing file's header that
//     keys the file in the index (hardlinks share it, copies of /backing
//     keep it).
//   - Dirty cache: per open file, the blocks modified in memory but not yet
//     written as records (read-modify-write happens here once per block),
//     bounded store-wide by Options.DirtyLimit.
//   - Pending: records written to the backing file but not yet in the index.
//   - Commit group: one run of the commit pipeline over a set of files, in
//     named stages (commit.go): gather the files, write out their dirty
//     blocks, snapshot (pending -> committing, under the file locks), sync
//     (size hints and fdatasync of the touched backing files, without the
//     locks), record (one bbolt transaction for the whole group), apply
//     (committing -> committed and punch the superseded records, or give
//     them back to pending). A new record avoids both the committed and the
//     committing slot. After a failed fdatasync the file's next commit
//     rewrites its pending records (read back and verified) before
//     fdatasyncing again.
//   - Failure isolation: a file whose write-out, size-hint write, fdatasync
//     or resync fails is left out of its commit group and the other files
//     are committed (DESIGN §4 invariant 8); its changes stay pending for
//     the next commit. Only a failed index transaction fails the group.
//   - Write-back failure: a failure of a file's data that no caller waited
//     for (a background commit, dropped stuck blocks, a record lost after
//     a failed fdatasync). Recorded per file with a sequence number, like
//     the kernel's errseq: every handle (File, or an ErrCursor of a caller
//     that multiplexes one File, as fs does per FUSE handle) reports each
//     failure it has not seen once, at its next Flush, Sync or Close. A new
//     handle sees only later failures, except one nobody has reported yet.
//   - Stuck block: a dirty block whose write-out failed (ENOSPC, EIO, ...).
//     It stays dirty so that a retry can still store it: the file's next
//     write, Flush, Sync, Close and each commit try it again and fail with
//     the error while it cannot be written (so the file's writers get
//     ENOSPC/EIO within one call). It does not pin the dirty budget: a
//     writer (of any file) that would have to wait for budget first has
//     every stuck block written once more, and those that fail again are
//     dropped, the loss recorded as the file's write-back failure. So no
//     writer waits for budget held by blocks that cannot be written, other
//     files go on while space allows, and freed space resumes service.
//   - Storable size: the largest logical size whose blocks the backing
//     filesystem can hold (both slots of the last block below its maximum
//     file size, probed once per store with ftruncate on an O_TMPFILE,
//     capped by RLIMIT_FSIZE). A write past it fails at once with
//     ErrTooLarge (EFBIG). A truncate past it is accepted (it stores no
//     data).
//   - Write step: a large WriteAt is applied in block-aligned steps of at
//     most DirtyLimit/4 (8 MiB); a crash may keep a prefix of the write in
//     whole blocks, never part of one block's update.
//   - Store: a backing directory with .accelfs/format in it. Open creates
//     one only in an empty directory (Init creates one explicitly); any
//     other directory is ErrNotStore.
//   - Store lock: an exclusive flock on a descriptor of the backing root
//     (storedir.go), so renaming .accelfs does not release it.
//   - Meta directory: .accelfs, opened relative to the root without
//     following symlinks, owned by us and not group/other-writable; its
//     files are opened with O_NOFOLLOW (OpenMetaFile).
//   - Settings: the format file's algo and level (Settings, UpdateSettings),
//     overridden per open by Options.Algo/Level.
//   - Unclean shutdown: Open found the index's open mark (sweep.go); each
//     file is then swept of unreferenced records at its first open.
//   - Lost range: a byte range a repair or rebuild gave up (FsckItem.Lost).
//   - Unindexed file: a backing file with records and no index entry; Open
//     and fsck --repair adopt its records, never punch them.
//   - Interrupt: the end of the context given to a waiting File call
//     (ReadAtContext, WriteAtContext, FlushReportContext, SyncReportContext,
//     TruncateContext, PunchHoleContext, AllocateContext; fs passes the
//     FUSE request's context, which ends on FUSE_INTERRUPT). The call
//     returns an error wrapping ErrInterrupted and ctx.Err() (EINTR) and
//     leaves the file as before it: dirty blocks stay dirty, a truncate or
//     punch loads every block it must read before changing anything, an
//     interrupted Sync commits nothing of the file. (A WriteAtContext
//     interrupted after its first write step returns the short count of
//     the steps it applied.) Interruptible are the waits for dirty-cache
//     space, for the Compressor and for the commit lock (a Sync queued
//     behind a commit group); not the content lock (a sync.RWMutex), Close
//     (its caller, FUSE RELEASE, cannot be interrupted) or the retry of
//     stuck blocks while waiting for space (an interrupted retry would
//     count as a failure and drop them).
//   - Index: the bbolt database in .accelfs/index.db (files, blocks,
//     aggregate stats). It is a cache of what the records say and can be
//     rebuilt from the backing files (RebuildIndex).
//
// The format is documented in docs/format.md. Concurrency: see the lock
// order on Store and the comments on inode fields.
package blockstore
