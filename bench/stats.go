package bench

import (
	"slices"
	"time"
)

// Latency summarises a set of durations.
type Latency struct {
	Count int           `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// summarize computes percentiles by the nearest-rank method, which never
// invents a latency that was not observed (interpolation would, and at
// the tail of a small run that matters).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{
		Count: len(s),
		Mean:  sum / time.Duration(len(s)),
		P50:   rank(s, 50),
		P90:   rank(s, 90),
		P99:   rank(s, 99),
		Max:   s[len(s)-1],
	}
}

// rank returns the p-th percentile of sorted s (nearest rank, 1-based).
func rank(s []time.Duration, p int) time.Duration {
	i := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

// ErrorCount is one row of an error histogram.
type ErrorCount struct {
	// Step is the part of the flow that failed (account, order, authz,
	// challenge, validation, finalize, certificate, sign).
	Step string `json:"step"`
	// Class is the ACME problem type without its URN prefix
	// ("serverInternal", "rateLimited"…) or a client-side class
	// ("timeout", "network", "badCertificate"…).
	Class string `json:"class"`
	Count int    `json:"count"`
	// Example is the message of the first occurrence, so an operator sees
	// what went wrong without rerunning with more logging.
	Example string `json:"example"`
}

// histogram counts errors by (step, class), keeping the first example.
type histogram struct {
	order []ErrorCount
	index map[[2]string]int
}

func (h *histogram) add(step, class, example string) {
	if h.index == nil {
		h.index = map[[2]string]int{}
	}
	k := [2]string{step, class}
	if i, ok := h.index[k]; ok {
		h.order[i].Count++
		return
	}
	h.index[k] = len(h.order)
	h.order = append(h.order, ErrorCount{Step: step, Class: class, Count: 1, Example: example})
}

// rows returns the histogram, most frequent first; never nil, so that
// JSON shows "errors": [] rather than null.
func (h *histogram) rows() []ErrorCount {
	r := append([]ErrorCount{}, h.order...)
	slices.SortStableFunc(r, func(a, b ErrorCount) int { return b.Count - a.Count })
	return r
}
