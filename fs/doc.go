// Package fs is the FUSE face of accelfs: a go-fuse v2 node filesystem over
// a backing directory whose regular files are blockstore files.
//
// Terms:
//
//   - backing directory: the directory given to `accelfs mount`; it mirrors
//     the namespace (names, directories, modes, owners, times, symlinks,
//     hardlinks, xattrs). Its .accelfs/ directory belongs to the store and
//     is invisible and untouchable through the mount.
//   - node: one go-fuse Inode (Node). A node has no stored path: its backing
//     location is its parent directory and name in go-fuse's tree, resolved
//     at each operation relative to the backing root fd with openat2
//     (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so no operation follows a
//     symlink inside the backing tree or leaves it.
//   - open file: the blockstore.File of a regular file node, shared by all
//     FUSE handles of that node and reference counted in the node (Node.open).
//   - handle: one FUSE file handle (one open(2)); data operations on it are
//     single blockstore calls. Each handle has its own cursor on the file's
//     write-back failures (blockstore.ErrCursor): fsync and the close(2) of
//     a descriptor opened for writing report a failure once; the close(2)
//     of a read-only descriptor reports none (another writer's ENOSPC is
//     not the reader's).
//   - interrupt: go-fuse ends an operation's context when the kernel sends
//     FUSE_INTERRUPT (a signal to the waiting process). Read, write, flush,
//     fsync, fallocate and setattr's truncate pass it to the blockstore
//     call, which then stops waiting and changes nothing; the answer is
//     EINTR (errno.go). Release has nobody to interrupt it.
//   - data change time: a truncate that changes the size moves mtime and
//     ctime at once (the backing file changes only at the next commit,
//     which keeps its mtime), like a write.
//
// Every operation is a thin call: a *at system call on the backing tree for
// the namespace, or one blockstore call for file contents. There is no
// compression, block or offset logic here. Errors become errnos in exactly
// one place, errno.go. Design decisions are listed in README.md next to this
// file.
package fs
