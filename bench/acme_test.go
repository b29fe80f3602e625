package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/server"
)

// testCA is a CA node started in-process on loopback, the way `policyca
// init` then `policyca ca` would start it, validating http-01 on port
// validatePort.
type testCA struct {
	dir   string
	roots *x509.CertPool
	srv   *server.Server
}

func startCA(t testing.TB, validatePort int) *testCA {
	t.Helper()
	dns := challtest.NewDNSServer(t)
	// Names that are not *.localhost resolve to the generator's loopback
	// responder through this server, never through the system resolver.
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	res, err := bootstrap.Init(bootstrap.Options{
		StateDir:      filepath.Join(t.TempDir(), "state"),
		Listen:        ln.Addr().String(),
		HTTP01Port:    validatePort,
		TLSALPN01Port: testutil.FreePort(t),
		Resolvers:     []string{dns.Addr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Info-level text logs, discarded: the formatting cost of what
	// `policyca ca` logs by default stays in benchmarks and profiles.
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	pool := x509.NewCertPool()
	pool.AddCert(srv.Root())
	return &testCA{dir: res.DirectoryURL, roots: pool, srv: srv}
}

// checkRun asserts a clean run of n issuances whose certificates are all
// in the CA's store.
func checkRun(t *testing.T, ca *testCA, res *ACMEResult, n int) {
	t.Helper()
	var report strings.Builder
	res.WriteText(&report)
	t.Log("\n" + report.String())
	if res.Succeeded != n || res.Failed != 0 || res.Aborted != 0 || res.NotStarted != 0 || len(res.Errors) != 0 {
		t.Fatal("run not clean")
	}
	if len(res.Serials) != n {
		t.Fatalf("%d serials, want %d", len(res.Serials), n)
	}
	seen := map[string]bool{}
	for _, s := range res.Serials {
		if seen[s] {
			t.Errorf("serial %s twice", s)
		}
		seen[s] = true
		c, err := ca.srv.Store().GetCertificateBySerial(context.Background(), s)
		if err != nil {
			t.Errorf("serial %s not in the CA's store: %v", s, err)
			continue
		}
		if c.Serial != s {
			t.Errorf("store returned serial %s for %s", c.Serial, s)
		}
	}
	if res.Latency.Count != n || res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency summary inconsistent: %+v", res.Latency)
	}
	if res.Rate <= 0 || res.Polls < 1 {
		t.Errorf("rate %v, polls %v", res.Rate, res.Polls)
	}
	for _, s := range []string{StepOrder, StepAuthz, StepChallenge, StepValidation, StepFinalize, StepCertificate} {
		if res.Steps[s].Count != n {
			t.Errorf("step %s has %d samples, want %d", s, res.Steps[s].Count, n)
		}
	}
}

func TestRunAccountModes(t *testing.T) {
	for _, mode := range []AccountMode{AccountsOne, AccountsPerOrder} {
		t.Run(string(mode), func(t *testing.T) {
			port := testutil.FreePort(t)
			ca := startCA(t, port)
			res, err := Run(context.Background(), ACMEOptions{
				DirectoryURL: ca.dir,
				Roots:        ca.roots,
				N:            20,
				Concurrency:  4,
				Accounts:     mode,
				Identifier:   "bench-{n}.internal",
				HTTP01Port:   port,
				Timeout:      2 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkRun(t, ca, res, 20)
			_, hasAccount := res.Steps[StepAccount]
			if hasAccount != (mode == AccountsPerOrder) {
				t.Errorf("account step timed: %v, want %v", hasAccount, mode == AccountsPerOrder)
			}
		})
	}
}

// IP identifiers need the responder on each address the CA connects to;
// 127.0.0.2 and 127.0.0.3 exercise that on loopback.
func TestRunIPIdentifiers(t *testing.T) {
	port := testutil.FreePort(t)
	ca := startCA(t, port)
	res, err := Run(context.Background(), ACMEOptions{
		DirectoryURL: ca.dir,
		Roots:        ca.roots,
		N:            6,
		Concurrency:  2,
		Identifier:   "127.0.0.{n%3+1}",
		HTTP01Port:   port,
		Timeout:      2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, ca, res, 6)
	for _, s := range res.Serials {
		c, err := ca.srv.Store().GetCertificateBySerial(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Names) != 1 || c.Names[0].Type != "ip" || !strings.HasPrefix(c.Names[0].Value, "127.0.0.") {
			t.Errorf("certificate %s names %v, want one loopback IP", s, c.Names)
		}
	}
}

// A CA that validates on another port refuses every authorization: the
// run completes, and every failure is in the histogram under the problem
// type the CA sent.
func TestRunValidationFailuresAreCounted(t *testing.T) {
	ca := startCA(t, testutil.FreePort(t)) // nothing listens there
	res, err := Run(context.Background(), ACMEOptions{
		DirectoryURL: ca.dir,
		Roots:        ca.roots,
		N:            4,
		Concurrency:  2,
		Identifier:   "fail-{n}.localhost",
		HTTP01Port:   testutil.FreePort(t),
		Timeout:      2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 0 || res.Failed != 4 || len(res.Serials) != 0 {
		t.Fatalf("succeeded %d failed %d, want 0 and 4", res.Succeeded, res.Failed)
	}
	if len(res.Errors) != 1 {
		t.Fatalf("errors %+v, want one row", res.Errors)
	}
	e := res.Errors[0]
	if e.Step != StepValidation || e.Count != 4 || e.Class != "connection" || e.Example == "" {
		t.Errorf("error row %+v, want 4 × validation/connection with an example", e)
	}
	var b strings.Builder
	res.WriteText(&b)
	if !strings.Contains(b.String(), "connection") {
		t.Errorf("text report does not show the error class:\n%s", b.String())
	}
}

// The hard time limit ends the run with every issuance accounted for.
func TestRunTimeLimit(t *testing.T) {
	port := testutil.FreePort(t)
	ca := startCA(t, port)
	res, err := Run(context.Background(), ACMEOptions{
		DirectoryURL: ca.dir,
		Roots:        ca.roots,
		N:            100000,
		Concurrency:  2,
		Accounts:     AccountsPerOrder,
		HTTP01Port:   port,
		Timeout:      300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Error("TimedOut not set")
	}
	if got := res.Succeeded + res.Failed + res.Aborted + res.NotStarted; got != res.Requested {
		t.Errorf("accounted %d issuances of %d", got, res.Requested)
	}
	if res.NotStarted == 0 {
		t.Error("a 100000-issuance run finished inside its time limit")
	}
}

func TestRunOptionErrors(t *testing.T) {
	base := ACMEOptions{DirectoryURL: "https://127.0.0.1:1/dir", N: 1, Concurrency: 1, HTTP01Port: 5002}
	for name, mut := range map[string]func(*ACMEOptions){
		"no directory": func(o *ACMEOptions) { o.DirectoryURL = "" },
		"zero n":       func(o *ACMEOptions) { o.N = 0 },
		"zero c":       func(o *ACMEOptions) { o.Concurrency = 0 },
		"bad port":     func(o *ACMEOptions) { o.HTTP01Port = 70000 },
		"bad mode":     func(o *ACMEOptions) { o.Accounts = "some" },
		"half eab":     func(o *ACMEOptions) { o.EABKeyID = "kid" },
		"eab per order": func(o *ACMEOptions) {
			o.EABKeyID, o.EABHMAC, o.Accounts = "kid", []byte("0123456789abcdef0123456789abcdef"), AccountsPerOrder
		},
		"bad template": func(o *ACMEOptions) { o.Identifier = "x-{m}" },
	} {
		o := base
		mut(&o)
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A taken http-01 port is an error before any load, not N failures.
func TestRunPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Run(context.Background(), ACMEOptions{
		DirectoryURL: "https://127.0.0.1:1/dir", N: 1, Concurrency: 1,
		HTTP01Port: ln.Addr().(*net.TCPAddr).Port,
	})
	if err == nil || !strings.Contains(err.Error(), "http-01 responder") {
		t.Fatalf("err = %v, want a responder listen error", err)
	}
}
