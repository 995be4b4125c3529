package fs

import (
	"context"
	"encoding/json"
	"syscall"

	"golang.org/x/sys/unix"
)

// Extended attributes are passed through to the backing object (without
// following symlinks), except the stats attribute of the root, which is
// computed. Options.NoXattrs turns the pass-through off.

func (n *Node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.IsRoot() && attr == StatsXattr {
		doc, err := n.m.statsJSON()
		if err != nil {
			return 0, n.errno("stats", "", err)
		}
		if len(dest) == 0 {
			return uint32(len(doc)), 0
		}
		if len(dest) < len(doc) {
			return uint32(len(doc)), syscall.ERANGE
		}
		return uint32(copy(dest, doc)), 0
	}
	if n.m.opts.NoXattrs {
		return 0, syscall.ENOTSUP
	}
	t, errno := n.target()
	if errno != 0 {
		return 0, errno
	}
	defer t.release()
	var sz int
	var err error
	get := unix.Lgetxattr
	if t.follow {
		get = unix.Getxattr
	}
	sz, err = get(t.procPath(), attr, dest)
	if err == syscall.ERANGE {
		// Tell the kernel the size it needs.
		sz, _ = get(t.procPath(), attr, nil)
	}
	if err != nil {
		return uint32(max(sz, 0)), n.errno("getxattr", "", err)
	}
	return uint32(sz), 0
}

func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.IsRoot() && attr == StatsXattr {
		return syscall.EPERM
	}
	if n.m.opts.NoXattrs {
		return syscall.ENOTSUP
	}
	t, errno := n.target()
	if errno != 0 {
		return errno
	}
	defer t.release()
	if t.follow {
		return n.errno("setxattr", "", unix.Setxattr(t.procPath(), attr, data, int(flags)))
	}
	return n.errno("setxattr", "", unix.Lsetxattr(t.procPath(), attr, data, int(flags)))
}

func (n *Node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.IsRoot() && attr == StatsXattr {
		return syscall.EPERM
	}
	if n.m.opts.NoXattrs {
		return syscall.ENOTSUP
	}
	t, errno := n.target()
	if errno != 0 {
		return errno
	}
	defer t.release()
	if t.follow {
		return n.errno("removexattr", "", unix.Removexattr(t.procPath(), attr))
	}
	return n.errno("removexattr", "", unix.Lremovexattr(t.procPath(), attr))
}

func (n *Node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.m.opts.NoXattrs {
		return 0, syscall.ENOTSUP
	}
	t, errno := n.target()
	if errno != 0 {
		return 0, errno
	}
	defer t.release()
	var sz int
	var err error
	list := unix.Llistxattr
	if t.follow {
		list = unix.Listxattr
	}
	sz, err = list(t.procPath(), dest)
	if err == syscall.ERANGE {
		sz, _ = list(t.procPath(), nil)
	}
	if err != nil {
		return uint32(max(sz, 0)), n.errno("listxattr", "", err)
	}
	return uint32(sz), 0
}

// statsJSON is the stats document: the blockstore's Stats fields, plus
// the top-level keys of Options.ExtraStats (the session layer's "engines"
// and "fallbacks").
func (m *mount) statsJSON() ([]byte, error) {
	base, err := json.Marshal(m.store.Stats())
	if err != nil {
		return nil, err
	}
	doc := map[string]json.RawMessage{}
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, err
	}
	if m.opts.ExtraStats != nil {
		if extra := m.opts.ExtraStats(); extra != nil {
			eb, err := json.Marshal(extra)
			if err != nil {
				return nil, err
			}
			var em map[string]json.RawMessage
			if json.Unmarshal(eb, &em) == nil {
				for k, v := range em {
					doc[k] = v
				}
			} else {
				doc["extra"] = eb
			}
		}
	}
	return json.Marshal(doc)
}
