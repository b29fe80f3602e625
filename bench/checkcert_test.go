package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/pki"
)

type testIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newTestIssuer makes a root (parent nil) or an intermediate under parent.
func newTestIssuer(t *testing.T, name string, parent *testIssuer) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c *x509.Certificate
	if parent == nil {
		c, err = pki.NewRoot(key, pkix.Name{CommonName: name}, time.Hour)
	} else {
		c, err = pki.NewIntermediate(parent.cert, parent.key, &key.PublicKey, pkix.Name{CommonName: name}, time.Hour/2, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{c, key}
}

func (i *testIssuer) leaf(t *testing.T, name string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	c, err := pki.IssueTLSServer(i.cert, i.key, &key.PublicKey, []string{name}, nil, time.Hour/4)
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
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
