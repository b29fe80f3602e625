package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

type testIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestIssuer(t *testing.T, name string, parent *testIssuer) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{c, key}
}

func (i *testIssuer) leaf(t *testing.T, name string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.cert, &key.PublicKey, i.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCheckCertChains: the generator verifies every issued certificate to
// the roots, and remembering verified intermediates never lets through a
// leaf they did not sign, nor an intermediate the roots did not.
func TestCheckCertChains(t *testing.T) {
	root := newTestIssuer(t, "root", nil)
	inter := newTestIssuer(t, "intermediate", root)
	other := newTestIssuer(t, "other root", nil)
	rogue := newTestIssuer(t, "intermediate", other) // same name, other root
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	g := &generator{o: ACMEOptions{Roots: roots}}
	id := identifier{value: "a.localhost"}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // the second time from the cache
		if _, err := g.checkCert([][]byte{inter.leaf(t, "a.localhost", key), inter.cert.Raw}, id, key); err != nil {
			t.Fatalf("round %d: good chain refused: %v", i, err)
		}
	}
	if len(g.issuers.m) != 1 {
		t.Errorf("cache holds %d chains, want 1", len(g.issuers.m))
	}

	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  string
	}{
		// The intermediate is cached as verified; a leaf it did not sign
		// must still fail.
		{"leaf signed by another key", [][]byte{rogue.leaf(t, "a.localhost", key), inter.cert.Raw}, "does not verify"},
		{"intermediate from another root", [][]byte{rogue.leaf(t, "a.localhost", key), rogue.cert.Raw}, "issuing certificate"},
		{"no intermediate", [][]byte{inter.leaf(t, "a.localhost", key)}, "does not verify"},
		{"wrong name", [][]byte{inter.leaf(t, "b.localhost", key), inter.cert.Raw}, "certificate names"},
	} {
		_, err := g.checkCert(tc.chain, id, key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
