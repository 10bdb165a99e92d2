package benchkit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverNames are the process names whose CPU counts as the database
// server's: a store on this machine.
var serverNames = map[string]bool{"postgres": true, "mariadbd": true, "mysqld": true}

// cpuNow returns the CPU time this process has used and the CPU time the
// database server processes on this machine have used (with that of
// their exited children: PostgreSQL's backends are the postmaster's),
// read from getrusage and /proc; server is 0 when there is none.
func cpuNow() (self, server time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return self, 0
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime cutime cstime (fields 14–17)
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || !serverNames[s[open+1:end]] {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	// /proc counts in USER_HZ, 100 a second on every Linux architecture.
	return self, time.Duration(ticks) * (time.Second / 100)
}
