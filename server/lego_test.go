package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
)

// The tests in this file drive the real HTTPS server with lego, the Go ACME
// client, end to end: the CA validates every challenge against lego's own
// responders on loopback.

func TestLegoIssuanceEachChallenge(t *testing.T) {
	tc := startCA(t, nil)
	tests := []struct {
		name  string
		setup func(*testing.T, *testCA, *lego.Client)
		ids   []string
	}{
		{"http-01 dns name", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useHTTP01(t, c) }, []string{"web.internal"}},
		{"http-01 two names", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useHTTP01(t, c) }, []string{"a.internal", "b.lan"}},
		{"http-01 ipv4", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useHTTP01(t, c) }, []string{"127.0.0.1"}},
		{"tls-alpn-01 dns name", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useTLSALPN01(t, c) }, []string{"alpn.internal"}},
		{"tls-alpn-01 ipv4", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useTLSALPN01(t, c) }, []string{"127.0.0.1"}},
		{"dns-01 dns name", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useDNS01(t, c) }, []string{"dns.internal"}},
		{"dns-01 wildcard", func(t *testing.T, tc *testCA, c *lego.Client) { tc.useDNS01(t, c) }, []string{"*.wild.internal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := tc.legoClient(t)
			tt.setup(t, tc, c)
			res := obtain(t, c, tt.ids...)
			leaf := tc.verifyChain(t, res.Certificate, strings.Replace(tt.ids[0], "*", "x", 1))
			if got := len(leaf.DNSNames) + len(leaf.IPAddresses); got != len(tt.ids) {
				t.Errorf("certificate has %d names, want %d", got, len(tt.ids))
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 24*time.Hour+time.Minute || d < 23*time.Hour {
				t.Errorf("lifetime %v, want the 24h default", d)
			}
			stored, err := tc.srv.Store().GetCertificateBySerial(context.Background(), leaf.SerialNumber.Text(16))
			if err != nil {
				t.Fatalf("certificate not in the store: %v", err)
			}
			if string(stored.DER) != string(leaf.Raw) {
				t.Error("stored certificate differs from the one returned")
			}
		})
	}
}

func TestLegoWildcardRefusedWithoutDNS01(t *testing.T) {
	tc := startCA(t, nil)
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	_, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"*.nope.internal"}})
	if err == nil {
		t.Fatal("wildcard issued without dns-01")
	}
}

func TestLegoRenewal(t *testing.T) {
	tc := startCA(t, nil)
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	first := obtain(t, c, "renew.internal")
	second, err := c.Certificate.RenewWithOptions(*first, &certificate.RenewOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	a := tc.verifyChain(t, first.Certificate, "renew.internal")
	b := tc.verifyChain(t, second.Certificate, "renew.internal")
	if a.SerialNumber.Cmp(b.SerialNumber) == 0 {
		t.Fatal("renewal returned the same serial")
	}
}

func TestLegoRevocationByAccountKey(t *testing.T) {
	tc := startCA(t, nil)
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	res := obtain(t, c, "revoke.internal")
	reason := uint(4) // superseded
	if err := c.Certificate.RevokeWithReason(res.Certificate, &reason); err != nil {
		t.Fatal(err)
	}
	leaf := tc.verifyChain(t, res.Certificate, "revoke.internal")
	stored, err := tc.srv.Store().GetCertificateBySerial(context.Background(), leaf.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	if stored.RevokedAt.IsZero() || stored.RevocationReason != 4 {
		t.Fatalf("not revoked with reason 4: %+v", stored.RevokedAt)
	}
	err = c.Certificate.RevokeWithReason(res.Certificate, &reason)
	if err == nil || !strings.Contains(err.Error(), "alreadyRevoked") {
		t.Fatalf("second revocation: %v, want alreadyRevoked", err)
	}
	// The CRL lists it.
	resp, err := tc.httpClient().Get(strings.TrimSuffix(tc.dir, "/acme/acme/directory") + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range crl.RevokedCertificateEntries {
		found = found || e.SerialNumber.Cmp(leaf.SerialNumber) == 0
	}
	if !found {
		t.Fatal("revoked serial missing from the CRL")
	}
}

func TestRevocationByCertificateKey(t *testing.T) {
	tc := startCA(t, nil)
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"keyrevoke.internal"}, PrivateKey: certKey, Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.verifyChain(t, res.Certificate, "keyrevoke.internal")

	// Another client, knowing only the certificate's private key, revokes it
	// with a JWS signed by that key (RFC 8555 §7.6).
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient()}
	ctx := context.Background()
	if err := xc.RevokeCert(ctx, certKey, leaf.Raw, xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	stored, err := tc.srv.Store().GetCertificateBySerial(ctx, leaf.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	if stored.RevokedAt.IsZero() || stored.RevocationReason != int(xacme.CRLReasonKeyCompromise) {
		t.Fatal("not revoked for key compromise")
	}
	// A different key cannot revoke it.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := xc.RevokeCert(ctx, other, leaf.Raw, xacme.CRLReasonKeyCompromise); err == nil {
		t.Fatal("revoked with an unrelated key")
	}
}

func TestRevokeAnotherAccountsCertificate(t *testing.T) {
	tc := startCA(t, nil)
	owner, _ := tc.legoClient(t)
	tc.useHTTP01(t, owner)
	res := obtain(t, owner, "mine.internal")
	thief, _ := tc.legoClient(t)
	err := thief.Certificate.Revoke(res.Certificate)
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("another account revoked it: %v", err)
	}
}

func TestKeyRolloverAndDeactivation(t *testing.T) {
	tc := startCA(t, nil)
	ctx := context.Background()
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: oldKey}
	acct, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := xc.AccountKeyRollover(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	// The new key finds the same account; the old one finds none.
	got, err := (&xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: newKey}).GetReg(ctx, "")
	if err != nil || got.URI != acct.URI {
		t.Fatalf("new key: %v %v", got, err)
	}
	if _, err := (&xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: oldKey}).GetReg(ctx, ""); err == nil {
		t.Fatal("old key still finds the account")
	}

	// Rolling over to a key that belongs to another account is a 409.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := (&xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: otherKey}).Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	err = xc.AccountKeyRollover(ctx, otherKey)
	var ae *xacme.Error
	if !errors.As(err, &ae) || ae.StatusCode != 409 {
		t.Fatalf("rollover onto another account's key: %v, want 409", err)
	}

	// Deactivation through lego; the account can do nothing afterwards.
	c, _ := tc.legoClient(t)
	if err := c.Registration.DeleteRegistration(); err != nil {
		t.Fatal(err)
	}
	tc.useHTTP01(t, c)
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"gone.internal"}}); err == nil {
		t.Fatal("deactivated account got a certificate")
	}
	if _, err := c.Registration.QueryRegistration(); err == nil {
		t.Fatal("deactivated account still queryable as valid")
	}
}

func TestConcurrentOrdersOneAccount(t *testing.T) {
	tc := startCA(t, nil)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: key}
	if _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	const n = 32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			name := "c" + strings.Repeat("x", i%5) + strconv.Itoa(i) + ".internal"
			errs <- issueDNS01(ctx, tc, xc, name)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// issueDNS01 runs one full order with golang.org/x/crypto/acme, answering
// dns-01 through the test DNS server.
func issueDNS01(ctx context.Context, tc *testCA, xc *xacme.Client, name string) error {
	order, err := xc.AuthorizeOrder(ctx, xacme.DomainIDs(name))
	if err != nil {
		return err
	}
	for _, u := range order.AuthzURLs {
		z, err := xc.GetAuthorization(ctx, u)
		if err != nil {
			return err
		}
		for _, ch := range z.Challenges {
			if ch.Type != "dns-01" {
				continue
			}
			rec, err := xc.DNS01ChallengeRecord(ch.Token)
			if err != nil {
				return err
			}
			tc.dns.SetTXT("_acme-challenge."+z.Identifier.Value, rec)
			if _, err := xc.Accept(ctx, ch); err != nil {
				return err
			}
		}
		if _, err := xc.WaitAuthorization(ctx, u); err != nil {
			return err
		}
	}
	if _, err := xc.WaitOrder(ctx, order.URI); err != nil {
		return err
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	if err != nil {
		return err
	}
	_, _, err = xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	return err
}
