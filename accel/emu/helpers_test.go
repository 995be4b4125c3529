package emu

import (
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/codec"
)

// runAll pushes every request through z asynchronously, keeping the queue as
// full as it allows (SubmitBatch + Poll), and returns when all were
// delivered. It fails the test after 30 s instead of hanging, and checks
// every request is delivered exactly once.
func runAll(t testing.TB, z *qm.ZipQueue, reqs []*qm.ZipRequest) {
	t.Helper()
	seen := make(map[*qm.ZipRequest]bool, len(reqs))
	next, done := 0, 0
	// Stuck means no completion for noProgress, not a total time: a busy
	// machine may take long for all of them while progress is still made.
	const noProgress = 60 * time.Second
	deadline := time.Now().Add(noProgress)
	fn := func(r *qm.ZipRequest) {
		if seen[r] {
			t.Errorf("request delivered twice")
		}
		seen[r] = true
		done++
	}
	for done < len(reqs) {
		if next < len(reqs) {
			n, err := z.SubmitBatch(reqs[next:])
			next += n
			if err != nil && n == 0 && z.InFlight() == 0 {
				t.Fatalf("submit: %v", err)
			}
		}
		n, err := z.Poll(0, fn)
		if err != nil && n == 0 && z.InFlight() == 0 && next < len(reqs) {
			t.Fatalf("poll: %v", err)
		}
		if n > 0 {
			deadline = time.Now().Add(noProgress)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("stuck: no completion for %v; %d of %d delivered, %d in flight", noProgress, done, len(reqs), z.InFlight())
		}
		z.Wait(time.Millisecond)
	}
}

func compressCPU(id codec.ID, raw []byte) ([]byte, error) { return codec.Compress(id, 0, nil, raw) }

func decompressCPU(id codec.ID, src []byte, n int) ([]byte, error) {
	return codec.Decompress(id, nil, src, n)
}
