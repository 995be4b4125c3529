package uacce

import "errors"

// Errors returned by this package (and by accel/qm and accel/emu, which reuse
// them so callers can test with errors.Is whatever layer produced them). They
// are always wrapped with context (device name, operation).
var (
	// ErrNoDevice: no uacce device matches (none present, wrong algorithm,
	// node or name, device node missing, or uacce unsupported on this OS).
	ErrNoDevice = errors.New("uacce: no such device")

	// ErrBusy: the device has no free queue (open returned EBUSY, §1.7), or a
	// queue has depth-1 requests in flight and cannot take more (§2.5).
	ErrBusy = errors.New("uacce: device or queue busy")

	// ErrIsolated: the device is isolated (sysfs isolate = 1) and must not be
	// used (§1.2, U-WD get_dev_info).
	ErrIsolated = errors.New("uacce: device isolated")

	// ErrQueueDisabled: the kernel (or the emulator) disabled the queue by
	// setting the ds_tx / ds_rx status word to 1 (reset, stop, CQ overflow,
	// hardware error, §2.2). The queue must be closed and re-created.
	ErrQueueDisabled = errors.New("uacce: queue disabled by device")

	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("uacce: queue closed")

	// ErrNoSVA: the device did not negotiate SVA (flags bit 0). Its SQEs
	// would need IOVAs from the SS region or a mapped memory pool (§4.5),
	// which accelfs does not implement; putting process addresses in SQEs
	// would make the device DMA to the wrong memory. Returned wrapped
	// together with ErrNoDevice.
	ErrNoSVA = errors.New("uacce: device without SVA (no-SVA mode not supported)")

	// ErrBadAttr: a sysfs attribute could not be parsed.
	ErrBadAttr = errors.New("uacce: bad sysfs attribute")
)
