//go:build !linux

package bench

import (
	"errors"
	"time"
)

// ProcessCPU needs /proc; elsewhere the server's CPU is not reported.
func ProcessCPU(pid int) (user, sys time.Duration, err error) {
	return 0, 0, errors.New("bench: reading another process's CPU time needs Linux /proc")
}
