package fs

import (
	"log/slog"
	"time"
)

// Options configure a mount. The zero value is a working default.
type Options struct {
	// Writeback enables the kernel's writeback cache (FUSE
	// CAP_WRITEBACK_CACHE): the kernel buffers writes in its page cache
	// and sends them in larger batches. Default off (see README Decisions).
	Writeback bool

	// AllowOther lets users other than the mounting one access the mount
	// (mount option allow_other). Default off.
	AllowOther bool

	// NoXattrs switches off extended attribute pass-through: get/set/list/
	// remove answer ENOTSUP. The stats attribute on the root still works.
	NoXattrs bool

	// ExtraMountOptions are passed to the kernel mount as -o options in
	// addition to the ones accelfs sets itself (default_permissions, ...).
	ExtraMountOptions []string

	// AttrTimeout and EntryTimeout are how long the kernel caches
	// attributes and names. Zero means 1s (the libfuse default).
	AttrTimeout  time.Duration
	EntryTimeout time.Duration

	// ExtraStats, when set, is called for every stats request; its result
	// is marshalled to JSON and its top-level keys (expected: "engines",
	// "fallbacks") are merged into the stats document next to the
	// blockstore's counters.
	ExtraStats func() any

	// FsName is the source shown in /proc/mounts; default "accelfs".
	FsName string

	// Debug logs every FUSE request (go-fuse debug output) to Logger.
	Debug bool

	// Logger receives error reports (corrupt blocks, unexpected errors).
	// nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.AttrTimeout == 0 {
		out.AttrTimeout = time.Second
	}
	if out.EntryTimeout == 0 {
		out.EntryTimeout = time.Second
	}
	if out.FsName == "" {
		out.FsName = "accelfs"
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}
