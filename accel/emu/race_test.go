//go:build race

package emu

// raceEnabled shrinks data volumes: the race detector makes the codecs
// ~10x slower, and the protocol paths are what it needs to see.
const raceEnabled = true
