// Package qm is the HiSilicon QM queue protocol and the hisi_zip request
// format: the role libhisi_qm and UADK's hisi_comp driver play. It drives
// the SQ/CQ rings that live in a uacce queue's DUS region, rings doorbells
// through uacce.Queue, and encodes/decodes hisi_zip SQEs. It runs unchanged
// on a real device queue and on the emulated one (accel/emu).
//
// Every byte layout cites ../shared/research/uadk-spec.md by section and
// source key (K-QM = drivers/crypto/hisilicon/qm.c, U-QM = UADK
// drv/hisi_qm_udrv.c, U-ZIP = drv/hisi_comp.c ...).
//
// Terms:
//
//   - queue / qp / ctx: one hardware queue pair (see accel/uacce). QP is this
//     package's ring state for one; ZipQueue adds hisi_zip requests on top.
//   - SQ, SQE: submission queue of SQDepth entries of 128 bytes each at DUS
//     offset 0 (§2.2); an SQE is one request (§3.1).
//   - CQ, CQE: completion queue of 16-byte entries right after the SQ (§2.2,
//     §2.3). A CQE only names the SQ slot (sq_head) that finished: the
//     device writes the results back into that SQE.
//   - phase: bit 0 of CQE word 7. The device writes the current phase into
//     each CQE and flips it each time its CQ tail wraps; the driver expects
//     phase 1 on the first pass and flips its expectation when its head
//     wraps. An entry is new iff its phase equals the expectation (§2.4).
//   - doorbell: a 64-bit MMIO write telling the device a new SQ tail (cmd 0)
//     or CQ head (cmd 1); v1 and v2/v3 hardware encode it differently (§2.5).
//   - credit: at most SQDepth-1 SQEs may be in flight; beyond that Send
//     returns ErrBusy (§2.5).
//   - ds_tx / ds_rx: the last two u32s of the DUS region; 1 means the
//     kernel disabled sending / receiving (reset, CQ overflow, §2.2).
//   - DUS: device user share, the queue's shared memory region (§1.4).
//   - tag: an opaque 32-bit value in the SQE (dw13 in the v1 layout, dw26
//     in the v3 layout) that the device copies back unchanged; ZipQueue
//     uses 1<<31 | generation<<16 | table index to find the request (§3.3).
//   - poller: the one goroutine that calls Recv/Poll on a queue. Only one
//     poller per queue makes sense (U-QM: "only support one thread poll one
//     queue"); Poll serialises concurrent callers.
//
// Memory: SQEs carry raw buffer addresses the Go GC cannot see. ZipQueue
// keeps every in-flight request reachable in its tag table and pins its
// buffers with runtime.Pinner from Submit until the completion is consumed
// (or the request is failed after the queue died or was closed, at which
// point the device no longer touches them). Queues of the emulator also get
// every buffer registered through uacce.Mapper: a Go emulator cannot
// dereference a raw address, so it treats the address as a key into that
// registry (a real SVA device reads the virtual address directly).
package qm
