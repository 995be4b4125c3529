package fs

import gofs "github.com/hanwen/go-fuse/v2/fs"

// Compile-time checks: a changed go-fuse signature must not silently drop
// an operation. One line per interface the Node implements.
var (
	_ = (gofs.InodeEmbedder)((*Node)(nil))
	_ = (gofs.NodeLookuper)((*Node)(nil))
	_ = (gofs.NodeGetattrer)((*Node)(nil))
	_ = (gofs.NodeSetattrer)((*Node)(nil))
	_ = (gofs.NodeMkdirer)((*Node)(nil))
	_ = (gofs.NodeMknoder)((*Node)(nil))
	_ = (gofs.NodeCreater)((*Node)(nil))
	_ = (gofs.NodeUnlinker)((*Node)(nil))
	_ = (gofs.NodeRmdirer)((*Node)(nil))
	_ = (gofs.NodeRenamer)((*Node)(nil))
	_ = (gofs.NodeLinker)((*Node)(nil))
	_ = (gofs.NodeSymlinker)((*Node)(nil))
	_ = (gofs.NodeReadlinker)((*Node)(nil))
	_ = (gofs.NodeOpener)((*Node)(nil))
	_ = (gofs.NodeOpendirHandler)((*Node)(nil))
	_ = (gofs.NodeStatfser)((*Node)(nil))
	_ = (gofs.NodeGetxattrer)((*Node)(nil))
	_ = (gofs.NodeSetxattrer)((*Node)(nil))
	_ = (gofs.NodeRemovexattrer)((*Node)(nil))
	_ = (gofs.NodeListxattrer)((*Node)(nil))
)

// Not implemented, on purpose (see README.md "Decisions"):
//   - NodeGetlker/NodeSetlker/NodeSetlkwer: locks are handled by the kernel
//     (EnableLocks unset), which is exact for a single-host filesystem.
//   - NodeCopyFileRanger: the kernel falls back to read+write.
//   - NodeTmpfiler: O_TMPFILE answers EOPNOTSUPP.
//   - NodeIoctler: no ioctls are passed to backing files.
//   - NodeAccesser: go-fuse's default checks the mode from Getattr, and
//     the mount uses default_permissions.
