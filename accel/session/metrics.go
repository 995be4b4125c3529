package session

import (
	"math/bits"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// Fallback causes (keys of Metrics.Fallbacks).
const (
	CauseBusyAtOpen     = "busy_at_open"     // opening a hardware queue failed with EBUSY (counted per queue)
	CauseOpenError      = "open_error"       // opening a hardware queue failed otherwise (counted per queue)
	CauseQueueFull      = "queue_full"       // hardware region full, request routed to the CPU
	CauseLoad           = "load"             // the device queue would finish later than the CPU, request routed to the CPU
	CauseErrorStatus    = "error_status"     // device returned an error status, request redone on the CPU
	CauseQueueDisabled  = "queue_disabled"   // queue disabled (reset, ds_tx/ds_rx), pending requests redone
	CauseTimeout        = "timeout"          // no completion within the timeout, ctx retired, requests redone
	CauseNoCtx          = "no_ctx"           // no live hardware ctx for the request, routed to the CPU
	CauseRejected       = "rejected"         // the hardware queue refused the request (size, header), run on the CPU
	CauseOutputTooSmall = "output_too_small" // compressed output did not fit (incompressible block), redone on the CPU
	CauseSelfTest       = "self_test"        // a device failed its self-test at start and was taken out of service
	CauseBadOutput      = "bad_output"       // WithVerifyCompression: device output did not decode to the input, redone on the CPU
)

// latBuckets is the number of latency histogram buckets: bucket i counts
// latencies < 2^i µs (the last bucket is everything longer).
const latBuckets = 24

type dirCounters struct {
	requests, bytesIn, bytesOut, errors atomic.Uint64
}

type engineMetrics struct {
	dir      [2]dirCounters
	inflight atomic.Int64
	lat      [latBuckets]atomic.Uint64
	polled   atomic.Uint64 // sync requests that completed while their caller polled
	parked   atomic.Uint64 // sync requests whose caller parked
	revived  atomic.Uint64 // ctxs re-created after a failure
}

func (m *engineMetrics) record(d Direction, in, out int, err error, lat time.Duration) {
	c := &m.dir[d&1]
	c.requests.Add(1)
	c.bytesIn.Add(uint64(in))
	if err != nil {
		c.errors.Add(1)
	} else {
		c.bytesOut.Add(uint64(out))
	}
	us := uint64(lat / time.Microsecond)
	b := bits.Len64(us)
	if b >= latBuckets {
		b = latBuckets - 1
	}
	m.lat[b].Add(1)
}

// DirMetrics are one direction's counters.
type DirMetrics struct {
	Requests uint64 `json:"requests"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	Errors   uint64 `json:"errors"`
}

// EngineMetrics are one engine's counters. The top-level numbers are the sum
// of both directions. Requests counts every request the engine finished,
// including those that failed on a hardware engine (Errors) and were then
// redone on the CPU (where they count again); BytesOut counts successful
// output only.
type EngineMetrics struct {
	Requests uint64 `json:"requests"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	Errors   uint64 `json:"errors"`
	InFlight int64  `json:"in_flight"`
	Ctxs     int    `json:"ctxs"`
	// SyncPolled / SyncParked: synchronous requests that completed while
	// the caller polled, and those whose caller parked (the adaptive
	// poll/park switch at work).
	SyncPolled uint64 `json:"sync_polled"`
	SyncParked uint64 `json:"sync_parked"`
	// Revived counts ctxs re-created with a new queue after they failed.
	Revived uint64 `json:"revived"`
	// Idle says why a hardware engine gets no work ("" when it may): it
	// failed its self-test, opened no queue, or does not offer the store's
	// algorithm (Layer.Expect).
	Idle       string     `json:"idle,omitempty"`
	Compress   DirMetrics `json:"compress"`
	Decompress DirMetrics `json:"decompress"`
	// LatencyUS maps "lt_N" (N microseconds, a power of two) to the number
	// of requests that completed in less than N µs and at least N/2 ("lt_1":
	// under 1 µs; "ge_N" for the last, open bucket); only non-empty buckets
	// are present. (No "<" in keys: encoding/json would escape it.)
	LatencyUS map[string]uint64 `json:"latency_us,omitempty"`
}

// Metrics is a snapshot of the layer's counters; its JSON form is what
// `accelfs stats --json` shows under "engines" and "fallbacks".
type Metrics struct {
	Engines   map[string]EngineMetrics `json:"engines"`
	Fallbacks map[string]uint64        `json:"fallbacks"`
}

func (m *engineMetrics) snapshot(ctxs int) EngineMetrics {
	var e EngineMetrics
	get := func(c *dirCounters) DirMetrics {
		return DirMetrics{Requests: c.requests.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Errors: c.errors.Load()}
	}
	e.Compress, e.Decompress = get(&m.dir[Compress]), get(&m.dir[Decompress])
	e.Requests = e.Compress.Requests + e.Decompress.Requests
	e.BytesIn = e.Compress.BytesIn + e.Decompress.BytesIn
	e.BytesOut = e.Compress.BytesOut + e.Decompress.BytesOut
	e.Errors = e.Compress.Errors + e.Decompress.Errors
	e.InFlight = m.inflight.Load()
	e.Ctxs = ctxs
	e.SyncPolled, e.SyncParked = m.polled.Load(), m.parked.Load()
	e.Revived = m.revived.Load()
	for i := range m.lat {
		if n := m.lat[i].Load(); n > 0 {
			if e.LatencyUS == nil {
				e.LatencyUS = map[string]uint64{}
			}
			key := "lt_" + strconv.FormatUint(uint64(1)<<i, 10)
			if i == latBuckets-1 {
				key = "ge_" + strconv.FormatUint(uint64(1)<<(i-1), 10)
			}
			e.LatencyUS[key] = n
		}
	}
	return e
}

// FallbackCauses returns the cause names in a stable order.
func (m Metrics) FallbackCauses() []string {
	var ks []string
	for k := range m.Fallbacks {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func itoa(i int) string { return strconv.Itoa(i) }
