package fleet

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcessCPU is a process's CPU time so far (user + system), from
// /proc/PID/stat; 0 if it cannot be read.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// NB: the fields after the command (which may hold spaces) start after
	// its closing parenthesis; utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * time.Second / 100 // NB: USER_HZ is 100 on Linux
}

// CPU is the CPU time the fleet's members used so far.
func (f *Fleet) CPU() time.Duration {
	var total time.Duration
	for _, m := range f.Members {
		total += ProcessCPU(m.PID())
	}
	return total
}
