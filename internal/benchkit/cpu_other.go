//go:build !linux

package benchkit

import "time"

// cpuNow returns 0, 0: only Linux's getrusage and /proc are read.
func cpuNow() (self, server time.Duration) { return 0, 0 }
