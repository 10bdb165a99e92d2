package benchkit

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// peakRSS returns a running process's peak resident set in bytes (VmHWM),
// or 0 when it cannot be read. (The rusage of an exited child is no good
// here: Linux carries the parent's high-water mark into it across exec.)
func peakRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
