package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCorruptBlock: a damaged record reads as EIO through the mount (never
// as wrong bytes), `accelfs fsck` reports it with exit code 3, and
// `fsck --repair` drops it so the rest of the file reads again.
func TestCorruptBlock(t *testing.T) {
	m := newMount(t, nil)
	data := text(512<<10, 'Z')
	writeFile(t, m.path("victim"), data)
	m.unmount(t)

	// Flip a byte inside the second stored block's record.
	bf := filepath.Join(m.Backing, "victim")
	f, err := os.OpenFile(bf, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := unix.Seek(int(f.Fd()), 4096, unix.SEEK_DATA)
	if err != nil {
		t.Fatalf("no record after the first 4 KiB of the backing file: %v", err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, first+300); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, first+300); err != nil {
		t.Fatal(err)
	}
	f.Close()

	m2 := remount(t, m.Backing, nil)
	_, err = os.ReadFile(m2.path("victim"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a file with a corrupt block: %v, want EIO", err)
	}
	m2.done = true // the fsck at unmount would (rightly) complain; check it through the CLI
	if err := m2.srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	m2.srv.Wait()
	m2.store.Close()
	m2.engine.Close()

	bin := accelfsBinary(t)
	cmd := exec.Command(bin, "fsck", m.Backing)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("fsck of a damaged store: exit %d, want 3\n%s", code, out)
	}
	// The repair drops the block: data lost by this run, exit 4, not 0.
	cmd = exec.Command(bin, "fsck", "--repair", m.Backing)
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 4 {
		t.Fatalf("fsck --repair that dropped a block: exit %d, want 4\n%s", code, out)
	}
	m3 := remount(t, m.Backing, nil)
	got := mustRead(t, m3.path("victim"))
	if len(got) != len(data) {
		t.Fatalf("after repair: %d bytes, want %d", len(got), len(data))
	}
	lost := 0
	for off := 0; off < len(got); off += 128 << 10 {
		end := min(off+128<<10, len(got))
		if string(got[off:end]) != string(data[off:end]) {
			lost++
			for _, c := range got[off:end] {
				if c != 0 {
					t.Fatalf("after repair, block at %d is neither intact nor zeros", off)
				}
			}
		}
	}
	if lost != 1 {
		t.Fatalf("after repair %d blocks differ, want exactly the damaged one", lost)
	}
}
