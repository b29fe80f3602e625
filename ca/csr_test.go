package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/policyca/policyca/core"
)

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

// sharedRSAKey is a 2048-bit key generated once: RSA generation under
// -race is slow enough to matter.
func sharedRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// rsaKeyWithExponent builds a valid RSA key with a chosen public exponent,
// which rsa.GenerateKey cannot do.
func rsaKeyWithExponent(t testing.TB, bits, e int) *rsa.PrivateKey {
	t.Helper()
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		one := big.NewInt(1)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(big.NewInt(int64(e)), phi)
		if d == nil || p.Cmp(q) == 0 {
			continue
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: e},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		k.Precompute()
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
		return k
	}
}

// sanExtension builds a raw subjectAltName extension from GeneralNames.
func sanExtension(t testing.TB, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSAN, Value: v}
}

func dnsGN(name string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(name)}
}

func csrWith(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCheckCSR(t *testing.T) {
	certKey := mustKey(t)
	acctKey := mustKey(t)
	acctJWK := mustJWK(t, acctKey.Public())
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaE3 := rsaKeyWithExponent(t, 2048, 3)
	otherNameInner := append(mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}),
		mustMarshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
			Bytes: mustMarshal(t, "user@example.internal")})...)

	ids := dnsIDs("a.internal", "b.internal")
	good := makeCSR(t, certKey, "", []string{"a.internal", "b.internal"}, nil)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-3] ^= 0xff

	tests := []struct {
		name   string
		der    []byte
		ids    []core.Identifier
		jwk    []byte
		kind   core.ErrorKind // "" = accepted
		detail string
	}{
		{name: "ok SAN only", der: good, ids: ids, jwk: acctJWK},
		{name: "ok CN also in SAN", der: makeCSR(t, certKey, "a.internal", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok CN only names one identifier", der: makeCSR(t, certKey, "b.internal", []string{"a.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok case-insensitive", der: makeCSR(t, certKey, "", []string{"A.Internal", "b.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok IP, mapped v4 and v6", der: makeCSR(t, certKey, "", nil, []net.IP{net.ParseIP("::ffff:10.0.0.1"), net.ParseIP("fd00::1")}),
			ids: []core.Identifier{{Type: core.IP, Value: "10.0.0.1"}, {Type: core.IP, Value: "fd00:0::1"}}, jwk: acctJWK},
		{name: "ok IP CN", der: makeCSR(t, certKey, "10.0.0.1", nil, nil), ids: []core.Identifier{{Type: core.IP, Value: "10.0.0.1"}}, jwk: acctJWK},
		{name: "ok P-384", der: makeCSR(t, p384, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok Ed25519", der: makeCSR(t, edKey, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok RSA 2048", der: makeCSR(t, sharedRSAKey(t), "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK},
		{name: "ok no account key given", der: good, ids: ids},

		{name: "empty", der: nil, ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "empty"},
		{name: "garbage", der: []byte{0x30, 0x03, 0x02, 0x01, 0x01}, ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "parse"},
		{name: "too large", der: make([]byte, maxCSRSize+1), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "larger"},
		{name: "bad signature", der: badSig, ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "signature"},
		{name: "SHA-1 signature", der: csrWith(t, certKey, &x509.CertificateRequest{DNSNames: []string{"a.internal", "b.internal"},
			SignatureAlgorithm: x509.ECDSAWithSHA1}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "ECDSA-SHA1"},
		{name: "RSA 1024", der: makeCSR(t, rsa1024, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "1024 bits"},
		{name: "RSA e=3", der: makeCSR(t, rsaE3, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "exponent 3"},
		{name: "P-521", der: makeCSR(t, p521, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "P-521"},
		{name: "account key reuse", der: makeCSR(t, acctKey, "", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "account key"},
		{name: "account key not a JWK", der: good, ids: ids, jwk: []byte(`{"kty":"nope"}`), kind: core.KindMalformed, detail: "JWK"},
		{name: "CSR names more than the order", der: makeCSR(t, certKey, "", []string{"a.internal", "b.internal", "c.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "c.internal, which the order does not contain"},
		{name: "CSR names less than the order", der: makeCSR(t, certKey, "", []string{"a.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "does not name the order's b.internal"},
		{name: "CN not an identifier", der: makeCSR(t, certKey, "evil.internal", []string{"a.internal", "b.internal"}, nil), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "common name"},
		{name: "extra IP SAN", der: makeCSR(t, certKey, "", []string{"a.internal", "b.internal"}, []net.IP{net.ParseIP("10.0.0.9")}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "10.0.0.9"},
		{name: "IP identifier as DNS SAN", der: makeCSR(t, certKey, "", []string{"10.0.0.1"}, nil), ids: []core.Identifier{{Type: core.IP, Value: "10.0.0.1"}}, jwk: acctJWK, kind: core.KindBadCSR, detail: "10.0.0.1"},
		{name: "email SAN", der: csrWith(t, certKey, &x509.CertificateRequest{DNSNames: []string{"a.internal", "b.internal"}, EmailAddresses: []string{"x@a.internal"}}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "email"},
		{name: "URI SAN", der: csrWith(t, certKey, &x509.CertificateRequest{DNSNames: []string{"a.internal", "b.internal"}, URIs: []*url.URL{{Scheme: "spiffe", Host: "a.internal"}}}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "URI"},
		{name: "otherName SAN", der: csrWith(t, certKey, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{sanExtension(t, dnsGN("a.internal"), dnsGN("b.internal"),
			asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: otherNameInner})}}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "otherName"},
		{name: "registeredID SAN", der: csrWith(t, certKey, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{sanExtension(t, dnsGN("a.internal"), dnsGN("b.internal"),
			asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03}})}}), ids: ids, jwk: acctJWK, kind: core.KindBadCSR, detail: "registeredID"},
		{name: "no identifiers", der: good, ids: nil, jwk: acctJWK, kind: core.KindMalformed, detail: "no identifiers"},
		{name: "unsupported identifier type", der: good, ids: []core.Identifier{{Type: "email", Value: "x@a.internal"}}, jwk: acctJWK, kind: core.KindUnsupportedIdentifier},
		{name: "invalid IP identifier", der: good, ids: []core.Identifier{{Type: core.IP, Value: "10.0.0.300"}}, jwk: acctJWK, kind: core.KindMalformed, detail: "IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := CheckCSR(tc.der, tc.ids, tc.jwk)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("CheckCSR: %v", err)
				}
				if csr == nil {
					t.Fatal("CheckCSR returned no CSR")
				}
				return
			}
			wantKind(t, err, tc.kind)
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not mention %q", err, tc.detail)
			}
			if csr != nil {
				t.Error("a refused CSR was returned")
			}
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
