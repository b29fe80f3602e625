package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/internal/testutil"
)

// BenchmarkHA measures complete ACME issuances (`policyca bench acme`, 32
// concurrent clients, one shared account) through the round-robin proxy,
// for the deployment shapes of docs/ha.md: one node on SQLite, one node on
// PostgreSQL, two nodes on one PostgreSQL. b.N is the number of issuances:
//
//	go test -run '^$' -bench HA -benchtime 400x ./e2e
func BenchmarkHA(b *testing.B) {
	fixtures := map[string]*haFixture{}
	get := func(b *testing.B, shape string) *haFixture {
		if f, ok := fixtures[shape]; ok {
			return f
		}
		f := newHAFixture(b, shape)
		fixtures[shape] = f
		return f
	}
	for _, shape := range []string{"sqlite-1node", "postgres-1node", "postgres-2nodes"} {
		b.Run(shape, func(sb *testing.B) {
			f := get(b, shape)
			sb.ResetTimer()
			f.run(sb)
		})
	}
}

type haFixture struct {
	bin, dir, root string
	http01         int
}

func newHAFixture(b *testing.B, shape string) *haFixture {
	b.Helper()
	bin := policycaBinary(b)
	proxy := newRRProxy(b)
	state := filepath.Join(b.TempDir(), "state")
	http01 := testutil.FreePort(b)
	args := []string{"init", "--state", state, "--listen", "127.0.0.1:1", "--json",
		"--external-url", fmt.Sprintf("https://127.0.0.1:%d", proxy.port()), "--http01-port", fmt.Sprint(http01)}
	if shape != "sqlite-1node" {
		args = append(args, "--db", pgtest.StartCluster(b).CreateDatabase(b))
	}
	var res initResult
	if err := json.Unmarshal(runCLI(b, bin, args...), &res); err != nil {
		b.Fatal(err)
	}
	nodes := 1
	if shape == "postgres-2nodes" {
		nodes = 2
	}
	pool, _ := rootPool(b, res.Root)
	var listens []string
	for range nodes {
		listen := listenAddr(testutil.FreePort(b))
		p := startNode(b, bin, state, listen)
		waitHealthy(b, p, httpsClient(pool), listen)
		listens = append(listens, listen)
	}
	proxy.start(listens...)
	return &haFixture{bin: bin, dir: res.DirectoryURL, root: res.Root, http01: http01}
}

func (f *haFixture) run(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, "bench", "acme", "--dir", f.dir, "--ca", f.root,
		"--http01-port", fmt.Sprint(f.http01), "-c", "32", "-n", fmt.Sprint(b.N), "--json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		b.Fatalf("bench acme: %v\n%s%s", err, out.String(), errOut.String())
	}
	var r struct {
		Rate      float64 `json:"issuances_per_second"`
		Succeeded int     `json:"succeeded"`
		Latency   struct {
			P50 time.Duration `json:"p50_ns"`
			P99 time.Duration `json:"p99_ns"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		b.Fatalf("bench acme output: %v\n%s", err, out.String())
	}
	b.ReportMetric(r.Rate, "issuances/s")
	b.ReportMetric(float64(r.Latency.P50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(r.Latency.P99.Milliseconds()), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
