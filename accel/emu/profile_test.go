package emu

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/accelfs/accelfs/accel/uacce"
)

var update = flag.Bool("update", false, "rewrite the testdata/sysfs fixture trees from the profiles")

// sysfsAttrs are the attributes a profile's fixture holds (what uacce.Discover reads).
var sysfsAttrs = []string{"api", "flags", "algorithms", "available_instances", "region_mmio_size",
	"region_dus_size", "isolate", "isolate_strategy", "device/numa_node"}

// TestProfileFixtures: each profile's emulated sysfs entry equals its
// fixture tree under testdata/sysfs/<profile>/ (4 KiB pages), which other
// packages' tests use as a stand-in /sys/class/uacce; Discover reads the
// fixture as the device the profile models.
func TestProfileFixtures(t *testing.T) {
	want := map[string]struct {
		api  string
		algs []string
	}{
		"kunpeng920": {"hisi_qm_v2", []string{"zlib", "gzip"}},
		"kunpeng930": {"hisi_qm_v3", []string{"zlib", "gzip", "deflate", "lz77_zstd"}},
		"v3-lz4":     {"hisi_qm_v3", []string{"zlib", "gzip", "deflate", "lz77_zstd", "lz4"}},
	}
	if !slices.Equal(Profiles(), []string{"kunpeng920", "kunpeng930", "v3-lz4"}) {
		t.Fatalf("profiles %v", Profiles())
	}
	for _, p := range Profiles() {
		o, err := WithProfile(Options{SysfsRoot: t.TempDir(), PageSize: 4096}, p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		fix := filepath.Join("testdata", "sysfs", p)
		for _, a := range sysfsAttrs {
			got, err := os.ReadFile(filepath.Join(o.SysfsRoot, "hisi_zip-0", a))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(fix, "hisi_zip-0", a)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if w, err := os.ReadFile(path); err != nil || string(w) != string(got) {
				t.Errorf("%s: %s: emulator writes %q, fixture has %q (%v); go test -run TestProfileFixtures -update", p, a, got, w, err)
			}
		}
		devs, err := uacce.Discover(fix)
		if err != nil || len(devs) != 1 {
			t.Fatalf("%s: discover fixture: %v %v", p, devs, err)
		}
		if devs[0].API != want[p].api || !slices.Equal(devs[0].Algorithms, want[p].algs) {
			t.Errorf("%s: fixture device %+v", p, devs[0])
		}
	}
	if _, err := WithProfile(Options{}, "kunpeng9000"); err == nil {
		t.Error("unknown profile accepted")
	}
}
