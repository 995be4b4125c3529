//go:build amd64 || arm64

package uacce

// FullBarrier orders every earlier memory access of this CPU before every
// later one, for all observers including DMA masters: MFENCE on amd64, DSB SY
// on arm64 (UADK's mb(), used between SQE writes and the doorbell, §2.5).
// Implemented in barrier_$GOARCH.s.
//
//go:noescape
func FullBarrier()
