package emu

import (
	"fmt"
	"slices"
	"strings"
)

// A profile is the sysfs face of a real hisi_zip generation: its QM
// version (api) and the algorithms list its kernel driver publishes
// (uadk-spec §1.2). Engine choice reads that list, so a profile that lists
// an algorithm no such device lists would hide exactly the bug class the
// emulator is for (a Kunpeng 920 never lists deflate).
type profile struct {
	api   int
	algs  []string
	about string
}

// DefaultProfile is the profile accelfs uses for --accel emu: the common
// machine (Kunpeng 920, QM v2, "zlib gzip").
const DefaultProfile = "kunpeng920"

var profiles = map[string]profile{
	"kunpeng920": {2, []string{"zlib", "gzip"},
		"Kunpeng 920 (hisi_qm_v2): zlib gzip"},
	"kunpeng930": {3, []string{"zlib", "gzip", "deflate", "lz77_zstd"},
		"Kunpeng 930 (hisi_qm_v3): zlib gzip deflate lz77_zstd"},
	// A v3 device under a kernel whose hisi_zip publishes lz4 (compression
	// only, HZIP_ALG_TYPE_LZ4; the CPU decodes the standard lz4 blocks).
	"v3-lz4": {3, []string{"zlib", "gzip", "deflate", "lz77_zstd", "lz4"},
		"hisi_qm_v3 with an lz4-capable driver: zlib gzip deflate lz77_zstd lz4"},
}

// Profiles lists the profile names, sorted.
func Profiles() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ProfileAbout describes a profile in one line ("" for an unknown name).
func ProfileAbout(name string) string { return profiles[name].about }

// WithProfile returns o with APIVersion and Algorithms set as the named
// profile has them ("" = DefaultProfile).
func WithProfile(o Options, name string) (Options, error) {
	if name == "" {
		name = DefaultProfile
	}
	p, ok := profiles[name]
	if !ok {
		return o, fmt.Errorf("emu: unknown profile %q (want one of %s)", name, strings.Join(Profiles(), ", "))
	}
	o.APIVersion = p.api
	o.Algorithms = slices.Clone(p.algs)
	return o, nil
}
