package qm

import (
	"errors"
	"fmt"

	"github.com/accelfs/accelfs/accel/uacce"
)

// Errors of the queue protocol and of hisi_zip requests. ErrBusy,
// ErrQueueDisabled and ErrClosed are the uacce values, so errors.Is works
// whichever layer reported them.
var (
	// ErrBusy: the queue has depth-1 requests in flight (§2.5); poll and retry.
	ErrBusy = uacce.ErrBusy
	// ErrQueueDisabled: ds_tx or ds_rx is 1 (§2.2), or the device broke the
	// ring protocol (then also ErrProtocol). ds_tx alone makes Submit refuse
	// new requests while those in flight still complete; ds_rx or a protocol
	// error kills the queue (qm closes it) and every request in flight is
	// delivered failed with this error: redo them elsewhere.
	ErrQueueDisabled = uacce.ErrQueueDisabled
	// ErrClosed: the queue was closed; requests in flight at Close are
	// delivered by Poll with this error.
	ErrClosed = uacce.ErrClosed

	// ErrProtocol: a CQE or write-back contradicts the protocol (unknown
	// slot, wrong qp number, stale tag, produced > space ...). Wrapped
	// together with ErrQueueDisabled.
	ErrProtocol = errors.New("qm: device broke the queue protocol")
	// ErrBadSQE: an SQE or CQE could not be decoded.
	ErrBadSQE = errors.New("qm: malformed SQE")
	// ErrBadRequest: the request cannot be sent to this queue (empty or
	// > 8 MiB input, no output space, algorithm/direction mismatch, bad
	// zlib/gzip header on decompression input). Nothing was submitted.
	ErrBadRequest = errors.New("qm: bad request")
	// ErrOutputTooSmall: status 0x0e (compression), or decompression stopped
	// for lack of output space (ctx_st 1/2) (§3.2).
	ErrOutputTooSmall = errors.New("qm: output buffer too small")
	// ErrIncomplete: decompression consumed all input without reaching the
	// end of the stream (truncated or not block-mode input).
	ErrIncomplete = errors.New("qm: input ended before the end of the stream")
	// ErrHardware: the device reported an error status (see StatusError).
	ErrHardware = errors.New("qm: hardware error status")
)

// StatusError is a non-success status written back by the device.
// errors.Is(err, ErrHardware) is true.
type StatusError struct {
	Status uint16 // dw3[8:0]
	CtxSt  uint8  // ctx_dw0[3:0]
	Tag    uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("qm: hisi_zip status %#x (ctx_st %#x, tag %#x)", e.Status&statusCodeMask, e.CtxSt, e.Tag)
}

// Is makes StatusError match ErrHardware.
func (e *StatusError) Is(target error) bool { return target == ErrHardware }
