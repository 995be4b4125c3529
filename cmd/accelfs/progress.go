package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/accelfs/accelfs/blockstore"
)

// fsckBar draws fsck's progress (files, bytes, ETA) on a terminal and does
// nothing otherwise (pipes, files, tests).
type fsckBar struct {
	w   io.Writer
	on  bool
	bar *progressbar.ProgressBar
}

func newFsckBar(w io.Writer) *fsckBar {
	return &fsckBar{w: w, on: isTerminal(w)}
}

func (b *fsckBar) update(p blockstore.FsckProgress) {
	if !b.on {
		return
	}
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(max(p.BytesTotal, 1),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	b.bar.Describe(fmt.Sprintf("fsck: %d/%d files", p.Files, p.FilesTotal))
	b.bar.Set64(p.Bytes)
}

func (b *fsckBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
	}
}

// quietLogger is the store's logger for offline commands (fsck): warnings
// and errors to stderr, no informational lines mixed into the report.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
