package session

import (
	"errors"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
)

// errDisabled is what an engine queue returns (wrapped) when the queue was
// disabled (reset, ds_tx/ds_rx set); hw.go also maps the uacce error.
var errDisabled = errors.New("session: queue disabled")

// isDisabled reports whether a queue error means the queue was disabled
// rather than a per-request error status.
func isDisabled(err error) bool {
	return errors.Is(err, ErrCtxDead) || errors.Is(err, errDisabled) ||
		errors.Is(err, uacce.ErrQueueDisabled) || errors.Is(err, uacce.ErrClosed)
}

// errBusy is what an engine returns when a device has no free queue.
var errBusy = errors.New("session: device busy")

// isBusy reports whether an open error means "no free queue" (EBUSY).
func isBusy(err error) bool { return errors.Is(err, errBusy) }

// errRejected: the hardware queue refused this particular request (a size or
// header it cannot take); the request runs on the CPU, the ctx stays live.
var errRejected = errors.New("session: request rejected by the hardware queue")

// isTooSmall reports a compression whose output did not fit the space given
// to the device (status 0x0e): incompressible data, not a device fault.
func isTooSmall(err error) bool { return errors.Is(err, qm.ErrOutputTooSmall) }
