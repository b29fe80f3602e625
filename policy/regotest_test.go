package policy

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegoSuites runs the bundle's opa tests, and each example with and
// without the default bundle, so that `go test` proves what `opa test`
// proves.
func TestRegoSuites(t *testing.T) {
	examples, err := filepath.Glob("../policies/examples/*/*_test.rego")
	if err != nil || len(examples) < 3 {
		t.Fatalf("examples: %v, %v", examples, err)
	}
	suites := [][]string{{"../policies/rego", "../policytests"}}
	for i, ex := range examples {
		ex = filepath.Dir(ex)
		examples[i] = ex
		suites = append(suites, []string{ex}, []string{"../policies/rego", "../policytests", ex})
	}
	for _, paths := range suites {
		t.Run(filepath.Base(paths[len(paths)-1]), func(t *testing.T) {
			var out bytes.Buffer
			r, err := RunRegoTests(context.Background(), &out, paths...)
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed+r.Errored > 0 || r.Passed == 0 {
				t.Fatalf("%+v\n%s", r, out.String())
			}
		})
	}
}

func TestRunRegoTestsReportsFailures(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"x_test.rego": "package x_test\n\ntest_ok if true\n\ntest_bad if false\n",
	})
	var out bytes.Buffer
	r, err := RunRegoTests(context.Background(), &out, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed != 1 || r.Failed != 1 || !bytes.Contains(out.Bytes(), []byte("test_bad")) {
		t.Fatalf("got %+v, %q", r, out.String())
	}
}

// TestRunRegoTestsUsesTheCAsCapabilities: a policy that calls a builtin
// the CA disables fails `policyca policy test` as it would fail to load.
func TestRunRegoTestsUsesTheCAsCapabilities(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"p.rego":      "package policyca\n\nn := rand.intn(\"x\", 10)\n",
		"p_test.rego": "package policyca_test\n\ntest_n if data.policyca.n < 10\n",
	})
	var out bytes.Buffer
	_, err := RunRegoTests(context.Background(), &out, dir)
	if err == nil || !strings.Contains(err.Error(), "rand.intn") {
		t.Fatalf("err = %v, output %q", err, out.String())
	}
}
