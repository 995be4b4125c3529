package codec

import "errors"

// Errors returned by this package. Callers test them with errors.Is; the
// returned errors wrap them with the algorithm and the cause.
var (
	// ErrUnknownAlgo: an algorithm name or id this build does not know.
	ErrUnknownAlgo = errors.New("codec: unknown algorithm")
	// ErrBadLevel: a level outside the algorithm's range.
	ErrBadLevel = errors.New("codec: level out of range")
	// ErrCorrupt: the input does not decode to exactly the expected raw length.
	ErrCorrupt = errors.New("codec: corrupt input")
	// ErrTooLarge: a raw length above MaxRawLen was asked for.
	ErrTooLarge = errors.New("codec: block too large")
)
