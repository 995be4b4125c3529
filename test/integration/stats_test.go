package integration

import (
	"testing"
)

// TestStatsIncludeFreshWrites: `accelfs stats` right after writing shows
// the new data; the server commits before answering instead of reporting
// the state of the last interval commit.
func TestStatsIncludeFreshWrites(t *testing.T) {
	m := newMount(t, nil)
	before, _ := readStatsDoc(t, m.Dir)["logical_bytes"].(float64)
	const size = 3<<20 + 123
	writeFile(t, m.path("fresh"), text(size, 'S'))
	after, _ := readStatsDoc(t, m.Dir)["logical_bytes"].(float64)
	if after-before != size {
		t.Fatalf("logical_bytes went from %.0f to %.0f right after writing %d bytes", before, after, size)
	}
}
