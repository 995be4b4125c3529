//go:build linux

package uacce

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// No hardware here: these check the error paths of the real open sequence.
func TestHostOpenErrors(t *testing.T) {
	dir := t.TempDir()
	h := &Host{DevRoot: dir}
	dev := Device{Name: "hisi_zip-0", DevPath: filepath.Join(dir, "hisi_zip-0"), Flags: FlagSVA, MMIOSize: 8192, DUSSize: 151552}
	if _, err := h.Open(dev, Compress); !errors.Is(err, ErrNoDevice) {
		t.Errorf("missing node: %v", err)
	}
	iso := dev
	iso.Isolated = true
	if _, err := h.Open(iso, Compress); !errors.Is(err, ErrIsolated) {
		t.Errorf("isolated: %v", err)
	}
	if _, err := h.Open(dev, Direction(2)); err == nil {
		t.Error("qc_type 2 accepted")
	}
	// A regular file is not a uacce node: QM_SET_QP_CTX fails (ENOTTY) and
	// the descriptor is closed again.
	if err := os.WriteFile(dev.DevPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := h.Open(dev, Decompress)
	if err == nil || errors.Is(err, ErrBusy) || errors.Is(err, ErrNoSVA) {
		t.Errorf("regular file: %v", err)
	}
}

// The real poll() wrapper never turns a timeout into "forever": negative
// timeouts are 0, tiny ones round up to 1 ms, huge ones are clamped.
func TestSysKernelPollBounded(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fd := int(r.Fd())
	for _, to := range []time.Duration{-time.Hour, -time.Nanosecond, 0, 200 * time.Microsecond} {
		start := time.Now()
		ready, _, err := sysKernel{}.Poll(fd, to)
		// 30 s: "returned, not forever" (a busy machine may be slow)
		if ready || err != nil || time.Since(start) > 30*time.Second {
			t.Fatalf("timeout %v: ready %v err %v after %v", to, ready, err, time.Since(start))
		}
	}
	w.Write([]byte{1})
	if ready, _, err := (sysKernel{}).Poll(fd, 1<<62); !ready || err != nil {
		t.Fatalf("readable pipe: ready %v err %v", ready, err)
	}
}
