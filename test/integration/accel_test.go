package integration

import (
	"io"

	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
	"github.com/accelfs/accelfs/engine"
)

// newCompressor is how the accel mode (ACCELFS_TEST_ACCEL) enters the
// in-process mounts of the suite: the production wiring (package engine,
// what `accelfs mount --accel MODE` builds) with its defaults, so "emu" is
// the default profile (kunpeng920). It returns the engine's compressor, its
// metrics for the stats document and a Closer run after the store is
// closed. Server-process mounts pass the mode as `--accel MODE` instead.
func newCompressor(mode string) (blockstore.Compressor, func() any, io.Closer, error) {
	e, err := engine.New(engine.Config{Accel: mode})
	if err != nil {
		return nil, nil, nil, err
	}
	return e.Compressor(), e.Metrics, e, nil
}

// autoAlgo is the suite's `--algo auto`, the engine's own choice: the
// algorithm the mode's device lists (zlib on the default emulator profile),
// lz4 on the CPU.
func autoAlgo(comp blockstore.Compressor) codec.ID {
	if e := engine.EngineOf(comp); e != nil {
		return e.AutoAlgo()
	}
	return codec.LZ4
}
