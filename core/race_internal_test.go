//go:build race

package core

// raceEnabled: the race detector is on, and allocation counts are its own.
const raceEnabled = true
