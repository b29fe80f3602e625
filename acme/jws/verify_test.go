package jws_test

import (
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// TestVerifyRefusesMisencodedSignatures covers the signature encodings the
// verifier must not accept: ECDSA signatures in ASN.1 (RFC 7518 §3.4 wants
// R || S), of the wrong length, or with R or S zero; truncated RSA and
// Ed25519 signatures.
func TestVerifyRefusesMisencodedSignatures(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "EdDSA"} {
		k := key(t, alg)
		good := rawSign(t, k, header(t, k, "k", nil), []byte(`{}`))
		var parts map[string]string
		if err := json.Unmarshal(good, &parts); err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts["signature"])
		if err != nil {
			t.Fatal(err)
		}
		variants := map[string][]byte{
			"truncated":  sig[:len(sig)-1],
			"extended":   append(append([]byte(nil), sig...), 0),
			"bit flip":   flip(sig),
			"all zeroes": make([]byte, len(sig)),
		}
		if alg[:2] == "ES" {
			half := len(sig) / 2
			r, s := new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])
			der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
			if err != nil {
				t.Fatal(err)
			}
			variants["ASN.1 DER"] = der
			variants["R zero"] = append(make([]byte, half), sig[half:]...)
			variants["S zero"] = append(append([]byte(nil), sig[:half]...), make([]byte, half)...)
		}
		// The untouched signature verifies, so each refusal below is
		// about the encoding alone.
		m, err := jws.Parse(good)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Verify(k.jwk()); err != nil {
			t.Fatalf("%s: good signature refused: %v", alg, err)
		}
		for name, bad := range variants {
			t.Run(alg+"/"+name, func(t *testing.T) {
				m, err := jws.Parse(flat(parts["protected"], parts["payload"], base64.RawURLEncoding.EncodeToString(bad)))
				if err != nil {
					wantKind(t, err, core.KindMalformed)
					return
				}
				_, err = m.Verify(k.jwk())
				wantKind(t, err, core.KindMalformed)
			})
		}
	}
}

// TestVerifyPayloadIsACopy makes sure a caller changing the returned
// payload cannot change what a second Verify returns.
func TestVerifyPayloadIsACopy(t *testing.T) {
	k := key(t, "ES256")
	m, err := jws.Parse(rawSign(t, k, header(t, k, "k", nil), []byte(`{"a":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Verify(k.jwk())
	if err != nil {
		t.Fatal(err)
	}
	p[0] = 'X'
	if p2, err := m.Verify(k.jwk()); err != nil || string(p2) != `{"a":1}` {
		t.Fatalf("second Verify = %q, %v", p2, err)
	}
}

func flip(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x01
	return c
}
