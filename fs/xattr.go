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
		doc, err := n.m.statsJSON(ctx)
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
	return n.sizedXattr("getxattr", dest, func(t *target, dest []byte) (int, error) {
		if t.follow {
			return unix.Getxattr(t.procPath(), attr, dest)
		}
		return unix.Lgetxattr(t.procPath(), attr, dest)
	})
}

func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.IsRoot() && attr == StatsXattr {
		return syscall.EPERM
	}
	t, errno := n.xattrTarget()
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
	t, errno := n.xattrTarget()
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
	return n.sizedXattr("listxattr", dest, func(t *target, dest []byte) (int, error) {
		if t.follow {
			return unix.Listxattr(t.procPath(), dest)
		}
		return unix.Llistxattr(t.procPath(), dest)
	})
}

// xattrTarget is target for the xattr pass-through: ENOTSUP when
// Options.NoXattrs turns it off.
func (n *Node) xattrTarget() (target, syscall.Errno) {
	if n.m.opts.NoXattrs {
		return target{}, syscall.ENOTSUP
	}
	return n.target()
}

// sizedXattr runs a get or list call on the xattr target of n into dest;
// on ERANGE it calls again with no buffer to tell the kernel the size it
// needs.
func (n *Node) sizedXattr(op string, dest []byte, call func(t *target, dest []byte) (int, error)) (uint32, syscall.Errno) {
	t, errno := n.xattrTarget()
	if errno != 0 {
		return 0, errno
	}
	defer t.release()
	sz, err := call(&t, dest)
	if err == syscall.ERANGE {
		sz, _ = call(&t, nil)
	}
	if err != nil {
		return uint32(max(sz, 0)), n.errno(op, "", err)
	}
	return uint32(sz), 0
}

// statsJSON is the stats document: the blockstore's Stats fields, plus
// the top-level keys of Options.ExtraStats (the session layer's "engines"
// and "fallbacks").
func (m *mount) statsJSON(ctx context.Context) ([]byte, error) {
	// Commit first so the figures include what was just written (the index
	// stats otherwise lag by the commit interval). A failed commit is logged
	// and kept by the store for the files concerned; the stats of the last
	// good commit are still correct, so they are returned anyway.
	if err := m.store.Commit(ctx); err != nil {
		m.log.Warn("stats: commit before reading the stats failed", "err", err)
	}
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
