package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/internal/pgtest"
)

// noRetry makes the x/crypto/acme client report a 5xx at once instead of
// retrying it, so that the test sees what the server answered.
func noRetry(int, *http.Request, *http.Response) time.Duration { return -1 }

// wantUnavailable checks the answer to a request made while the database
// is down: serverInternal, with a Retry-After header and a detail that
// says what is wrong.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var ae *xacme.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s with the database down: %v, want an ACME problem", what, err)
	}
	if ae.StatusCode != http.StatusInternalServerError || ae.ProblemType != "urn:ietf:params:acme:error:serverInternal" {
		t.Fatalf("%s: status %d, type %s, want 500 serverInternal", what, ae.StatusCode, ae.ProblemType)
	}
	if s, err := strconv.Atoi(ae.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("%s: Retry-After %q, want a number of seconds", what, ae.Header.Get("Retry-After"))
	}
	if !strings.Contains(ae.Detail, "database") {
		t.Fatalf("%s: detail %q does not name the database", what, ae.Detail)
	}
}

func healthStatus(t *testing.T, tc *testCA) int {
	t.Helper()
	resp, err := tc.httpClient().Get(strings.TrimSuffix(tc.dir, "/acme/acme/directory") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestPostgresOutage: while PostgreSQL is down, requests fail with
// serverInternal and Retry-After, nothing is half-written, and the node
// recovers by itself when the database is back.
func TestPostgresOutage(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	tc := startCAWith(t, func(o *bootstrap.Options) { o.DatabaseURL = cluster.CreateDatabase(t) }, nil)
	tc.resp = newHTTP01(t, tc)
	ctx := t.Context()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: key, RetryBackoff: noRetry}
	if _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	if err := issueHTTP01(ctx, tc, xc, "before.internal"); err != nil {
		t.Fatalf("issuance on PostgreSQL: %v", err)
	}
	// An order made ready before the outage, finalized during it.
	order, err := xc.AuthorizeOrder(ctx, xacme.DomainIDs("during.internal"))
	if err != nil {
		t.Fatal(err)
	}
	if err := solveHTTP01(ctx, tc, xc, order); err != nil {
		t.Fatal(err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"during.internal"}}, certKey)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newcomer := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: newKey, RetryBackoff: noRetry}
	if _, err := newcomer.Discover(ctx); err != nil {
		t.Fatal(err)
	}

	cluster.Stop(t)
	_, _, err = xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	wantUnavailable(t, "finalize", err)
	_, err = newcomer.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	wantUnavailable(t, "newAccount", err)
	_, err = xc.AuthorizeOrder(ctx, xacme.DomainIDs("other.internal"))
	wantUnavailable(t, "newOrder", err)
	if code := healthStatus(t, tc); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with the database down: %d, want 503", code)
	}

	cluster.StartAgain(t)
	// The pool reconnects by itself; the first requests may still meet a
	// connection that died with the old server.
	deadline := time.Now().Add(30 * time.Second)
	var got *xacme.Order
	for {
		got, err = xc.GetOrder(ctx, order.URI)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not recover within 30s of the database: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The finalize that failed left the order as it was.
	if got.Status != xacme.StatusReady {
		t.Fatalf("order after the outage is %q, want ready", got.Status)
	}
	ders, _, err := xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		t.Fatalf("finalize after recovery: %v", err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.srv.Store().GetCertificateBySerial(ctx, leaf.SerialNumber.Text(16)); err != nil {
		t.Fatalf("certificate issued after recovery is not stored: %v", err)
	}
	// The refused newAccount created nothing: the key is unknown, and
	// registers now.
	if _, err := newcomer.GetReg(ctx, ""); !errors.Is(err, xacme.ErrNoAccount) {
		t.Fatalf("account lookup for the key refused during the outage: %v, want no account", err)
	}
	if _, err := newcomer.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatalf("newAccount after recovery: %v", err)
	}
	if code := healthStatus(t, tc); code != http.StatusOK {
		t.Fatalf("/healthz after recovery: %d", code)
	}
}
