package integration

import (
	"fmt"
	"io"
	"runtime"

	"github.com/accelfs/accelfs/blockstore"
)

// newCompressor is how the accel mode (ACCELFS_TEST_ACCEL) enters the
// in-process mounts of the suite: it returns the engine, its metrics for
// the stats document (may be nil) and a Closer run after the store is
// closed. The session layer (stream D) adds "emu" and device names here;
// server-process mounts pass the mode as `--accel MODE` instead.
func newCompressor(mode string) (blockstore.Compressor, func() any, io.Closer, error) {
	switch mode {
	case "cpu", "auto":
		return blockstore.NewCPUCompressor(runtime.GOMAXPROCS(0)), nil, nopCloser{}, nil
	}
	return nil, nil, nil, fmt.Errorf("accel mode %q not supported by the suite yet", mode)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
