// Package session is accelfs's algorithm layer (the role UADK's wd_comp and
// wd_sched play in C): it turns "compress/decompress this buffer with this
// algorithm" into work on an engine, and hides which engine did it.
//
// Terms
//
//   - engine: something that (de)compresses. Two kinds exist: the hardware
//     engine (one per uacce device, real hisi_zip or the emulated one from
//     accel/emu, driven through accel/qm queue pairs) and the CPU engine
//     (worker goroutines over package codec). Both sit behind the same
//     internal engine/queue interface, so the CPU is "just another engine".
//   - ctx: one queue of an engine plus the state this package keeps for it: a
//     tag table, credits, an in-flight count and a latency estimate. For the
//     hardware engine a ctx is one opened uacce queue (one hardware queue pair;
//     a scarce, system-wide budget per device). For the CPU engine it is a
//     bounded submission slot set served by the shared CPU workers. A ctx has a
//     fixed direction (compress or decompress) and a fixed mode (sync or async).
//   - region: the ctxs of one engine for one (NUMA node, mode, direction)
//     triple. Sessions are bound round-robin to a ctx of a region.
//   - session: what users hold: (algorithm, level, direction). Created with
//     Layer.NewSession; bound at creation to one sync and one async ctx per
//     engine that supports it (on the caller's NUMA node when that node has
//     ctxs, else on the nearest node that has: the distance table of
//     /sys/devices/system/node/nodeN/distance, Topology.Distance). Many sessions share one ctx. Sessions are cheap and safe for
//     concurrent use.
//   - tag: the 16-bit number a request carries through its ctx's queue. The
//     per-ctx tag table maps a completion's tag back to its pending request.
//   - credit: permission to have one more request in flight on a ctx; a ctx
//     has depth credits (a hardware queue accepts at most depth-1 SQEs, see
//     accel/qm). A submitter that finds no credit waits, honouring its
//     context.Context, or is routed to another ctx or engine.
//   - poller: a goroutine, locked to an OS thread pinned to the CPUs of one
//     NUMA node, that reaps completions from the ctxs of that node (async
//     ones, and sync ones so that a parked sync caller is woken), runs async
//     callbacks and wakes parked sync callers. Each ctx belongs to exactly one
//     poller (WithPollers per node for hardware ctxs, one per node for the CPU
//     engine's). A poller blocks when nothing is in flight or when its queues
//     notify completions (CPU engine, emulator); on a real device it yields
//     a few times, then arms every queue it owns (a priority-1 CQ doorbell,
//     qm.QP.Arm: hardware queues otherwise run in polling mode and raise no
//     interrupts, UADK's model) and parks in one poll(2) over all their
//     descriptors (uacce.WaitAny), so an idle or slow device never costs a
//     spinning core and no queue waits behind another. The thread stays
//     pinned and locked until the poller exits, so a pinned thread never
//     returns to the Go scheduler. Layer.Poll lets a caller poll the async ctxs itself as well.
//   - fallback: redoing or rerouting a request because the hardware path
//     failed or was unavailable: busy device at open, full queues, an error
//     status, a queue disabled by reset, a timeout. The request is redone on
//     another ctx or on the CPU; each cause is counted (Metrics.Fallbacks) and
//     logged once. Data correctness never depends on the device: any device
//     error, and any device result that is not exactly what the CPU codec
//     would accept (wrong length, input not fully consumed), is redone on the
//     CPU. A ctx whose queue failed (disabled, timed out) is retired and, after
//     WithRevive's delay, re-created with a new queue; a generation number per
//     queue keeps late completions of the old queue from touching requests of
//     the new one.
//
// # Modes
//
// Sync (Session.Do): submit, then poll the ctx while the expected completion
// time is short, park when it is long. The expected time comes from the
// request size, the bytes already queued ahead on the ctx and an EWMA of the
// nanoseconds per byte the ctx has shown recently; spinning is bounded by
// WithSpinLimit so a slow device never burns a core.
//
// Async (Session.Submit): submit with a callback and return. A poller (or
// Layer.Poll) reaps the completion and runs the callback in its goroutine.
// Layer.Run is the batch form used by the filesystem: submit every job, park,
// and wake when the last completion arrives.
//
// Engine choice per request: capability (what the device's algorithms list
// offers: deflate/zlib/gzip both ways, lz4 compression only — the CPU
// decodes the standard lz4 blocks; zstd/none always go to the CPU), size (requests smaller than the
// per-direction threshold go to the CPU, WithThreshold) and load: a request
// moves to the CPU when the device queue's expected completion (its observed
// ns/byte times the bytes queued on it) exceeds the CPU's (its measured
// compute ns/byte times its backlog per worker) by 1.5x, or when the
// hardware region is full, provided the CPU has a free credit
// (WithCPUOffload(false) turns both off).
//
// Sync ctxs accept as many requests in flight as they have credits (UADK
// holds a sync ctx for one request at a time, uadk-spec §4.4; here many
// sessions' sync callers share it, each waiting for its own tag).
//
// Trust: when a device's first queues are opened, New runs a self-test
// (selftest.go: a known corpus compressed on the device and decoded on the
// CPU, and the reverse); a device that fails is retired at once (fallback
// "self_test", an error log line, Metrics Idle says why). With
// WithVerifyCompression every device-compressed block is decoded on the CPU
// before delivery; a mismatch is redone on the CPU (fallback "bad_output").
// A completion whose CQE names another queue number is accepted and logged
// once, as the kernel and UADK ignore that field.
//
//   - idle: a hardware engine that gets no work and why (EngineMetrics.Idle):
//     it failed the self-test, opened no queue, or does not offer the
//     algorithm the store uses (Layer.Expect).
//
// Ownership: a Layer owns every goroutine it starts (pollers, CPU workers);
// Close stops admitting requests, waits for the in-flight ones, stops the
// goroutines and closes the queues. Close is idempotent.
package session
