package uacce

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDiscoverKunpengFixture(t *testing.T) {
	devs, err := DiscoverIn("testdata/kunpeng/class/uacce", "/nonexistent-dev")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]Device{}
	for _, d := range devs {
		names = append(names, d.Name)
		byName[d.Name] = d
	}
	// hisi_zip-9 has an unparsable flags attribute and is skipped.
	want := []string{"hisi_hpre-0", "hisi_sec2-0", "hisi_zip-0", "hisi_zip-1", "hisi_zip-2", "hisi_zip-3"}
	if !slices.Equal(names, want) {
		t.Fatalf("devices %v, want %v", names, want)
	}
	z0 := byName["hisi_zip-0"]
	if z0.Driver != "hisi_zip" || z0.ID != 0 || z0.API != "hisi_qm_v2" || z0.APIVersion != 2 || !z0.SVA() ||
		z0.AvailableInstances != 12 || z0.Node != 0 || z0.Isolated || z0.MMIOSize != 8192 || z0.DUSSize != 151552 ||
		z0.DevPath != "/nonexistent-dev/hisi_zip-0" || z0.LegacyAttrs {
		t.Errorf("hisi_zip-0 = %+v", z0)
	}
	if !slices.Equal(z0.Algorithms, []string{"zlib", "gzip", "deflate", "lz77_zstd"}) {
		t.Errorf("algorithms %q", z0.Algorithms)
	}
	if !z0.HasAlgorithm("deflate") || z0.HasAlgorithm("zstd") || z0.HasAlgorithm("lz77") {
		t.Error("HasAlgorithm must match whole lines only")
	}
	if z2 := byName["hisi_zip-2"]; !z2.Isolated || z2.Node != 1 || z2.APIVersion != 3 {
		t.Errorf("hisi_zip-2 = %+v", z2)
	}
	if h := byName["hisi_hpre-0"]; h.Node != 0 || h.Isolated || h.AvailableInstances != 0 {
		t.Errorf("hisi_hpre-0 (numa_node -1, no isolate attr) = %+v", h)
	}
}

func TestDiscoverLegacyAttrs(t *testing.T) {
	devs, err := Discover("testdata/legacy/class/uacce")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("%d devices", len(devs))
	}
	d := devs[1]
	if !d.LegacyAttrs || d.API != "hisi_qm_v1" || d.APIVersion != 1 || d.SVA() || !d.HasNodeID || d.NodeID != 1 ||
		d.Node != 1 || d.NUMADistance != 20 || d.AvailableInstances != 9 || d.MMIOSize != 0 {
		t.Errorf("legacy device = %+v", d)
	}
	if n, err := ReadAvailable(&d); err != nil || n != 9 {
		t.Errorf("ReadAvailable = %d, %v", n, err)
	}
	// flags 0 (no SVA) and no region sizes: Open refuses before touching anything.
	if _, err := (&Host{}).Open(d, Compress); !errors.Is(err, ErrNoSVA) {
		t.Errorf("open legacy device: %v", err)
	}
	d.Flags = FlagSVA
	if _, err := (&Host{}).Open(d, Compress); !errors.Is(err, ErrNoDevice) || errors.Is(err, ErrNoSVA) {
		t.Errorf("open legacy device without region sizes: %v", err)
	}
}

func TestDiscoverMissingRoot(t *testing.T) {
	devs, err := Discover(filepath.Join(t.TempDir(), "none"))
	if err != nil || devs != nil {
		t.Fatalf("missing root: %v %v", devs, err)
	}
}

func TestDiscoverBoundsAttrs(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "hisi_zip-0")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "api"), []byte("hisi_qm_v2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flags"), []byte("1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "algorithms"), make([]byte, 1<<20), 0o644)
	if _, err := Discover(root); !errors.Is(err, ErrBadAttr) {
		t.Fatalf("oversized attribute: %v", err)
	}
}

func TestChoose(t *testing.T) {
	devs, err := Discover("testdata/kunpeng/class/uacce")
	if err != nil {
		t.Fatal(err)
	}
	dist, err := NodeDistances("testdata/kunpeng/node")
	if err != nil {
		t.Fatal(err)
	}
	if dist(0, 1) != 20 || dist(1, 1) != 10 || dist(5, 6) != 20 {
		t.Fatalf("distances wrong")
	}
	cases := []struct {
		w    Want
		name string
		err  error
	}{
		{Want{Algorithm: "deflate", Node: 0, Distance: dist}, "hisi_zip-1", nil}, // most free on node 0
		{Want{Algorithm: "deflate", Node: 1}, "hisi_zip-3", nil},                 // zip-2 is isolated
		{Want{Algorithm: "lz4", Node: 0}, "hisi_zip-3", nil},                     // nearest node with lz4
		{Want{Algorithm: "cipher", Node: 1}, "hisi_sec2-0", nil},
		{Want{Algorithm: "zstd"}, "", ErrNoDevice},
		{Want{Algorithm: "rsa"}, "", ErrBusy}, // hpre has no free queue
	}
	for _, c := range cases {
		d, err := Choose(devs, c.w)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%+v: err %v, want %v", c.w, err, c.err)
			}
			continue
		}
		if err != nil || d.Name != c.name {
			t.Errorf("%+v: got %s %v, want %s", c.w, d.Name, err, c.name)
		}
	}
	// Every device with the algorithm isolated -> ErrIsolated.
	iso := []Device{{Name: "a-0", Algorithms: []string{"x"}, Isolated: true, AvailableInstances: 5, Flags: FlagSVA}}
	if _, err := Choose(iso, Want{Algorithm: "x"}); !errors.Is(err, ErrIsolated) {
		t.Errorf("all isolated: %v", err)
	}
}

func TestChooseRefreshReadsSysfs(t *testing.T) {
	root := t.TempDir()
	for i, avail := range []string{"5", "9"} {
		dir := filepath.Join(root, "hisi_zip-"+string(rune('0'+i)))
		os.MkdirAll(filepath.Join(dir, "device"), 0o755)
		for name, v := range map[string]string{"api": "hisi_qm_v2", "flags": "1", "algorithms": "deflate", "available_instances": avail, "device/numa_node": "0"} {
			os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644)
		}
	}
	devs, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := Choose(devs, Want{Algorithm: "deflate"}); d.Name != "hisi_zip-1" {
		t.Fatalf("snapshot choice %s", d.Name)
	}
	os.WriteFile(filepath.Join(root, "hisi_zip-1", "available_instances"), []byte("0\n"), 0o644)
	if d, _ := Choose(devs, Want{Algorithm: "deflate", Refresh: true}); d.Name != "hisi_zip-0" || d.AvailableInstances != 5 {
		t.Fatalf("refreshed choice %s (%d)", d.Name, d.AvailableInstances)
	}
	os.WriteFile(filepath.Join(root, "hisi_zip-0", "isolate"), []byte("1\n"), 0o644)
	if _, err := Choose(devs, Want{Algorithm: "deflate", Refresh: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("refreshed: %v", err)
	}
}

func TestSplitNameAndAPI(t *testing.T) {
	for _, c := range []struct {
		in  string
		drv string
		id  int
	}{{"hisi_zip-0", "hisi_zip", 0}, {"hisi_zip-12", "hisi_zip", 12}, {"nodash", "nodash", -1}, {"a-b", "a-b", -1}, {"x-", "x-", -1}} {
		if d, id := splitName(c.in); d != c.drv || id != c.id {
			t.Errorf("splitName(%q) = %q %d", c.in, d, id)
		}
	}
	for _, c := range []struct {
		in  string
		ver int
		noi bool
	}{{"hisi_qm_v1", 1, false}, {"hisi_qm_v3", 3, false}, {"hisi_qm_v2_noiommu", 2, true}, {"other", 0, false}} {
		if v, n := parseAPI(c.in); v != c.ver || n != c.noi {
			t.Errorf("parseAPI(%q) = %d %v", c.in, v, n)
		}
	}
}
