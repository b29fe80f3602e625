package ca

import (
	"context"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintCRL fails t on any zlint error or warning about the CRL.
func lintCRL(t *testing.T, der []byte) *zx509.RevocationList {
	t.Helper()
	crl, err := zx509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("zcrypto cannot parse the CRL: %v", err)
	}
	for name, r := range zlint.LintRevocationList(crl).Results {
		if r.Status == lint.Error || r.Status == lint.Fatal || r.Status == lint.Warn {
			t.Errorf("CRL lint %s: %s %s", name, r.Status, r.Details)
		}
	}
	return crl
}

// crlTestCA is a CA whose clock reads *clock, with CRLs valid for 6h, and
// the serials of three certificates it issued (not revoked).
func crlTestCA(t *testing.T, clock *time.Time) (*CA, []string) {
	t.Helper()
	c, _ := newTestCA(t, func(o *Options) {
		o.Lint = false
		o.Now = func() time.Time { return *clock }
		o.CRLValidity = 6 * time.Hour
	})
	var serials []string
	for range 3 {
		rec, err := c.Sign(context.Background(), request(t, "app.internal"))
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, rec.Serial)
	}
	return c, serials
}

// The CRL is reused for CRLRefresh, but a revocation on this CA shows at
// once; its thisUpdate is never before a revocation it lists; an expired
// certificate stays listed for one CRL validity period; numbers grow even
// when the clock steps back.
func TestCRLFreshnessAndOrder(t *testing.T) {
	clock := fixedNow
	c, serials := crlTestCA(t, &clock)
	ctx := context.Background()
	notAfter := fixedNow.Add(DefaultLifetime - time.Minute)
	crlAt := func(what string) *zx509.RevocationList {
		t.Helper()
		der, err := c.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl := lintCRL(t, der)
		for _, e := range crl.RevokedCertificates {
			if e.RevocationTime.After(crl.ThisUpdate) {
				t.Errorf("%s: revocation at %s after thisUpdate %s", what, e.RevocationTime, crl.ThisUpdate)
			}
		}
		return crl
	}

	// A revocation a second ago (less than the minute of backdating).
	clock = fixedNow.Add(30 * time.Second)
	if err := c.Revoke(ctx, serials[0], ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	first := crlAt("right after a revocation")
	if len(first.RevokedCertificates) != 1 {
		t.Fatalf("listed %d, want 1", len(first.RevokedCertificates))
	}
	clock = clock.Add(CRLRefresh / 2)
	if again := crlAt("within the refresh"); again.Number.Cmp(first.Number) != 0 {
		t.Errorf("a new CRL was signed within CRLRefresh: number %v after %v", again.Number, first.Number)
	}
	if err := c.Revoke(ctx, serials[1], ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	second := crlAt("after a second revocation")
	if len(second.RevokedCertificates) != 2 || second.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("after a revocation: %d listed, number %v after %v", len(second.RevokedCertificates), second.Number, first.Number)
	}

	// The clock steps back an hour: the number still grows.
	clock = fixedNow.Add(-time.Hour)
	if err := c.Revoke(ctx, serials[2], ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if back := crlAt("clock stepped back"); back.Number.Cmp(second.Number) <= 0 {
		t.Errorf("number %v after %v", back.Number, second.Number)
	}

	// Expired an hour ago: still listed (one validity period, 6h).
	clock = notAfter.Add(time.Hour)
	if n := len(crlAt("expired 1h ago").RevokedCertificates); n != 3 {
		t.Errorf("an hour after expiry: %d listed, want 3", n)
	}
	clock = notAfter.Add(7 * time.Hour)
	if n := len(crlAt("expired 7h ago").RevokedCertificates); n != 0 {
		t.Errorf("7h after expiry: %d listed, want 0", n)
	}
}

// A revocation does not wait for a CRL being built (a GET /crl, which
// anyone can send, must not hold up revocations), and the CRL built
// meanwhile is not reused: the next one lists the revocation.
func TestRevocationDoesNotWaitForCRL(t *testing.T) {
	c, st := newTestCA(t, func(o *Options) { o.Lint = false })
	ctx := context.Background()
	rec, err := c.Sign(ctx, request(t, "app.internal"))
	if err != nil {
		t.Fatal(err)
	}
	listing, release := make(chan struct{}), make(chan struct{})
	st.listing = func() {
		st.listing = nil
		close(listing)
		<-release
	}
	built := make(chan error)
	go func() {
		_, err := c.CRL(ctx)
		built <- err
	}()
	<-listing
	revoked := make(chan error)
	go func() { revoked <- c.Revoke(ctx, rec.Serial, ReasonKeyCompromise) }()
	select {
	case err := <-revoked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the revocation waited for the CRL being built")
	}
	close(release)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	der, err := c.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(lintCRL(t, der).RevokedCertificates); n != 1 {
		t.Fatalf("the CRL after the revocation lists %d certificates, want 1", n)
	}
}
