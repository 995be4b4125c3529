package uacce

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DefaultSysfsRoot is where the kernel lists uacce devices (class "uacce", §1.1).
const DefaultSysfsRoot = "/sys/class/uacce"

// DefaultDevRoot is where the character nodes live (/dev/<name>, §1.1).
const DefaultDevRoot = "/dev"

// maxAttrBytes bounds every sysfs read: attributes are one short line (the
// algorithms list a few lines), so anything longer is rejected instead of read.
const maxAttrBytes = 4096

// Flags are the negotiated UACCE_DEV_* bits of a device (§1.3, K-UAPI).
type Flags uint32

// FlagSVA is UACCE_DEV_SVA: the device reads and writes process virtual
// addresses (PASID + I/O page faults), so requests can use plain Go memory.
// Mainline defines no other flag (§1.3).
const FlagSVA Flags = 1 << 0

// Device describes one uacce device as read from sysfs by Discover.
// Values other than Name are a snapshot; AvailableInstances changes as any
// process opens and closes queues (re-read it with ReadAvailable).
type Device struct {
	Name      string // class entry name, e.g. "hisi_zip-0" (§1.1)
	Driver    string // Name without the trailing "-<id>", e.g. "hisi_zip" (U-WD wd_get_accel_name)
	ID        int    // the trailing number of Name, -1 if there is none (U-UTIL wd_parse_dev_id)
	SysfsPath string // directory the attributes were read from
	DevPath   string // character node, <devRoot>/<Name>

	API        string // "hisi_qm_v2" etc. (§1.2)
	APIVersion int    // decimal number after "hisi_qm_v"; 0 if the api string has another form (U-QM get_version_id)
	NoIOMMU    bool   // api ended in "_noiommu" (older trees, U-UH)
	Flags      Flags

	// Algorithms is the "algorithms" attribute split into whole lines (§1.2);
	// matching is by whole line only (U-WD dev_has_alg).
	Algorithms []string

	// AvailableInstances is the number of free queues when Discover ran, or -1
	// when the attribute is missing or unreadable (-ENODEV, K-ABI).
	AvailableInstances int

	// Node is the NUMA node: device/numa_node, -1 mapped to 0 (U-WD
	// get_dev_info); the legacy node_id attribute is used only when
	// device/numa_node is missing (§1.2).
	Node int

	// Isolated is true when the isolate attribute reads 1 (§1.2). Isolated
	// devices are listed but never chosen or opened.
	Isolated bool

	// MMIOSize and DUSSize are region_mmio_size / region_dus_size in bytes
	// (§1.2, §1.4); 0 when the attribute is absent (hidden when 0, or a legacy
	// tree without them), in which case Open refuses the device.
	MMIOSize int64
	DUSSize  int64

	// Legacy and optional attributes (§1.2): HasNodeID tells whether node_id
	// was present; NUMADistance is numa_distance (caller dependent) or -1.
	// LegacyAttrs is true when attributes came from the attrs/ subdirectory.
	HasNodeID    bool
	NodeID       int
	NUMADistance int
	LegacyAttrs  bool
}

// SVA reports whether the device negotiated shared virtual addressing.
func (d *Device) SVA() bool { return d.Flags&FlagSVA != 0 }

// HasAlgorithm reports whether alg is one whole line of the algorithms
// attribute (U-WD dev_has_alg: "zlib" must not match "lz77_zlib").
func (d *Device) HasAlgorithm(alg string) bool {
	return slices.Contains(d.Algorithms, alg)
}

// Discover lists the uacce devices under sysfsRoot (DefaultSysfsRoot when
// empty), sorted by name, with DevPath under DefaultDevRoot. Isolated devices
// are included with Isolated set. A missing root means no devices (nil, nil);
// a device whose mandatory attributes (api, flags, algorithms) cannot be read
// is skipped, and its error is returned joined with the others only if no
// device at all could be read.
func Discover(sysfsRoot string) ([]Device, error) {
	return DiscoverIn(sysfsRoot, DefaultDevRoot)
}

// DiscoverIn is Discover with an explicit directory for device nodes.
func DiscoverIn(sysfsRoot, devRoot string) ([]Device, error) {
	if sysfsRoot == "" {
		sysfsRoot = DefaultSysfsRoot
	}
	if devRoot == "" {
		devRoot = DefaultDevRoot
	}
	ents, err := os.ReadDir(sysfsRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("uacce: list %s: %w", sysfsRoot, err)
	}
	var devs []Device
	var errs []error
	for _, e := range ents {
		p := filepath.Join(sysfsRoot, e.Name())
		// Class entries are symlinks to the device directory in real sysfs.
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			continue
		}
		d, err := ReadDevice(p, devRoot)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	if len(devs) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return devs, nil
}

// ReadDevice reads one device directory (a /sys/class/uacce/<name> entry).
func ReadDevice(dir, devRoot string) (Device, error) {
	name := filepath.Base(dir)
	d := Device{
		Name:               name,
		SysfsPath:          dir,
		DevPath:            filepath.Join(devRoot, name),
		ID:                 -1,
		AvailableInstances: -1,
		NUMADistance:       -1,
	}
	d.Driver, d.ID = splitName(name)

	// Legacy out-of-tree uacce kept its attributes in attrs/ and UADK v1
	// probes there first (§1.2, U-V1 pre_init_dev).
	attrDir := dir
	if st, err := os.Stat(filepath.Join(dir, "attrs")); err == nil && st.IsDir() {
		if _, err := os.Stat(filepath.Join(dir, "attrs", "api")); err == nil {
			attrDir = filepath.Join(dir, "attrs")
			d.LegacyAttrs = true
		}
	}
	fail := func(attr string, err error) (Device, error) {
		return Device{}, fmt.Errorf("uacce: device %s: %s: %w", name, attr, err)
	}

	api, err := readAttr(attrDir, "api")
	if err != nil {
		return fail("api", err)
	}
	d.API = api
	d.APIVersion, d.NoIOMMU = parseAPI(api)

	fl, err := readUint(attrDir, "flags")
	if err != nil {
		return fail("flags", err)
	}
	d.Flags = Flags(fl)

	algs, err := readAttr(attrDir, "algorithms")
	if err != nil {
		return fail("algorithms", err)
	}
	for _, l := range strings.Split(algs, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			d.Algorithms = append(d.Algorithms, l)
		}
	}

	// Optional attributes: absence is normal on some kernels (§1.2).
	if n, err := readInt(attrDir, "available_instances"); err == nil {
		d.AvailableInstances = max(n, 0)
	}
	if n, err := readInt(attrDir, "isolate"); err == nil {
		d.Isolated = n == 1
	}
	if n, err := readInt(attrDir, "region_mmio_size"); err == nil && n > 0 {
		d.MMIOSize = int64(n)
	}
	if n, err := readInt(attrDir, "region_dus_size"); err == nil && n > 0 {
		d.DUSSize = int64(n)
	}
	if n, err := readInt(attrDir, "node_id"); err == nil {
		d.HasNodeID, d.NodeID = true, n
	}
	if n, err := readInt(attrDir, "numa_distance"); err == nil {
		d.NUMADistance = n
	}
	// NUMA node as current UADK reads it: device/numa_node, -1 -> 0 (§1.2).
	if n, err := readInt(filepath.Join(dir, "device"), "numa_node"); err == nil {
		d.Node = max(n, 0)
	} else if d.HasNodeID {
		d.Node = max(d.NodeID, 0)
	}
	return d, nil
}

// ReadAvailable re-reads available_instances of d (it changes as any process
// opens or closes queues, §1.2). It returns -1 and an error when unreadable.
func ReadAvailable(d *Device) (int, error) {
	dir := d.SysfsPath
	if d.LegacyAttrs {
		dir = filepath.Join(dir, "attrs")
	}
	n, err := readInt(dir, "available_instances")
	if err != nil {
		return -1, fmt.Errorf("uacce: device %s: available_instances: %w", d.Name, err)
	}
	return max(n, 0), nil
}

// ReadIsolated re-reads the isolate attribute (false when absent).
func ReadIsolated(d *Device) bool {
	dir := d.SysfsPath
	if d.LegacyAttrs {
		dir = filepath.Join(dir, "attrs")
	}
	n, err := readInt(dir, "isolate")
	return err == nil && n == 1
}

// splitName strips a trailing "-<digits>" (U-WD wd_get_accel_name) and
// returns the number (U-UTIL wd_parse_dev_id), -1 when absent.
func splitName(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return name, -1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 || strings.ContainsAny(name[i+1:], "+-") {
		return name, -1
	}
	return name[:i], n
}

// parseAPI parses "hisi_qm_v<N>[_noiommu]" (§1.2, U-QM get_version_id).
func parseAPI(api string) (ver int, noIOMMU bool) {
	const prefix = "hisi_qm_v"
	s, noIOMMU := strings.CutSuffix(api, "_noiommu")
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, noIOMMU
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || n > 1000 {
		return 0, noIOMMU
	}
	return n, noIOMMU
}

func readAttr(dir, name string) (string, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAttrBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxAttrBytes {
		return "", fmt.Errorf("%w: %s longer than %d bytes", ErrBadAttr, name, maxAttrBytes)
	}
	return strings.TrimRight(string(b), "\n\t "), nil
}

func readInt(dir, name string) (int, error) {
	s, err := readAttr(dir, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < -1<<31 || n > 1<<40 {
		return 0, fmt.Errorf("%w: %s=%q", ErrBadAttr, name, s)
	}
	return int(n), nil
}

func readUint(dir, name string) (uint64, error) {
	s, err := readAttr(dir, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q", ErrBadAttr, name, s)
	}
	return n, nil
}
