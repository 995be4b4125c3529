//go:build linux

package uacce

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
