package ra_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/policyca/policyca/pki"
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
