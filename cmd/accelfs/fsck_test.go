package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/accelfs/accelfs/blockstore"
)

// The fsck exit code follows the report: 0 clean, 3 problems remain, 4 this
// run dropped data (even when the repair "succeeded").
func TestFsckVerdict(t *testing.T) {
	lost := blockstore.FsckItem{Kind: blockstore.ProblemCorrupt, Repaired: true, Lost: true}
	open := blockstore.FsckItem{Kind: blockstore.ProblemCorrupt}
	fixed := blockstore.FsckItem{Kind: blockstore.ProblemUnindexed, Repaired: true}
	for _, c := range []struct {
		items []blockstore.FsckItem
		wrote bool
		code  int
	}{
		{nil, false, exitOK},
		{[]blockstore.FsckItem{fixed}, true, exitOK},
		{[]blockstore.FsckItem{open}, false, exitDamaged},
		{[]blockstore.FsckItem{open}, true, exitDamaged},
		{[]blockstore.FsckItem{lost}, true, exitDataLost},
		{[]blockstore.FsckItem{lost, open}, true, exitDataLost},
	} {
		rep := &blockstore.FsckReport{Problems: c.items}
		err := fsckVerdict(rep, c.wrote)
		if got := exitCodeFor(err); got != c.code {
			t.Errorf("%+v wrote=%v: exit %d, want %d (%v)", c.items, c.wrote, got, c.code, err)
		}
		if c.code == exitDamaged && !c.wrote && !strings.Contains(err.Error(), "DROPS") {
			t.Errorf("verify hint does not say that repair drops data: %v", err)
		}
	}
}

// A store error that is the caller's mistake exits 2.
func TestStoreErrUsage(t *testing.T) {
	for _, e := range []error{blockstore.ErrNotStore, blockstore.ErrExists, blockstore.ErrInvalid} {
		if got := exitCodeFor(storeErr(e)); got != exitUsage {
			t.Errorf("%v: exit %d, want %d", e, got, exitUsage)
		}
	}
	if got := exitCodeFor(storeErr(errors.New("io"))); got != exitFailure {
		t.Errorf("other error: exit %d", got)
	}
}
