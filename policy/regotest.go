package policy

import (
	"context"
	"fmt"
	"io"

	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult counts the outcome of a Rego test run.
type TestResult struct {
	Passed, Failed, Errored int
}

// RunRegoTests runs the Rego unit tests (rules named test_*) found in
// paths, as `opa test` does, writing one line per failure or error to w.
// It is what `policyca policy test` runs.
func RunRegoTests(ctx context.Context, w io.Writer, paths ...string) (TestResult, error) {
	var r TestResult
	results, err := tester.Run(ctx, paths...)
	if err != nil {
		return r, err
	}
	for _, res := range results {
		switch {
		case res.Error != nil:
			r.Errored++
			fmt.Fprintf(w, "ERROR %s.%s: %v\n", res.Package, res.Name, res.Error)
		case res.Fail:
			r.Failed++
			fmt.Fprintf(w, "FAIL  %s.%s (%s)\n", res.Package, res.Name, res.Location)
		case res.Skip:
		default:
			r.Passed++
		}
	}
	return r, nil
}
