package session

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/codec"
)

// TestMeasureDepthModel: how many 128 KiB requests one stream must keep in
// flight to reach the emulated hisi_zip model's cap (7 GB/s, 15 µs per
// request, uadk-spec §5.1), with the no-op engine so the host CPU's own
// compression speed is out of the picture: batches of N blocks (what one
// sequential stream submits at once) back to back for a while, throughput
// against the cap. Prints figures only (ACCELFS_MEASURE=1).
func TestMeasureDepthModel(t *testing.T) {
	if os.Getenv("ACCELFS_MEASURE") != "1" {
		t.Skip("measurement: set ACCELFS_MEASURE=1 to run")
	}
	d := newEmu(t, emu.Options{Engine: emu.EngineNoop, Model: emu.HisiZipModel()})
	l := emuLayer(t, d, WithThreshold(0, 0), WithCPUOffload(false), WithSyncSingle(false))
	src := make([]byte, 128<<10)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, n := range []int{1, 2, 4, 8, 16, 64} {
		jobs := make([]*Job, n)
		var bytes int64
		start := time.Now()
		for time.Since(start) < 300*time.Millisecond {
			for i := range jobs {
				jobs[i] = &Job{Algo: codec.Deflate, Src: src, Dst: make([]byte, 0, len(src)+len(src)/8+64)}
			}
			if err := l.Run(context.Background(), jobs); err != nil {
				t.Fatal(err)
			}
			bytes += int64(n * len(src))
		}
		gbs := float64(bytes) / time.Since(start).Seconds() / 1e9
		t.Logf("%2d x 128 KiB in flight: %.2f GB/s = %.0f%% of the 7 GB/s model cap", n, gbs, gbs/7*100)
	}
}
