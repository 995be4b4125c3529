package session

import (
	"context"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/codec"
)

// numa4 is a fixture /sys with four nodes whose distance table makes node
// 3 the nearest to node 0 (10 30 40 20) and node 2 the nearest to node 1.
const numa4 = "testdata/numa4"

func TestReadTopologyDistances(t *testing.T) {
	topo, err := ReadTopology(numa4)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) != 4 || topo.Distance(0, 3) != 20 || topo.Distance(0, 1) != 30 || topo.Distance(2, 2) != 10 {
		t.Fatalf("topology %+v", topo)
	}
	ids := []int{1, 2, 3}
	topo.nearer(0, ids)
	if ids[0] != 3 || ids[1] != 1 || ids[2] != 2 {
		t.Fatalf("nearest to node 0: %v", ids)
	}
	// no table: same node 10, others 20, ties by id
	two, _ := ReadTopology(twoNodeRoot(t))
	if two.Distance(0, 0) != 10 || two.Distance(0, 1) != 20 {
		t.Fatal("default distances")
	}
	for _, bad := range []string{"", "10 x", "10 256", "-1"} {
		if _, err := parseDistances(bad); err == nil {
			t.Errorf("distance row %q accepted", bad)
		}
	}
}

// Sessions on a node without a device use the nearest node's device by the
// distance table, not the lowest-numbered one: from node 0 (devices on
// nodes 1 and 3; 0→3 is 20, 0→1 is 30) every request goes to node 3's.
func TestSessionsUseNearestDevice(t *testing.T) {
	root := t.TempDir()
	sys, err := emu.NewSystem(filepath.Join(root, "uacce"),
		emu.Options{ID: 1, Node: 1}, emu.Options{ID: 3, Node: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	devs, err := sys.Discover()
	if err != nil || len(devs) != 2 {
		t.Fatalf("discover: %v %v", devs, err)
	}
	opts := []Option{WithSysRoot(numa4), WithThreshold(0, 0), WithCPUOffload(false)}
	for _, d := range devs {
		opts = append(opts, WithDevice(sys, d))
	}
	l := newTestLayer(t, opts...)
	src := testData(rand.New(rand.NewSource(5)), 0, 16<<10)
	for from, want := range map[int]string{0: "hisi_zip-3", 1: "hisi_zip-1", 2: "hisi_zip-1"} {
		for i := 0; i < 6; i++ {
			s, err := l.NewSession(SessionOptions{Algo: codec.Zlib, Dir: Compress, Node: from})
			if err != nil {
				t.Fatal(err)
			}
			r := &Request{Src: src}
			if err := s.Do(context.Background(), r); err != nil || r.Err != nil {
				t.Fatal(err, r.Err)
			}
			if r.Engine != want {
				t.Fatalf("session %d on node %d ran on %s, want %s (nearest)", i, from, r.Engine, want)
			}
		}
	}
}

// FuzzParseDistances: any nodeN/distance content parses or errors, never
// panics, never yields more than 4096 entries or one outside 0..255.
func FuzzParseDistances(f *testing.F) {
	for _, s := range []string{"10 20\n", "10", "", "10 x", " 255 0 ", "10 21 31 41\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDistances(s)
		if err != nil {
			return
		}
		if len(d) == 0 || len(d) > 4096 {
			t.Fatalf("%d entries", len(d))
		}
		for _, v := range d {
			if v < 0 || v > 255 {
				t.Fatalf("distance %d", v)
			}
		}
	})
}
