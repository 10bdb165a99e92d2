//go:build !linux

package benchkit

// peakRSS returns 0: only Linux's /proc is read.
func peakRSS(int) int64 { return 0 }
