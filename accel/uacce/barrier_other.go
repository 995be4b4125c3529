//go:build !amd64 && !arm64

package uacce

import "sync/atomic"

var barrierWord atomic.Uint64

// FullBarrier falls back to a sequentially consistent atomic read-modify-write,
// which is a full barrier between CPUs; whether it orders against a device on
// this architecture is not established (no hardware here).
func FullBarrier() { barrierWord.Add(1) }
