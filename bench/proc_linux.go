//go:build linux

package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports (the kernel's USER_HZ, fixed by ABI);
// reading sysconf(_SC_CLK_TCK) would need cgo for nothing.
const userHZ = 100

// ProcessCPU reads the user and system CPU time of process pid (all its
// threads, reaped children excluded) from /proc. The resolution is
// 10 ms, so divide differences over hundreds of operations, not one.
func ProcessCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces
	// and parentheses itself: fields are counted after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	tick := time.Second / userHZ
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}
