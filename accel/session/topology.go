package session

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxCPU bounds CPU numbers parsed from sysfs (no unbounded allocation from a
// malformed cpulist).
const maxCPU = 8192

// Node is one NUMA node: its id, the CPUs it holds and its distances.
type Node struct {
	ID   int
	CPUs []int
	// Distance is the node's row of the SLIT distance table
	// (nodeN/distance): Distance[i] is the distance to the i-th node of the
	// topology (sysfs lists them in node id order). nil when unknown.
	Distance []int
}

// Topology is the machine's NUMA layout as read from sysfs.
type Topology struct {
	Nodes []Node // sorted by ID, never empty
}

// ReadTopology reads <sysRoot>/devices/system/node/node*/cpulist. sysRoot is
// normally "/sys"; tests point it at a directory that models two nodes. When
// the directory is missing (no NUMA support) the result is one node 0 holding
// every CPU.
func ReadTopology(sysRoot string) (Topology, error) {
	dir := filepath.Join(sysRoot, "devices", "system", "node")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return singleNode(), nil
		}
		return Topology{}, fmt.Errorf("read %s: %w", dir, err)
	}
	var t Topology
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "node") {
			continue
		}
		id, err := strconv.Atoi(name[len("node"):])
		if err != nil || id < 0 || id > 4096 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name, "cpulist"))
		if err != nil {
			return Topology{}, fmt.Errorf("%w: %s: %v", ErrTopology, name, err)
		}
		cpus, err := ParseCPUList(string(b))
		if err != nil {
			return Topology{}, fmt.Errorf("%w: %s/cpulist: %v", ErrTopology, name, err)
		}
		// The distance table is optional: without it (or when it does not
		// fit the node count, checked below) nodes are ordered by id.
		var dist []int
		if b, err := os.ReadFile(filepath.Join(dir, name, "distance")); err == nil {
			dist, _ = parseDistances(string(b))
		}
		t.Nodes = append(t.Nodes, Node{ID: id, CPUs: cpus, Distance: dist})
	}
	if len(t.Nodes) == 0 {
		return singleNode(), nil
	}
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].ID < t.Nodes[j].ID })
	for i := range t.Nodes {
		if len(t.Nodes[i].Distance) != len(t.Nodes) {
			t.Nodes[i].Distance = nil
		}
	}
	return t, nil
}

// parseDistances parses a nodeN/distance row ("10 21 31\n"): at most 4096
// entries, each 0..255 (ACPI SLIT values are one byte).
func parseDistances(s string) ([]int, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 4096 {
		return nil, fmt.Errorf("distance row of %d entries", len(fields))
	}
	out := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 || v > 255 {
			return nil, fmt.Errorf("bad distance %q", f)
		}
		out[i] = v
	}
	return out, nil
}

// Distance returns the distance from node a to node b: the SLIT value when
// the table is known, else 10 for the same node and 20 otherwise (the
// kernel's LOCAL_DISTANCE / REMOTE_DISTANCE), so ties fall back to id order.
func (t Topology) Distance(a, b int) int {
	ib := -1
	for i, n := range t.Nodes {
		if n.ID == b {
			ib = i
		}
	}
	for _, n := range t.Nodes {
		if n.ID == a && ib >= 0 && n.Distance != nil {
			return n.Distance[ib]
		}
	}
	if a == b {
		return 10
	}
	return 20
}

// nearer orders node ids by distance from node, then by id.
func (t Topology) nearer(node int, ids []int) {
	sort.Slice(ids, func(i, j int) bool {
		di, dj := t.Distance(node, ids[i]), t.Distance(node, ids[j])
		if di != dj {
			return di < dj
		}
		return ids[i] < ids[j]
	})
}

func singleNode() Topology {
	n := Node{ID: 0}
	for i := 0; i < runtime.NumCPU(); i++ {
		n.CPUs = append(n.CPUs, i)
	}
	return Topology{Nodes: []Node{n}}
}

// ParseCPUList parses the kernel's cpulist format ("0-3,8,10-11\n"). An empty
// list is valid (a memory-only node).
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	var out []int
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad cpu %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("bad cpu range %q", part)
			}
		}
		if a < 0 || b < a || b >= maxCPU {
			return nil, fmt.Errorf("cpu range %q out of bounds", part)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// NodeOfCPU returns the node holding cpu, or the first node.
func (t Topology) NodeOfCPU(cpu int) int {
	for _, n := range t.Nodes {
		for _, c := range n.CPUs {
			if c == cpu {
				return n.ID
			}
		}
	}
	return t.Nodes[0].ID
}

// currentCPU returns the CPU the calling thread runs on (getcpu(2)), or 0.
func currentCPU() int {
	var cpu, node uint32
	_, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0)
	if e != 0 {
		return 0
	}
	return int(cpu)
}

// allowedCPUs returns the CPUs the calling thread may run on.
func allowedCPUs() unix.CPUSet {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		s.Fill()
	}
	return s
}

// pinThread pins the calling OS thread (the caller must hold
// runtime.LockOSThread and never unlock it) to the CPUs of n that are in
// allowed (the process's set, read once by New). It returns false, with no
// change, when none of them is allowed (containers, cgroups).
func pinThread(n *Node, allowed *unix.CPUSet) (bool, error) {
	var set unix.CPUSet
	for _, c := range n.CPUs {
		if c < 1024 && allowed.IsSet(c) {
			set.Set(c)
		}
	}
	if set.Count() == 0 {
		return false, nil
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return false, err
	}
	return true, nil
}

// threadCPUs lists the CPUs the calling thread may run on.
func threadCPUs() []int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return nil
	}
	var out []int
	for c := 0; c < 1024; c++ {
		if s.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
