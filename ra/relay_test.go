package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/pki"
)

// verify checks a chain from the CA against its root for name.
func (e *env) verify(chainPEM []byte, name string) *x509.Certificate {
	e.t.Helper()
	certs, err := pki.ParsePEMCerts(chainPEM)
	if err != nil || len(certs) < 2 {
		e.t.Fatalf("chain: %d certificates, %v", len(certs), err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: e.pool(), Intermediates: inter, DNSName: name}); err != nil {
		e.t.Fatalf("chain does not verify for %s: %v", name, err)
	}
	return certs[0]
}

// TestIssuanceThroughRA runs lego against an RA: the RA validates http-01
// itself, the CA signs, records the certificate and a sign decision naming
// the RA; revocation goes through the RA to the CA.
func TestIssuanceThroughRA(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme")
	c := e.lego(r.base+"/acme/acme/directory", "", "")
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"web.site-a.internal"}, Bundle: true})
	if err != nil {
		t.Fatalf("obtain through the RA: %v", err)
	}
	leaf := e.verify(res.Certificate, "web.site-a.internal")
	ctx := context.Background()
	rec, err := e.srv.Store().GetCertificateBySerial(ctx, leaf.SerialNumber.Text(16))
	if err != nil {
		t.Fatalf("the CA has no record of the certificate: %v", err)
	}
	decs, err := e.srv.Store().ListDecisions(ctx, core.DecisionFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range decs {
		if d.Stage == core.StageSign && d.RA == "site-a" && d.Allow && d.ID == rec.DecisionID {
			found = true
		}
	}
	if !found {
		t.Fatalf("no allowed sign decision naming RA site-a for decision %s in %+v", rec.DecisionID, decs)
	}
	// The RA kept its own record too, and the order-time decision in its log.
	if _, err := r.node.Store().GetCertificateBySerial(ctx, rec.Serial); err != nil {
		t.Fatalf("RA store: %v", err)
	}
	raDecs, _ := r.node.Store().ListDecisions(ctx, core.DecisionFilter{})
	if len(raDecs) == 0 || raDecs[0].Stage != core.StageOrder || raDecs[0].RA != "site-a" {
		t.Fatalf("RA decision log: %+v", raDecs)
	}
	if err := c.Certificate.Revoke(res.Certificate); err != nil {
		t.Fatalf("revoke through the RA: %v", err)
	}
	rec, _ = e.srv.Store().GetCertificateBySerial(ctx, rec.Serial)
	if rec.RevokedAt.IsZero() {
		t.Fatal("the CA did not revoke the certificate")
	}
	// The policy the RA fetched from the CA refuses public names at order
	// time, before any validation.
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"www.example.com"}}); err == nil ||
		!strings.Contains(err.Error(), "rejectedIdentifier") {
		t.Fatalf("public name through the RA: %v, want rejectedIdentifier", err)
	}
}

// TestEABThroughRA binds EAB keys in the CA's store: a key binds one
// account across every RA.
func TestEABThroughRA(t *testing.T) {
	e := newEnv(t, nil)
	a := e.enrolRA("site-a", "eab")
	b := e.enrolRA("site-b", "eab")
	ctx := context.Background()
	k, err := eab.NewKey("eab", "team-a", time.Time{}, []byte(`{"allow":{"dns":[".team-a.internal"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Store().CreateEABKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	c := e.lego(a.base+"/acme/eab/directory", k.ID, eab.EncodeHMAC(k.HMACKey))
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"app.team-a.internal"}, Bundle: true})
	if err != nil {
		t.Fatalf("obtain with EAB through the RA: %v", err)
	}
	e.verify(res.Certificate, "app.team-a.internal")
	// The account policy (from the CA) limits this account.
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"app.team-b.internal"}}); err == nil {
		t.Fatal("a name outside the account policy was issued")
	}
	got, err := e.srv.Store().GetEABKey(ctx, k.ID)
	if err != nil || got.BoundAccount == "" {
		t.Fatalf("the CA did not bind the key: %+v, %v", got, err)
	}
	if _, err := a.node.Store().GetAccount(ctx, got.BoundAccount); err != nil {
		t.Fatalf("the RA has no account with the CA's ID: %v", err)
	}
	// The same key at another RA: refused, the binding is the CA's.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: b.base + "/acme/eab/directory", HTTPClient: e.httpClient()}
	_, err = cl.Register(ctx, &xacme.Account{ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: k.ID, Key: k.HMACKey}}, xacme.AcceptTOS)
	if err == nil || !strings.Contains(err.Error(), "already bound") {
		t.Fatalf("second binding of one key at another RA: %v, want already bound", err)
	}
}

func (e *env) httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool()}}}
}

// TestFinalizeWhileCAUnreachable: with the CA down the RA still serves the
// directory, accounts, orders and validation; finalize answers
// serverInternal with Retry-After and leaves the order ready; once the CA
// is back the same order is finalized.
func TestFinalizeWhileCAUnreachable(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme")
	ctx := context.Background()
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:"+strconv.Itoa(e.httpPort))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var retryAfter atomic.Value
	cl := &xacme.Client{Key: key, DirectoryURL: r.base + "/acme/acme/directory", HTTPClient: e.httpClient(),
		RetryBackoff: func(n int, req *http.Request, res *http.Response) time.Duration {
			retryAfter.Store(res.Header.Get("Retry-After"))
			return 0 // no retries: the test looks at the first answer
		}}

	e.stop()
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatalf("register while the CA is down: %v", err)
	}
	o, err := cl.AuthorizeOrder(ctx, xacme.DomainIDs("offline.site-a.internal"))
	if err != nil {
		t.Fatalf("order while the CA is down: %v", err)
	}
	for _, u := range o.AuthzURLs {
		z, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, _ := cl.HTTP01ChallengeResponse(ch.Token)
			resp.Set(ch.Token, ka)
			if _, err := cl.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cl.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("validation while the CA is down: %v", err)
		}
	}
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"offline.site-a.internal"}}, csrKey)
	_, _, err = cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	var ae *xacme.Error
	if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:serverInternal" {
		t.Fatalf("finalize while the CA is down: %v, want serverInternal", err)
	}
	if ra, _ := retryAfter.Load().(string); ra == "" || ra == "0" {
		t.Fatalf("finalize while the CA is down: Retry-After %q", ra)
	}
	got, err := cl.GetOrder(ctx, o.URI)
	if err != nil || got.Status != xacme.StatusReady {
		t.Fatalf("order after the failed finalize: %+v, %v; want ready", got, err)
	}

	e.start()
	der, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		t.Fatalf("finalize once the CA is back: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der[0])
	if _, err := e.srv.Store().GetCertificateBySerial(ctx, leaf.SerialNumber.Text(16)); err != nil {
		t.Fatalf("CA record: %v", err)
	}
	if got, _ := cl.GetOrder(ctx, o.URI); got.Status != xacme.StatusValid {
		t.Fatalf("order after the retry: %s", got.Status)
	}
}
