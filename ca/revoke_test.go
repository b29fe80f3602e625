package ca

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

func TestRevoke(t *testing.T) {
	c, _ := newTestCA(t, func(o *Options) { o.Lint = false })
	rec, err := c.Sign(context.Background(), request(t, "app.internal"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Sign(context.Background(), request(t, "other.internal"))
	if err != nil {
		t.Fatal(err)
	}
	padded := "00" + strings.ToUpper(rec.Serial)
	// Steps run in order against one store: the second revocation of the
	// same certificate must be refused.
	steps := []struct {
		name   string
		serial string
		reason int
		kind   core.ErrorKind // "" = success
	}{
		{"reason 7 is unused", rec.Serial, 7, core.KindBadRevocationReason},
		{"reason above 10", rec.Serial, 11, core.KindBadRevocationReason},
		{"negative reason", rec.Serial, -1, core.KindBadRevocationReason},
		{"cACompromise is not for a leaf", rec.Serial, ReasonCACompromise, core.KindBadRevocationReason},
		{"certificateHold has no unhold", rec.Serial, ReasonCertificateHold, core.KindBadRevocationReason},
		// removeFromCRL in a full CRL reads as "not revoked", and the
		// certificate could then never be revoked again.
		{"removeFromCRL", rec.Serial, ReasonRemoveFromCRL, core.KindBadRevocationReason},
		{"aACompromise is not for a leaf", rec.Serial, ReasonAACompromise, core.KindBadRevocationReason},
		{"not hex", "xyz", 1, core.KindMalformed},
		{"zero serial", "000", 1, core.KindMalformed},
		{"unknown serial", "abcdef", 1, core.KindNotFound},
		{"revoke, upper case and leading zeros", padded, ReasonKeyCompromise, ""},
		{"revoke again", rec.Serial, ReasonSuperseded, core.KindAlreadyRevoked},
		{"privilegeWithdrawn is allowed", other.Serial, ReasonPrivilegeWithdrawn, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := c.Revoke(context.Background(), s.serial, s.reason)
			if s.kind == "" {
				if err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				return
			}
			wantKind(t, err, s.kind)
		})
	}
}

func TestCRL(t *testing.T) {
	clock := fixedNow
	c, serials := crlTestCA(t, &clock)
	ctx := context.Background()
	want := map[string]int{serials[0]: ReasonKeyCompromise, serials[1]: ReasonUnspecified}
	for s, r := range want {
		if err := c.Revoke(ctx, s, r); err != nil {
			t.Fatal(err)
		}
	}
	der, err := c.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(c.Issuer()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if !crl.NextUpdate.Equal(crl.ThisUpdate.Add(6 * time.Hour)) {
		t.Errorf("nextUpdate %s, thisUpdate %s", crl.NextUpdate, crl.ThisUpdate)
	}
	if len(crl.RevokedCertificateEntries) != len(want) {
		t.Fatalf("CRL lists %d certificates, want %d", len(crl.RevokedCertificateEntries), len(want))
	}
	for _, e := range crl.RevokedCertificateEntries {
		r, ok := want[e.SerialNumber.Text(16)]
		if !ok {
			t.Fatalf("unexpected serial %x in CRL", e.SerialNumber)
		}
		if e.ReasonCode != r {
			t.Errorf("serial %x: reason %d, want %d", e.SerialNumber, e.ReasonCode, r)
		}
		if !e.RevocationTime.Equal(fixedNow) {
			t.Errorf("revocation time %s, want %s", e.RevocationTime, fixedNow)
		}
	}
	if crl.Number == nil || crl.Number.Sign() <= 0 {
		t.Error("CRL has no positive number")
	}

	// Later CRLs have larger numbers; expired certificates drop out.
	clock = fixedNow.Add(48 * time.Hour)
	der2, err := c.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl2, err := x509.ParseRevocationList(der2)
	if err != nil {
		t.Fatal(err)
	}
	if crl2.Number.Cmp(crl.Number) <= 0 {
		t.Errorf("CRL number did not increase: %v then %v", crl.Number, crl2.Number)
	}
	if n := len(crl2.RevokedCertificateEntries); n != 0 {
		t.Errorf("expired certificates still listed: %d", n)
	}
}
