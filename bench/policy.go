package bench

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/policyca/policyca/policy"
)

// DefaultPolicyDuration is how long Policy runs when no duration is given.
const DefaultPolicyDuration = 5 * time.Second

// policyInputRing is how many distinct inputs a decision run cycles
// through.
const policyInputRing = 4096

// PolicyOptions configure a decision run.
type PolicyOptions struct {
	// Engine decides, as in the CA (with no decision log).
	Engine *policy.Engine
	// Input returns the input of decision number i (from 1).
	Input       func(i int64) policy.Input
	Concurrency int
	// Duration bounds the run; N, if positive, also stops it after N
	// decisions, whichever comes first.
	Duration time.Duration
	N        int
}

// PolicyResult is the outcome of Policy.
type PolicyResult struct {
	Revision string `json:"revision"`
	// NameRules is "go" when the engine evaluates the default name rules
	// in Go, "rego" when the bundle's own rules are evaluated.
	NameRules   string        `json:"name_rules"`
	Concurrency int           `json:"concurrency"`
	Decisions   int           `json:"decisions"`
	Allowed     int64         `json:"allowed"`
	Denied      int64         `json:"denied"`
	Failed      int           `json:"failed"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Rate        float64       `json:"decisions_per_second"`
	Latency     Latency       `json:"latency"`
	Errors      []ErrorCount  `json:"errors"`
	CPU         CPUUsage      `json:"cpu"`
}

// Policy makes decisions with o.Engine from o.Concurrency goroutines, the
// way the CA makes them at newOrder and before signing. An evaluation
// error (which the CA would turn into a denial) is counted as failed.
func Policy(ctx context.Context, o PolicyOptions) (*PolicyResult, error) {
	if o.Engine == nil || o.Input == nil {
		return nil, errors.New("bench: no policy engine or input")
	}
	if o.Concurrency < 1 {
		return nil, errors.New("bench: concurrency must be at least 1")
	}
	if o.Duration <= 0 {
		o.Duration = DefaultPolicyDuration
	}
	// The inputs are built before the clock starts (rendering the
	// identifiers and normalising them is the ACME front end's work, not
	// the policy's), and reused in turn.
	n := policyInputRing
	if o.N > 0 && o.N < n {
		n = o.N
	}
	inputs := make([]policy.Input, n)
	for i := range inputs {
		inputs[i] = o.Input(int64(i) + 1)
	}
	var allowed, denied atomic.Int64
	r := repeat(ctx, o.Concurrency, o.Duration, o.N, "decide", "evaluationError", func(i int64) error {
		d, err := o.Engine.Decide(ctx, inputs[(i-1)%int64(n)])
		if err != nil {
			return err
		}
		if d.Allow {
			allowed.Add(1)
		} else {
			denied.Add(1)
		}
		return nil
	})
	res := &PolicyResult{
		Revision:    o.Engine.Revision(),
		NameRules:   "rego",
		Concurrency: o.Concurrency,
		Decisions:   len(r.lat),
		Allowed:     allowed.Load(),
		Denied:      denied.Load(),
		Failed:      r.failed,
		Elapsed:     r.elapsed,
		Rate:        rate(len(r.lat), r.elapsed),
		Latency:     summarize(r.lat),
		Errors:      r.hist.rows(),
		CPU:         r.cpu,
	}
	if o.Engine.NameRulesInGo() {
		res.NameRules = "go"
	}
	return res, nil
}
