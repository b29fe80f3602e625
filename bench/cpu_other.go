//go:build !unix

package bench

import "time"

// processCPU is not measured on this platform; reports show zero.
func processCPU() (user, sys time.Duration) { return 0, 0 }
