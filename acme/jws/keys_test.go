package jws_test

import (
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// rfc7638Key is the example key of RFC 7638 §3.1, whose thumbprint the RFC
// gives.
const rfc7638Key = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`

const rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

func TestThumbprintRFC7638(t *testing.T) {
	k, err := jws.ParseJWKJSON([]byte(rfc7638Key))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jws.Thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if got != rfc7638Thumbprint {
		t.Fatalf("Thumbprint = %s, want %s", got, rfc7638Thumbprint)
	}
	ka, err := jws.KeyAuthorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA." + rfc7638Thumbprint; ka != want {
		t.Fatalf("KeyAuthorization = %s, want %s", ka, want)
	}
}

func TestThumbprintRefuses(t *testing.T) {
	for name, k := range map[string]*jose.JSONWebKey{"nil": nil, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			_, err := jws.Thumbprint(k)
			wantKind(t, err, core.KindBadPublicKey)
		})
	}
}

func TestKeyAuthorizationRefusesBadToken(t *testing.T) {
	k := key(t, "ES256").jwk()
	for _, token := range []string{"", "a.b", "a b", "tok=", "tök"} {
		t.Run(token, func(t *testing.T) {
			_, err := jws.KeyAuthorization(token, k)
			wantKind(t, err, core.KindMalformed)
		})
	}
	_, err := jws.KeyAuthorization("token", nil)
	wantKind(t, err, core.KindBadPublicKey)
}

func TestKeysEqual(t *testing.T) {
	es, ed := key(t, "ES256"), key(t, "EdDSA")
	withKID := es.jwk()
	withKID.KeyID = "another-name"
	tests := []struct {
		name string
		a, b *jose.JSONWebKey
		want bool
	}{
		{"same key", es.jwk(), es.jwk(), true},
		{"same key, other kid", es.jwk(), withKID, true},
		{"private and public", &jose.JSONWebKey{Key: es.priv}, es.jwk(), true},
		{"different keys", es.jwk(), ed.jwk(), false},
		{"nil", nil, es.jwk(), false},
		{"both nil", nil, nil, false},
		{"empty keys", &jose.JSONWebKey{}, &jose.JSONWebKey{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := jws.KeysEqual(tc.a, tc.b); got != tc.want {
				t.Fatalf("KeysEqual = %v", got)
			}
			if got := jws.KeysEqual(tc.b, tc.a); got != tc.want {
				t.Fatalf("KeysEqual (swapped) = %v", got)
			}
		})
	}
}

func TestMarshalParseJWKRoundTrip(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k := key(t, alg)
			// Marshalling from the private key must still give the public key.
			b, err := jws.MarshalJWK(&jose.JSONWebKey{Key: k.priv})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `"d"`) {
				t.Fatalf("private material in %s", b)
			}
			got, err := jws.ParseJWKJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			if !jws.KeysEqual(got, k.jwk()) {
				t.Fatal("round trip changed the key")
			}
		})
	}
	_, err := jws.MarshalJWK(nil)
	wantKind(t, err, core.KindBadPublicKey)
}

func TestParseJWKJSONRefuses(t *testing.T) {
	priv, err := json.Marshal(jose.JSONWebKey{Key: key(t, "EdDSA").priv})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		json string
		want core.ErrorKind
	}{
		{"private key", string(priv), core.KindMalformed},
		{"not JSON", `{`, core.KindMalformed},
		{"array", `[]`, core.KindMalformed},
		{"duplicate member", `{"kty":"OKP","kty":"EC"}`, core.KindMalformed},
		{"symmetric", `{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`, core.KindMalformed},
		{"missing kty", `{"crv":"P-256"}`, core.KindBadPublicKey},
		{"X25519", `{"kty":"OKP","crv":"X25519","x":"` + b64(strings.Repeat("x", 32)) + `"}`, core.KindBadPublicKey},
		{"short Ed25519", `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`, core.KindBadPublicKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jws.ParseJWKJSON([]byte(tc.json))
			wantKind(t, err, tc.want)
		})
	}
}
