// Package uacce is accelfs's device-access layer: the role libwd plays in UADK.
// It finds Linux uacce accelerator devices in sysfs, chooses one for an
// algorithm and a NUMA node, and drives the life cycle of one hardware queue
// on the device's character node (/dev/<name>) exactly as the kernel ABI
// defines it. It knows nothing about ring protocols (accel/qm) or files.
//
// Facts and their sources are in ../shared/research/uadk-spec.md (relative to
// the repository); comments cite its sections (§1.2 …) and source keys
// (K-UACCE, U-WD …).
//
// Terms:
//
//   - device: one uacce instance such as hisi_zip-0, i.e. one PCI function of
//     an accelerator. Shared by every process; found under
//     /sys/class/uacce/<name> (§1.1, §1.2).
//   - queue, qp (queue pair), ctx: one hardware queue pair, created by one
//     open() of the device node and owned by that file descriptor. "qp" is the
//     kernel's word, "ctx" UADK's; this package says queue. A device has a
//     fixed budget of queues (available_instances); open fails with EBUSY
//     (ErrBusy) when it is used up (§1.7, §5.2).
//   - direction (qc_type): fixed per queue before START by QM_SET_QP_CTX;
//     0 = compress, 1 = decompress for hisi_zip (§1.5).
//   - region: a memory area of a queue mapped into the process: MMIO (the
//     doorbell page, page offset 0) and DUS (device user share: the SQ/CQ
//     rings and the status words, page offset 1) (§1.4).
//   - doorbell: a 64-bit store into the MMIO region that tells the device a
//     new SQ tail or CQ head (§2.5). Queue.Doorbell performs it.
//   - SQE, CQE, phase, tag: ring entries and their protocol; defined and used
//     by accel/qm, not here.
//   - node: NUMA node of the device, from <dev>/device/numa_node with -1
//     mapped to 0 as UADK does (§1.2).
//
// The Queue interface is what accel/qm drives. Two implementations exist:
// the real device queue in this package (Host.Open, Linux only) and the
// emulated hisi_zip queue in accel/emu. Provider abstracts "a set of devices
// that can be discovered and opened" over both. The real queue makes its
// system calls through a small kernel interface (kernel_linux.go), so the
// tests run the exact open/close sequence against a fake uacce kernel.
//
// Only SVA devices are opened (ErrNoSVA otherwise): requests carry plain
// process addresses, which a no-SVA device would take for IOVAs (§1.3, §4.5).
package uacce
