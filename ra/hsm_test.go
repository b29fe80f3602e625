package ra_test

import (
	"context"
	"crypto"
	"os"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/signer/pkcs11"
	"github.com/policyca/policyca/softhsm/softhsmtest"
)

// An RA whose client key lives on a PKCS#11 token (SoftHSM2): it enrols
// with that key, its mTLS client certificate carries it, and issuance
// through the RA works; no key file is written.
func TestRAWithPKCS11Key(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "ra-token")
	keyURI := softhsmtest.KeyURI(tokenURI, "ra-client")
	key, err := pkcs11.GenerateKey(context.Background(), keyURI, "ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	key.(interface{ Close() error }).Close()

	e := newEnv(t, nil)
	r := e.enrolRAWith("hsm-site", func(o *ra.EnrollOptions) { o.KeyURI = keyURI }, "acme")
	if !strings.HasPrefix(r.cfg.ClientKey, "pkcs11:") {
		t.Fatalf("RA client key %q is not the token's", r.cfg.ClientKey)
	}
	certs, err := pki.ReadPEMCerts(r.cfg.Path(r.cfg.ClientCert))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(certs[0].PublicKey) {
		t.Fatal("the RA's client certificate does not carry the token's key")
	}
	entries, err := os.ReadDir(r.cfg.Path("keys"))
	if err == nil {
		for _, en := range entries {
			if strings.Contains(en.Name(), "client") {
				t.Fatalf("a client key file %s was written beside the token key", en.Name())
			}
		}
	}
	c := e.lego(r.base+"/acme/acme/directory", "", "")
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"web.hsm-site.internal"}, Bundle: true})
	if err != nil {
		t.Fatalf("obtain through an RA with an HSM client key: %v", err)
	}
	e.verify(res.Certificate, "web.hsm-site.internal")
}
