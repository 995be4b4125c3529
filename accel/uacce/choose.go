package uacce

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Want says what Choose looks for.
type Want struct {
	// Algorithm that must be one whole line of the device's algorithms
	// ("deflate", "zlib", "gzip", ...). Empty matches any device.
	Algorithm string
	// Node is the caller's NUMA node; devices on it are preferred, then the
	// nearest node by Distance.
	Node int
	// Distance returns the NUMA distance between two nodes (smaller is
	// nearer). nil uses 10 for the same node and 20 otherwise, the kernel's
	// default SLIT values; NodeDistances reads the real table.
	Distance func(from, to int) int
	// Refresh re-reads available_instances from sysfs before choosing
	// (U-WD wd_get_avail_ctx reads it on demand); false uses the snapshot.
	Refresh bool
	// AllowNoSVA also considers devices without SVA. They cannot be opened
	// (ErrNoSVA), so the default skips them.
	AllowNoSVA bool
}

// Choose picks the device for w the way UADK v2 does (U-WD
// wd_find_dev_by_numa, §5.2): skip isolated devices, devices without the
// algorithm, without SVA (unless AllowNoSVA) or without free queues; among the rest take the nearest node, and
// on that node the device with the most available_instances (ties: lowest
// name). Errors: ErrNoDevice when no usable (SVA) device has the algorithm, ErrIsolated
// when all that have it are isolated, ErrBusy when all of those have no free
// queue. Devices whose available_instances is unknown (-1) count as having
// one free queue: the open will tell.
func Choose(devs []Device, w Want) (Device, error) {
	dist := w.Distance
	if dist == nil {
		dist = defaultDistance
	}
	var (
		best               *Device
		bestDist, bestFree int
		sawAlg, sawUsable  bool
	)
	for i := range devs {
		d := &devs[i]
		if w.Algorithm != "" && !d.HasAlgorithm(w.Algorithm) {
			continue
		}
		if !d.SVA() && !w.AllowNoSVA {
			continue
		}
		sawAlg = true
		if d.Isolated || (w.Refresh && ReadIsolated(d)) {
			continue
		}
		sawUsable = true
		free := d.AvailableInstances
		if w.Refresh {
			if n, err := ReadAvailable(d); err == nil {
				free = n
			}
		}
		if free < 0 {
			free = 1
		}
		if free == 0 {
			continue
		}
		dd := dist(w.Node, d.Node)
		if best == nil || dd < bestDist || (dd == bestDist && free > bestFree) {
			best, bestDist, bestFree = d, dd, free
		}
	}
	switch {
	case best != nil:
		c := *best
		c.AvailableInstances = bestFree
		return c, nil
	case !sawAlg:
		return Device{}, fmt.Errorf("uacce: no device with algorithm %q: %w", w.Algorithm, ErrNoDevice)
	case !sawUsable:
		return Device{}, fmt.Errorf("uacce: every device with algorithm %q is isolated: %w", w.Algorithm, ErrIsolated)
	default:
		return Device{}, fmt.Errorf("uacce: no free queue on any device with algorithm %q (node %d): %w", w.Algorithm, w.Node, ErrBusy)
	}
}

func defaultDistance(a, b int) int {
	if a == b {
		return 10
	}
	return 20
}

// NodeDistances reads the NUMA distance table from
// <root>/node<N>/distance (root defaults to /sys/devices/system/node) and
// returns a distance function for Want.Distance. Unknown pairs fall back to
// 10 (same node) / 20 (other node).
func NodeDistances(root string) (func(from, to int) int, error) {
	if root == "" {
		root = "/sys/devices/system/node"
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("uacce: numa distances: %w", err)
	}
	table := map[[2]int]int{}
	for _, e := range ents {
		ns, ok := strings.CutPrefix(e.Name(), "node")
		if !ok {
			continue
		}
		from, err := strconv.Atoi(ns)
		if err != nil || from < 0 || from > 4096 {
			continue
		}
		s, err := readAttr(filepath.Join(root, e.Name()), "distance")
		if err != nil {
			continue
		}
		for to, f := range strings.Fields(s) {
			if v, err := strconv.Atoi(f); err == nil && to <= 4096 {
				table[[2]int{from, to}] = v
			}
		}
	}
	return func(from, to int) int {
		if v, ok := table[[2]int{from, to}]; ok {
			return v
		}
		return defaultDistance(from, to)
	}, nil
}
