package integration

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixNames is our copy of the posixtest names we run (posixtest.All is
// not ours to modify). Left out, with the reason:
//   - FcntlFlockLocksFile: expects a POSIX lock to conflict with another
//     fd of the same process; our locks are the kernel's, with POSIX
//     per-process semantics, where that does not conflict (the test passes
//     only on servers that implement locks themselves).
var posixNames = []string{
	"AppendWrite",
	"DirectIO",
	"DirSeek",
	"Fallocate",
	"FallocateKeepSize",
	"FcntlFlockSetLk",
	"FdLeak",
	"FileBasic",
	"FileLarge",
	"FstatDeleted",
	"Link",
	"LinkUnlinkRename",
	"LseekEnxioCheck",
	"LseekHoleSeeksToEOF",
	"MkdirRmdir",
	"NlinkZero",
	"OpenAt",
	"OpenSymlinkRace",
	"ParallelFileOpen",
	"ReadDirBasic",
	"ReadDirConsistency",
	"RenameOpenDir",
	"RenameOverwriteDestExist",
	"RenameOverwriteDestNoExist",
	"SetattrSymlink",
	"SymlinkReadlink",
	"TruncateFile",
	"TruncateNoFile",
	"XAttr",
	"XAttrLarge",
}

func TestPosix(t *testing.T) {
	requireFUSE(t)
	for _, name := range posixNames {
		fn := posixtest.All[name]
		if fn == nil {
			switch name {
			case "FallocateKeepSize":
				fn = posixtest.FallocateKeepSize
			default:
				t.Fatalf("posixtest has no test %q", name)
			}
		}
		t.Run(name, func(t *testing.T) {
			m := newMount(t, nil)
			fn(t, m.Dir)
		})
	}
}
