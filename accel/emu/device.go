package emu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
)

// EngineMode selects what the emulated cores do with a request.
type EngineMode int

const (
	// EngineReal (de)compresses for real (codec/ and compress/flate).
	EngineReal EngineMode = iota
	// EngineNoop completes every request at once without touching its
	// buffers (consumed = input length, produced = 0, success status): for
	// measuring the queue protocol's own overhead.
	EngineNoop
)

// Model is the throughput/latency model. The zero value means "as fast as
// the CPU": a completion is posted as soon as the work is done.
type Model struct {
	// Latency is the minimum time from SQ doorbell to CQE per request.
	Latency time.Duration
	// CompressBps / DecompressBps are device-wide input bytes per second,
	// shared by every queue of that direction (0 = unlimited).
	CompressBps   float64
	DecompressBps float64
}

// HisiZipModel returns figures shaped after the published hisi_zip v2
// numbers (§5.1): ≈15 µs per request at depth 1 (derived from 556 MB/s with
// one 8 KiB request in flight) and ≈7 GB/s compression throughput with many
// in flight. No published decompression figure for the device exists; the
// same 7 GB/s is used.
func HisiZipModel() Model {
	return Model{Latency: 15 * time.Microsecond, CompressBps: 7e9, DecompressBps: 7e9}
}

// Options configure one emulated hisi_zip device. Zero values mean defaults.
type Options struct {
	// SysfsRoot is the directory that plays /sys/class/uacce: the device's
	// attributes are written to SysfsRoot/hisi_zip-<ID>/. Required.
	SysfsRoot string
	// ID is the <id> of the name hisi_zip-<id>.
	ID int
	// Node is written to device/numa_node (-1 is allowed; Discover maps it to 0).
	Node int
	// APIVersion: 1, 2 (default) or 3 -> api "hisi_qm_v<N>".
	APIVersion int
	// Algorithms (default zlib, gzip, deflate: a test device; WithProfile
	// sets the list a real generation publishes). zlib, gzip, deflate and
	// lz4 compression are implemented; others (lz77_zstd) are only listed.
	Algorithms []string
	// Queues is the queue budget shared by every opener (default 64, the
	// hisi_zip PF default pf_q_num, §2.1).
	Queues int
	// PageSize for region sizes (default os.Getpagesize()).
	PageSize int
	// Depth is the SQ/CQ depth SET_QP_INFO reports (default 1024, 2..1024
	// here; §2.1).
	Depth int
	// OldKernel makes SET_QP_INFO unsupported (EINVAL): depth is then 1024
	// and QueueInfo.InfoDefaulted is set (§1.5).
	OldKernel bool
	// Flags is written to the flags attribute (default 1 = SVA).
	Flags uint32
	// NoSVA writes flags without the SVA bit; Open then refuses the device
	// with ErrNoSVA as uacce.Host does (the emulator, like accelfs, only
	// models SVA).
	NoSVA bool
	// Level is the codec level used for compression (0 = codec default).
	Level int
	// Engine selects real work or the no-op engine.
	Engine EngineMode
	// Model is the throughput/latency model (zero = as fast as the CPU).
	Model Model
	// Seed seeds the fault-injection random source (0 = fixed seed 1).
	Seed uint64
}

// Faults are injected device-wide; set them with Device.SetFaults at any time.
type Faults struct {
	// ErrorRate is the probability that a request completes with
	// ErrorStatus instead of being processed.
	ErrorRate float64
	// ErrorEvery makes every N-th request (device-wide count) fail with
	// ErrorStatus (0 = off).
	ErrorEvery int
	// ErrorStatus is the injected status code (default 0x0f, input DIF error).
	ErrorStatus uint8
	// TooSmallRate is the probability of status 0x0e (output too small).
	TooSmallRate float64
	// LateRate is the probability that a completion is delayed by LateBy
	// (which also delays the requests behind it on the same queue).
	LateRate float64
	LateBy   time.Duration
	// DisableAfter disables (ds_tx = ds_rx = 1) the queue that processes the
	// N-th request from now on, before that request completes (0 = off).
	DisableAfter int
	// CorruptRate is the probability that a successful request's output
	// has one byte flipped (status still success): a device emitting bad
	// streams, which only a CPU check of the output catches.
	CorruptRate float64
	// WrongQN makes every CQE carry another queue number in sq_num, as a
	// VF may (the kernel and UADK ignore the field, uadk-spec §2.3).
	WrongQN bool
}

// Stats counts what the device did.
type Stats struct {
	Requests   int64 // SQEs processed
	BytesIn    int64
	BytesOut   int64
	Injected   int64 // requests completed with an injected fault
	HWErrors   int64 // malformed doorbells, CQ overflows, translation faults
	BusyOpens  int64 // opens refused for lack of queues
	OpenQueues int
	Available  int
}

// Device is one emulated hisi_zip device: a sysfs entry plus the queue
// budget and engines. It implements uacce.Provider for its own entry.
type Device struct {
	opts     Options
	name     string
	api      string
	sysfsDir string
	mmioSize int
	dusSize  int
	layout   qm.Layout

	mu       sync.Mutex // protects queues, freeIDs, isolated, busy clock, faults, rng, and the sysfs writes
	queues   map[uint16]*Queue
	freeIDs  []uint16
	isolated bool
	closed   bool
	faults   Faults
	rng      *rand.Rand
	nreq     int64        // requests seen (for ErrorEvery / DisableAfter)
	disableN int64        // nreq value at which to disable (0 = off)
	freeAt   [2]time.Time // per direction: when the modelled cores are next free

	requests, bytesIn, bytesOut, injected, hwErrors, busyOpens atomic.Int64
	wrongQN                                                    atomic.Bool // Faults.WrongQN, read by postCQE without d.mu
}

var _ uacce.Provider = (*Device)(nil)

// New creates the device and writes its sysfs entry.
func New(opts Options) (*Device, error) {
	if opts.SysfsRoot == "" {
		return nil, errors.New("emu: Options.SysfsRoot is required")
	}
	if opts.APIVersion == 0 {
		opts.APIVersion = 2
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = []string{"zlib", "gzip", "deflate"}
	}
	if opts.Queues == 0 {
		opts.Queues = 64
	}
	if opts.PageSize == 0 {
		opts.PageSize = os.Getpagesize()
	}
	if opts.Depth == 0 || opts.OldKernel {
		opts.Depth = uacce.DefaultDepth
	}
	if opts.Flags == 0 && !opts.NoSVA {
		opts.Flags = uint32(uacce.FlagSVA)
	}
	if opts.NoSVA {
		opts.Flags &^= uint32(uacce.FlagSVA)
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Queues < 1 || opts.Queues > 1024 || opts.Depth < 2 || opts.Depth > 1024 || opts.APIVersion < 1 || opts.APIVersion > 3 {
		return nil, fmt.Errorf("emu: bad options (queues %d, depth %d, api v%d)", opts.Queues, opts.Depth, opts.APIVersion)
	}
	lay, err := qm.DUSLayout(qm.SQESize, opts.Depth, opts.Depth, opts.PageSize)
	if err != nil {
		return nil, fmt.Errorf("emu: %w", err)
	}
	d := &Device{
		opts:     opts,
		name:     "hisi_zip-" + strconv.Itoa(opts.ID),
		api:      "hisi_qm_v" + strconv.Itoa(opts.APIVersion),
		dusSize:  lay.Size,
		layout:   lay,
		queues:   map[uint16]*Queue{},
		rng:      rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)),
		disableN: 0,
	}
	d.faults.ErrorStatus = qm.StatusInDIF
	// MMIO region size per hisi_qm_uacce_mmap limits (§1.4): one page on
	// v1, 1 + 0x1000/PAGE_SIZE pages on v2/v3 (no doorbell isolation).
	if opts.APIVersion == 1 {
		d.mmioSize = opts.PageSize
	} else {
		d.mmioSize = (1 + qm.DoorbellOffV2/opts.PageSize) * opts.PageSize
	}
	d.sysfsDir = filepath.Join(opts.SysfsRoot, d.name)
	for i := opts.Queues - 1; i >= 0; i-- {
		d.freeIDs = append(d.freeIDs, uint16(i))
	}
	if err := d.writeSysfs(); err != nil {
		return nil, err
	}
	return d, nil
}

// Name is the device name, e.g. "hisi_zip-0".
func (d *Device) Name() string { return d.name }

// SysfsRoot is the directory to pass to uacce.Discover.
func (d *Device) SysfsRoot() string { return d.opts.SysfsRoot }

// Discover runs uacce.Discover on the device's sysfs root (which may list
// other emulated devices written to the same root).
func (d *Device) Discover() ([]uacce.Device, error) { return uacce.Discover(d.opts.SysfsRoot) }

// SetFaults replaces the injected faults.
func (d *Device) SetFaults(f Faults) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f.ErrorStatus == 0 {
		f.ErrorStatus = qm.StatusInDIF
	}
	d.faults = f
	d.wrongQN.Store(f.WrongQN)
	d.disableN = 0
	if f.DisableAfter > 0 {
		d.disableN = d.nreq + int64(f.DisableAfter)
	}
}

// Isolate marks the device isolated (sysfs isolate = 1): further opens fail
// with ErrIsolated and every open queue is disabled (ds_tx = ds_rx = 1), as
// the error-recovery path that isolates a device resets it (§1.2, §2.2).
func (d *Device) Isolate() error {
	d.mu.Lock()
	d.isolated = true
	qs := d.openQueuesLocked()
	err := writeAttr(filepath.Join(d.sysfsDir, "isolate"), "1")
	d.mu.Unlock()
	for _, q := range qs {
		q.Disable(true, true)
	}
	return err
}

// Queue returns the open queue with that qp id, or nil.
func (d *Device) Queue(qpid uint16) *Queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queues[qpid]
}

func (d *Device) openQueuesLocked() []*Queue {
	qs := make([]*Queue, 0, len(d.queues))
	for _, q := range d.queues {
		qs = append(qs, q)
	}
	return qs
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	open, avail := len(d.queues), len(d.freeIDs)
	d.mu.Unlock()
	return Stats{
		Requests: d.requests.Load(), BytesIn: d.bytesIn.Load(), BytesOut: d.bytesOut.Load(),
		Injected: d.injected.Load(), HWErrors: d.hwErrors.Load(), BusyOpens: d.busyOpens.Load(),
		OpenQueues: open, Available: avail,
	}
}

// Open creates a queue following the kernel life cycle (§1.7, §6.2): take
// a queue from the budget (ErrBusy when none is left), set the direction
// (SET_QP_CTX accepts only 0/1), report the geometry (SET_QP_INFO, or the
// old-kernel defaults), allocate the regions with the exact DUS layout
// (zeroed CQ, cleared status words) and start the engine.
func (d *Device) Open(dev uacce.Device, dir uacce.Direction) (uacce.Queue, error) {
	if dev.Name != d.name {
		return nil, fmt.Errorf("emu: %s cannot open %q: %w", d.name, dev.Name, uacce.ErrNoDevice)
	}
	if dir != uacce.Compress && dir != uacce.Decompress {
		return nil, fmt.Errorf("emu: %s: QM_SET_QP_CTX qc_type %d: EINVAL", d.name, dir)
	}
	if d.opts.Flags&uint32(uacce.FlagSVA) == 0 {
		return nil, fmt.Errorf("emu: open %s (flags %d): %w: %w", d.name, d.opts.Flags, uacce.ErrNoSVA, uacce.ErrNoDevice)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, fmt.Errorf("emu: %s: %w", d.name, uacce.ErrNoDevice)
	case d.isolated:
		return nil, fmt.Errorf("emu: open %s: %w", d.name, uacce.ErrIsolated)
	case len(d.freeIDs) == 0:
		d.busyOpens.Add(1)
		return nil, fmt.Errorf("emu: open %s: all %d queues busy: %w", d.name, d.opts.Queues, uacce.ErrBusy)
	}
	id := d.freeIDs[len(d.freeIDs)-1]
	d.freeIDs = d.freeIDs[:len(d.freeIDs)-1]
	q := newQueue(d, id, dir)
	d.queues[id] = q
	if err := writeAttr(filepath.Join(d.sysfsDir, "available_instances"), strconv.Itoa(len(d.freeIDs))); err != nil {
		delete(d.queues, id)
		d.freeIDs = append(d.freeIDs, id)
		return nil, err
	}
	q.start()
	return q, nil
}

// release returns a closed queue's id to the budget.
func (d *Device) release(q *Queue) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queues[q.id] != q {
		return
	}
	delete(d.queues, q.id)
	d.freeIDs = append(d.freeIDs, q.id)
	_ = writeAttr(filepath.Join(d.sysfsDir, "available_instances"), strconv.Itoa(len(d.freeIDs)))
}

// Close closes every open queue (waiting for their engines) and makes the
// device refuse new opens. The sysfs entry is left in place.
func (d *Device) Close() error {
	d.mu.Lock()
	d.closed = true
	qs := d.openQueuesLocked()
	d.mu.Unlock()
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// plan is the device's decision for one request: fault and timing.
type plan struct {
	status  uint8 // injected status, 0 = none
	disable bool
	corrupt bool // flip one output byte
	due     time.Time
}

// schedule decides faults and the completion time of a request of n input
// bytes that arrived at arrival on a queue of direction dir.
func (d *Device) schedule(dir uacce.Direction, n int, arrival time.Time, extra time.Duration) plan {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nreq++
	f := d.faults
	var p plan
	switch {
	case f.ErrorEvery > 0 && d.nreq%int64(f.ErrorEvery) == 0,
		f.ErrorRate > 0 && d.rng.Float64() < f.ErrorRate:
		p.status = f.ErrorStatus
	case f.TooSmallRate > 0 && d.rng.Float64() < f.TooSmallRate:
		p.status = qm.StatusDstLenOut
	}
	p.corrupt = f.CorruptRate > 0 && d.rng.Float64() < f.CorruptRate
	if d.disableN > 0 && d.nreq >= d.disableN {
		p.disable = true
		d.disableN = 0
	}
	m := d.opts.Model
	due := arrival.Add(m.Latency)
	bps := m.CompressBps
	if dir == uacce.Decompress {
		bps = m.DecompressBps
	}
	if bps > 0 {
		start := arrival
		if d.freeAt[dir].After(start) {
			start = d.freeAt[dir]
		}
		d.freeAt[dir] = start.Add(time.Duration(float64(n) / bps * 1e9))
		if d.freeAt[dir].After(due) {
			due = d.freeAt[dir]
		}
	}
	if f.LateRate > 0 && d.rng.Float64() < f.LateRate {
		due = due.Add(f.LateBy)
	}
	p.due = due.Add(extra)
	return p
}

// System is a set of emulated devices sharing one sysfs root; it implements
// uacce.Provider for all of them.
type System struct {
	root string
	devs map[string]*Device
}

var _ uacce.Provider = (*System)(nil)

// NewSystem creates one device per Options under root (each Options'
// SysfsRoot is set to root; IDs must differ).
func NewSystem(root string, opts ...Options) (*System, error) {
	s := &System{root: root, devs: map[string]*Device{}}
	for _, o := range opts {
		o.SysfsRoot = root
		d, err := New(o)
		if err != nil {
			s.Close()
			return nil, err
		}
		if _, dup := s.devs[d.name]; dup {
			s.Close()
			return nil, fmt.Errorf("emu: duplicate device %s", d.name)
		}
		s.devs[d.name] = d
	}
	return s, nil
}

// Device returns the device with that name, or nil.
func (s *System) Device(name string) *Device { return s.devs[name] }

// Discover lists the devices (uacce.Discover on the shared root).
func (s *System) Discover() ([]uacce.Device, error) { return uacce.Discover(s.root) }

// Open opens a queue on the named device.
func (s *System) Open(dev uacce.Device, dir uacce.Direction) (uacce.Queue, error) {
	d := s.devs[dev.Name]
	if d == nil {
		return nil, fmt.Errorf("emu: no emulated device %q: %w", dev.Name, uacce.ErrNoDevice)
	}
	return d.Open(dev, dir)
}

// Close closes every device.
func (s *System) Close() error {
	var errs []error
	for _, d := range s.devs {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}
