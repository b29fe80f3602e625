package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/raapi"
)

// The RA renews its client and listener certificates by itself once two
// thirds of their lifetime have passed (the renewal loop calls RenewIfDue;
// here it is called with a clock moved forward), writes them to its state,
// and keeps issuing with the new client certificate.
func TestRARenewsItsCertificates(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("renewing", "acme")
	read := func(path string) []byte {
		t.Helper()
		certs, err := pki.ReadPEMCerts(r.cfg.Path(path))
		if err != nil {
			t.Fatal(err)
		}
		return certs[0].Raw
	}
	client, listener := read(r.cfg.ClientCert), read(r.cfg.ListenerCert)
	ctx := context.Background()

	// Not due yet: nothing changes.
	if err := r.node.RenewIfDue(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if string(read(r.cfg.ClientCert)) != string(client) {
		t.Fatal("renewed a certificate that was not due")
	}
	// Past two thirds of a 30-day certificate: both are renewed.
	if err := r.node.RenewIfDue(ctx, time.Now().Add(25*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if string(read(r.cfg.ClientCert)) == string(client) || string(read(r.cfg.ListenerCert)) == string(listener) {
		t.Fatal("certificates due for renewal were not renewed")
	}
	// The RA keeps working with the new certificates.
	c := e.lego(r.base+"/acme/acme/directory", "", "")
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"after.renewing.internal"}, Bundle: true})
	if err != nil {
		t.Fatalf("issuance after renewal: %v", err)
	}
	e.verify(res.Certificate, "after.renewing.internal")
}

// Enrolling an RA again (its key was lost or stolen) shuts out every
// certificate of the earlier enrolment, the one a renewal replaced
// included; a renewal alone keeps the replaced certificate until it
// expires (docs/ra.md).
func TestEnrollingAgainShutsOutEarlierCertificates(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme")
	first := raCert(t, r.cfg)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if _, err := r.node.Client().Renew(context.Background(), csr); err != nil {
		t.Fatal(err)
	}
	if code, perr := e.call(e.raw(first), "GET", "/config", nil); code != http.StatusOK {
		t.Fatalf("the certificate a renewal replaced, same enrolment: %d %v", code, perr)
	}
	again, err := ra.Enroll(context.Background(), ra.EnrollOptions{Token: e.token("site-a", "acme"),
		StateDir: filepath.Join(t.TempDir(), "ra2"), Listen: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/config", "/renew"} {
		code, perr := e.call(e.raw(first), map[string]string{"/config": "GET", "/renew": "POST"}[path], path,
			raapi.RenewRequest{CSR: csr})
		if code != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "earlier enrolment") {
			t.Fatalf("%s with a certificate of the earlier enrolment: %d %v", path, code, perr)
		}
	}
	if code, perr := e.call(e.raw(raCert(t, again)), "GET", "/config", nil); code != http.StatusOK {
		t.Fatalf("the new enrolment's certificate: %d %v", code, perr)
	}
}

// Enrolment checks its local options before it redeems the token (which is
// good for one enrolment): a mistake costs nothing but a second try.
func TestEnrollChecksOptionsBeforeRedeeming(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token("site-a", "acme")
	for i, bad := range []ra.EnrollOptions{
		{Listen: "127.0.0.1:99999"},
		{Listen: "0.0.0.0:8443"},
		{Listen: "127.0.0.1:1", ExternalURL: "http://ra.internal"},
		{Listen: "127.0.0.1:1", Validation: config.Validation{HTTP01Port: 99999}},
		{Listen: "127.0.0.1:1", Validation: config.Validation{Resolvers: []string{"10.0.0.53"}}},
		{Listen: "127.0.0.1:1", Validation: config.Validation{Timeout: config.Duration(-5 * time.Second)}},
	} {
		bad.Token, bad.StateDir = tok, filepath.Join(t.TempDir(), "ra")
		if _, err := ra.Enroll(context.Background(), bad); err == nil {
			t.Fatalf("bad options %d (listen %s, external URL %q, validation %+v): enrolled",
				i, bad.Listen, bad.ExternalURL, bad.Validation)
		}
	}
	if _, err := ra.Enroll(context.Background(), ra.EnrollOptions{Token: tok, StateDir: filepath.Join(t.TempDir(), "ra"),
		Listen: "127.0.0.1:1"}); err != nil {
		t.Fatalf("the token after refused attempts: %v", err)
	}
}
