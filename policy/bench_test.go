package policy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/policyca/policyca/core"
)

// stockPolicyFiles reads the default policy's modules and manifest (not
// its data.json), by file name.
func stockPolicyFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob("../policies/rego/*.rego")
	if err != nil || len(files) == 0 {
		tb.Fatalf("default policy not found: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range append(files, "../policies/rego/.manifest") {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// writeBundle writes the default policy with data as its data.json.
func writeBundle(tb testing.TB, data map[string]any) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, b := range stockPolicyFiles(tb) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := json.Marshal(map[string]any{"policyca": data})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// cpuTime is the process's user+system CPU time. Benchmarks report it per
// operation beside wall time because on a shared machine wall time mostly
// measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times and reports CPU ns/op.
func loop(b *testing.B, f func()) {
	b.Helper()
	b.ReportAllocs()
	start := cpuTime()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
	}
}

// stepCounter counts OPA's expression evaluations: a measure of how much
// work the Rego does that, unlike time, does not depend on the machine.
type stepCounter struct{ n int }

func (s *stepCounter) Enabled() bool               { return true }
func (s *stepCounter) Config() topdown.TraceConfig { return topdown.TraceConfig{} }
func (s *stepCounter) TraceEvent(ev topdown.Event) {
	if ev.Op == topdown.EvalOp {
		s.n++
	}
}

// reportSteps evaluates in once with a step counter and reports the count
// as opa-steps/op. Call it after the timed loop, which resets metrics.
func reportSteps(b *testing.B, e *Engine, in Input) {
	b.Helper()
	c := e.cur.Load()
	v, err := in.value(in.Time, &e.policies)
	if err != nil {
		b.Fatal(err)
	}
	var sc stepCounter
	if _, err := c.query(true).Eval(context.Background(), rego.EvalParsedInput(v), rego.EvalQueryTracer(&sc)); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(sc.n), "opa-steps/op")
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func BenchmarkDecideDefault1(b *testing.B)     { benchDefault1(b, false) }
func BenchmarkDecideDefault1Rego(b *testing.B) { benchDefault1(b, true) }
func BenchmarkDecide10x1000(b *testing.B)      { bench10x1000(b, false) }
func BenchmarkDecide10x1000Rego(b *testing.B)  { bench10x1000(b, true) }

// allRego makes e evaluate the name rules in Rego, as it does for a bundle
// whose name rules are not the default's (names.go).
func allRego(b *testing.B, e *Engine, on bool) {
	b.Helper()
	c := e.cur.Load()
	if c.fast == nil {
		b.Fatal("the default bundle is not evaluated with the name rules in Go")
	}
	if on {
		c.fast = nil
	}
}

func benchDefault1(b *testing.B, rego bool) {
	e, err := NewEngine(EngineConfig{Path: "../policies/rego", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	allRego(b, e, rego)
	in := Input{
		Stage:       StageOrder,
		Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
		Account:     AccountInput{ID: "acct-1"},
		Identifiers: []core.Identifier{{Type: core.DNS, Value: "www.example.internal"}},
	}
	ctx := context.Background()
	loop(b, func() {
		d, err := e.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("decision %+v, %v", d, err)
		}
	})
	reportSteps(b, e, in)
}

func bench10x1000(b *testing.B, rego bool) {
	const zone = "corp.example"
	dir := writeBundle(b, map[string]any{
		"authority":    SyntheticLayer(1000, zone),
		"provisioners": map[string]any{"dev": SyntheticLayer(1000, zone)},
	})
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	allRego(b, e, rego)
	acct, err := json.Marshal(SyntheticLayer(1000, zone))
	if err != nil {
		b.Fatal(err)
	}
	ids := SyntheticIdentifiers(10, 1000, zone)
	in := Input{
		Stage:       StageOrder,
		Provisioner: ProvisionerInfo{Name: "dev", Type: "acme"},
		Account:     AccountInput{ID: "acct-1", EAB: &EABInfo{KeyID: "kid-1", Reference: "web-17"}, Policy: acct},
		Identifiers: ids,
	}
	ctx := context.Background()
	loop(b, func() {
		d, err := e.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("decision %+v, %v", d, err)
		}
	})
	reportSteps(b, e, in)
}

// BenchmarkEvalFloor is OPA's fixed cost per evaluation on this machine (a
// policy that only builds a constant decision), to read the others against.
func BenchmarkEvalFloor(b *testing.B) {
	dir := b.TempDir()
	for name, body := range map[string]string{
		".manifest":  `{"revision": "floor", "roots": ["policyca"]}`,
		"floor.rego": "package policyca\n\ndecision := {\"allow\": true, \"violations\": []}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "acme"},
		Identifiers: []core.Identifier{{Type: core.DNS, Value: "www.example.internal"}}}
	ctx := context.Background()
	loop(b, func() {
		if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
			b.Fatalf("decision %+v, %v", d, err)
		}
	})
	reportSteps(b, e, in)
}
