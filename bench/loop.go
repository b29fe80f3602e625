package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loopResult is what repeat measured.
type loopResult struct {
	// lat holds the duration of every successful call.
	lat     []time.Duration
	failed  int
	hist    histogram
	elapsed time.Duration
	cpu     CPUUsage
}

// repeat calls op(i), i = 1, 2, …, from concurrency goroutines until
// duration has passed (and, with n > 0, after n calls), timing each call.
// A failed call is counted in the histogram under step and class, with its
// message as the example. The CPU is this process's, per successful call.
func repeat(ctx context.Context, concurrency int, duration time.Duration, n int, step, class string, op func(i int64) error) loopResult {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var (
		r     loopResult
		next  atomic.Int64
		mu    sync.Mutex
		wg    sync.WaitGroup
		limit = int64(n)
	)
	u0, s0 := processCPU()
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() {
				mu.Lock()
				r.lat = append(r.lat, local...)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				i := next.Add(1)
				if limit > 0 && i > limit {
					return
				}
				t := time.Now()
				err := op(i)
				el := time.Since(t)
				if err != nil {
					mu.Lock()
					r.failed++
					r.hist.add(step, class, err.Error())
					mu.Unlock()
					continue
				}
				local = append(local, el)
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	u1, s1 := processCPU()
	r.cpu = cpuUsage(u1-u0, s1-s0, len(r.lat))
	return r
}

// rate is ops per second of elapsed time.
func rate(ops int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ops) / elapsed.Seconds()
}
