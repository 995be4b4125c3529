// Package emu is an emulated HiSilicon ZIP (hisi_zip) device behind the
// accel/uacce queue interface, in the spirit of the kernel's software RDMA
// device (rxe): the accel/qm code that runs against it is the code that
// would run on a Kunpeng server. Facts: ../shared/research/uadk-spec.md §6
// (what an emulation must reproduce) and §1–§3.
//
// What is emulated:
//
//   - discovery: New writes <SysfsRoot>/hisi_zip-<N>/ with api, flags,
//     algorithms, available_instances, region_mmio_size, region_dus_size
//     (computed as the kernel does, §1.4, §2.2), isolate, isolate_strategy
//     and device/numa_node, so uacce.Discover runs on it unchanged.
//   - queue budget: Options.Queues queues per device shared by every opener
//     in the process (Device.Open returns ErrBusy when none is left);
//     available_instances follows opens and closes.
//   - queue: the DUS region with the exact byte layout (SQ, CQ, status page
//     with ds_rx/ds_tx), an MMIO page whose doorbell writes are decoded and
//     validated (bad offset, qn or index, a CQ head past written entries or
//     an SQ tail lapping unfetched SQEs = hardware error = queue disabled).
//   - engine: one goroutine per queue consumes that queue's SQEs in order up
//     to the doorbell tail, (de)compresses (compression with codec/, raw
//     deflate body plus the zlib/gzip trailer computed with hash/adler32 and
//     hash/crc32; decompression with a streaming inflater, since the device
//     must report bytes consumed and does not know the output size), writes
//     the results into the SQE slot and then the CQE with the current phase
//     (atomic store of the phase word after the write-back).
//   - model: as fast as the CPU by default; Options.Model adds per-request
//     latency and device throughput (HisiZipModel has §5.1's figures);
//     EngineNoop completes requests without touching data (overhead
//     benchmarks).
//   - profiles: WithProfile sets the api version and the algorithms list of
//     a real generation (kunpeng920 = v2 "zlib gzip", the default of
//     --accel emu; kunpeng930 = v3 + deflate, lz77_zstd; v3-lz4 = v3 + lz4).
//   - faults: Device.SetFaults (error status, output too small, late
//     completions, queue disabled mid-request, corrupted output, CQEs that
//     name another qn), Queue.Disable (ds_tx/ds_rx),
//     Device.Isolate, Queue.SetLatency (reordering across queues).
//
// Addresses: a Go program cannot safely read memory at an arbitrary address,
// so the emulated device resolves SQE addresses through a registry that
// accel/qm fills via uacce.Mapper (Map before the doorbell, Unmap after the
// completion). An unregistered address is a translation fault (status
// StatusTranslation). Unmap waits while the engine is using the buffer, so
// after it returns the device never touches it again.
//
// lz4 is emulated for compression only, as the device offers it (a
// standard lz4 block, no header or trailer).
//
// Not emulated: stateful (stream) requests, SGL buffers, lz4
// decompression and lz77 algorithms (status StatusUnsupported), cross-process budget sharing, the
// SS region of no-SVA mode, page-fault penalties.
//
// Terms (queue, qp, ctx, SQE, CQE, phase, doorbell, DUS, tag) are defined in
// accel/uacce and accel/qm.
package emu
