package policy

import (
	"context"
	"fmt"
	"io"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult counts the outcome of a Rego test run.
type TestResult struct {
	Passed, Failed, Errored int
}

// RunRegoTests runs the Rego unit tests (rules named test_*) found in
// paths, as `opa test` does, writing one line per failure or error to w.
// It is what `policyca policy test` runs. It compiles with the CA's
// capabilities, so a policy calling a builtin the CA disables (http.send,
// rand.intn…) fails here as it would fail to load in the CA.
func RunRegoTests(ctx context.Context, w io.Writer, paths ...string) (TestResult, error) {
	var r TestResult
	modules, store, err := tester.Load(paths, nil)
	if err != nil {
		return r, err
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return r, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithCapabilities(capabilities())).
		SetStore(store).
		SetModules(modules).
		RunTests(ctx, txn)
	if err != nil {
		return r, err
	}
	var results []*tester.Result
	for res := range ch {
		results = append(results, res)
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
