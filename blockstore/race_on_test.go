//go:build race

package blockstore

// raceEnabled is true when the race detector is on: long random tests run
// fewer operations (they stay meaningful; the detector slows them ~10x).
const raceEnabled = true
