//go:build !linux

package benchkit

import "os"

// maxRSS returns 0: only Linux's report is read (other systems count in
// other units, or not at all).
func maxRSS(*os.ProcessState) int64 { return 0 }
