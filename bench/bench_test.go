package bench

import (
	"context"
	"github.com/policyca/policyca/internal/testutil"
	"strings"
	"testing"
	"time"
)

// BenchmarkRun runs the generator against a CA node in the same process,
// b.N issuances by 16 workers sharing one account, so that one CPU profile
// shows where a CA under concurrent load spends its time (the generator's
// own frames are package bench and golang.org/x/crypto/acme, easy to
// subtract):
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 1000x -cpuprofile /tmp/cpu.out ./bench/
//	go tool pprof -top -cum bench.test /tmp/cpu.out
func BenchmarkRun(b *testing.B) {
	for _, mode := range []AccountMode{AccountsOne, AccountsPerOrder} {
		b.Run(string(mode), func(b *testing.B) {
			port := testutil.FreePort(b)
			ca := startCA(b, port)
			b.ResetTimer()
			res, err := Run(context.Background(), ACMEOptions{
				DirectoryURL: ca.dir,
				Roots:        ca.roots,
				N:            b.N,
				Concurrency:  16,
				Accounts:     mode,
				HTTP01Port:   port,
				Timeout:      10 * time.Minute,
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if res.Failed > 0 || res.Succeeded != b.N {
				var r strings.Builder
				res.WriteText(&r)
				b.Fatalf("run not clean:\n%s", r.String())
			}
			b.ReportMetric(res.Rate, "issuances/s")
			b.ReportMetric(float64(res.Latency.P50)/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(res.Latency.P99)/float64(time.Millisecond), "p99-ms")
		})
	}
}
