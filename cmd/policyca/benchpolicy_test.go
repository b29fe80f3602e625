package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/bench"
)

func benchPolicyJSON(t *testing.T, args ...string) bench.PolicyResult {
	t.Helper()
	out, err := runBench(t, append([]string{"policy", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res bench.PolicyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return res
}

func TestBenchPolicy(t *testing.T) {
	// The default bundle allows .internal names, with the name rules in Go.
	res := benchPolicyJSON(t, "--bundle", bundleDir, "-n", "40", "-c", "2", "--ids", "3")
	if res.Decisions != 40 || res.Allowed != 40 || res.Denied != 0 || res.Failed != 0 || res.NameRules != "go" ||
		res.Revision != "default-1" || res.Latency.Count != 40 || res.Rate <= 0 {
		t.Errorf("default bundle: %+v", res)
	}
	// Public names are refused: every decision is a denial, none failed.
	res = benchPolicyJSON(t, "--bundle", bundleDir, "-n", "10", "--ident", "www-{n}.example.com")
	if res.Decisions != 10 || res.Denied != 10 || res.Allowed != 0 {
		t.Errorf("public names: %+v", res)
	}
	// Generated rules replace the bundle's data; the generated names are
	// allowed by all three layers, at both stages.
	for _, stage := range []string{"order", "sign"} {
		res = benchPolicyJSON(t, "--bundle", bundleDir, "-n", "10", "--ids", "10", "--rules", "300", "--stage", stage)
		if res.Decisions != 10 || res.Allowed != 10 {
			t.Errorf("--rules 300 --stage %s: %+v", stage, res)
		}
	}
	// A bundle whose name rules are not the default's is decided in Rego.
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(bundleDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(bundleDir, ".manifest"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "not allowed by %s", "outside %s")
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res = benchPolicyJSON(t, "--bundle", dir, "-n", "5")
	if res.NameRules != "rego" || res.Allowed != 5 {
		t.Errorf("edited bundle: %+v", res)
	}
	// Text output.
	out, err := runBench(t, "policy", "--bundle", bundleDir, "-n", "5")
	if err != nil || !strings.Contains(out, "decisions/s") || !strings.Contains(out, "name rules in GO") {
		t.Errorf("text output (err %v):\n%s", err, out)
	}
}

func TestBenchPolicyUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no ids":        {"policy", "--bundle", bundleDir, "--ids", "0"},
		"few rules":     {"policy", "--bundle", bundleDir, "--rules", "2"},
		"bad stage":     {"policy", "--bundle", bundleDir, "--stage", "later"},
		"bad bundle":    {"policy", "--bundle", "/nonexistent"},
		"bad ident":     {"policy", "--bundle", bundleDir, "--ident", "bad_{n}..name"},
		"bad template":  {"policy", "--bundle", bundleDir, "--ident", "x-{m}.internal"},
		"rules on file": {"policy", "--bundle", "/nonexistent.tar.gz", "--rules", "10"},
	} {
		out, err := runBench(t, append(args, "-n", "1")...)
		if exitCode(err) != 2 {
			t.Errorf("%s: %v, want exit status 2\n%s", name, err, out)
		}
	}
}
