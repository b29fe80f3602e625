package jws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

func TestParseVerifyValid(t *testing.T) {
	const url = "https://ca.test/acme/new-order"
	tests := []struct {
		name    string
		alg     string
		kid     string
		payload []byte
		rawSign bool
	}{
		{name: "ES256 jwk", alg: "ES256", payload: []byte(`{"termsOfServiceAgreed":true}`)},
		{name: "ES384 kid", alg: "ES384", kid: "https://ca.test/acme/acct/1", payload: []byte(`{}`)},
		{name: "ES512 kid", alg: "ES512", kid: "https://ca.test/acme/acct/1", payload: []byte(`{}`)},
		{name: "RS256 kid", alg: "RS256", kid: "https://ca.test/acme/acct/2", payload: []byte(`{"identifiers":[]}`)},
		{name: "EdDSA jwk", alg: "EdDSA", payload: []byte(`{"contact":[]}`)},
		{name: "POST-as-GET", alg: "ES256", kid: "https://ca.test/acme/acct/1", payload: []byte{}},
		{name: "hand-made ES256", alg: "ES256", payload: []byte(`{}`), rawSign: true},
		{name: "hand-made RS256 post-as-get", alg: "RS256", kid: "k", payload: nil, rawSign: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := key(t, tc.alg)
			var body []byte
			if tc.rawSign {
				body = rawSign(t, k, header(t, k, tc.kid, map[string]any{"url": url}), tc.payload)
			} else {
				body = goJoseSign(t, k, tc.kid, "bm9uY2U", url, tc.payload)
			}
			m, err := jws.Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			h := m.Header
			if h.Alg != tc.alg || h.URL != url || h.Nonce != "bm9uY2U" || h.KID != tc.kid {
				t.Fatalf("header = %+v", h)
			}
			if (h.JWK == nil) == (tc.kid == "") {
				t.Fatalf("jwk %v with kid %q", h.JWK, tc.kid)
			}
			if m.IsPostAsGet() {
				t.Fatal("IsPostAsGet before Verify")
			}
			verifyKey := h.JWK
			if verifyKey == nil {
				verifyKey = k.jwk()
			}
			got, err := m.Verify(verifyKey)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if string(got) != string(tc.payload) {
				t.Fatalf("payload = %q, want %q", got, tc.payload)
			}
			if m.IsPostAsGet() != (len(tc.payload) == 0) {
				t.Fatalf("IsPostAsGet = %v for payload %q", m.IsPostAsGet(), tc.payload)
			}
			if tc.kid == "" && !jws.KeysEqual(h.JWK, k.jwk()) {
				t.Fatal("embedded jwk is not the signing key")
			}
		})
	}
}

func TestParseRefusesStructure(t *testing.T) {
	k := key(t, "ES256")
	good := rawSign(t, k, header(t, k, "", nil), []byte(`{}`))
	var parts map[string]string
	if err := json.Unmarshal(good, &parts); err != nil {
		t.Fatal(err)
	}
	p, pl, sig := parts["protected"], parts["payload"], parts["signature"]
	tests := []struct {
		name string
		body string
	}{
		{"empty", ``},
		{"not JSON", `hello`},
		{"JSON array", `[]`},
		{"JSON string", `"a.b.c"`},
		{"null", `null`},
		{"compact serialization", p + "." + pl + "." + sig},
		{"general serialization", `{"payload":"` + pl + `","signatures":[{"protected":"` + p + `","signature":"` + sig + `"}]}`},
		{"general with flattened members", `{"protected":"` + p + `","payload":"` + pl + `","signature":"` + sig + `","signatures":[]}`},
		{"unprotected header", `{"protected":"` + p + `","header":{"kid":"x"},"payload":"` + pl + `","signature":"` + sig + `"}`},
		{"extra member", `{"protected":"` + p + `","payload":"` + pl + `","signature":"` + sig + `","extra":"x"}`},
		{"missing protected", `{"payload":"` + pl + `","signature":"` + sig + `"}`},
		{"missing payload", `{"protected":"` + p + `","signature":"` + sig + `"}`},
		{"missing signature", `{"protected":"` + p + `","payload":"` + pl + `"}`},
		{"payload not a string", `{"protected":"` + p + `","payload":{},"signature":"` + sig + `"}`},
		{"protected null", `{"protected":null,"payload":"` + pl + `","signature":"` + sig + `"}`},
		{"protected a number", `{"protected":1,"payload":"` + pl + `","signature":"` + sig + `"}`},
		// RFC 7515 §7.2.1: the payload is a base64url string; null is not
		// an empty payload (which would be a POST-as-GET).
		{"payload null", `{"protected":"` + p + `","payload":null,"signature":"` + sig + `"}`},
		{"payload a number", `{"protected":"` + p + `","payload":1,"signature":"` + sig + `"}`},
		{"payload false", `{"protected":"` + p + `","payload":false,"signature":"` + sig + `"}`},
		{"signature null", `{"protected":"` + p + `","payload":"` + pl + `","signature":null}`},
		{"duplicate member", `{"protected":"` + p + `","payload":"` + pl + `","payload":"` + pl + `","signature":"` + sig + `"}`},
		{"trailing data", string(good) + `{}`},
		{"trailing garbage", string(good) + `x`},
		{"padded protected", string(flat(p+"==", pl, sig))},
		{"standard base64 alphabet", string(flat(strings.NewReplacer("-", "+", "_", "/").Replace(p)+"+/", pl, sig))},
		{"bad payload base64", string(flat(p, "!!", sig))},
		{"empty signature", string(flat(p, pl, ""))},
		{"empty protected", string(flat("", pl, sig))},
		{"protected not JSON", string(flat(b64("nope"), pl, sig))},
		{"protected is array", string(flat(b64(`["alg"]`), pl, sig))},
		{"protected with trailing data", string(flat(b64(header(t, k, "", nil)+`{}`), pl, sig))},
		{"duplicate header parameter", string(flat(b64(`{"alg":"ES256","alg":"ES256","nonce":"n","url":"u","kid":"k"}`), pl, sig))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jws.Parse([]byte(tc.body))
			wantKind(t, err, core.KindMalformed)
		})
	}
}

func TestParseRefusesHeader(t *testing.T) {
	k := key(t, "ES256")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384 := key(t, "ES384")
	ecPriv := k.priv.(*ecdsa.PrivateKey)
	privJWK := jose.JSONWebKey{Key: ecPriv}
	rsaJWK := key(t, "RS256").jwk()
	tests := []struct {
		name  string
		kid   string
		extra map[string]any
		want  core.ErrorKind
	}{
		{name: "alg none", extra: map[string]any{"alg": "none"}, want: core.KindBadSignatureAlgorithm},
		{name: "alg HS256", kid: "k", extra: map[string]any{"alg": "HS256"}, want: core.KindBadSignatureAlgorithm},
		{name: "alg PS256", extra: map[string]any{"alg": "PS256"}, want: core.KindBadSignatureAlgorithm},
		{name: "alg lower case", extra: map[string]any{"alg": "es256"}, want: core.KindBadSignatureAlgorithm},
		{name: "alg missing", extra: map[string]any{"alg": nil}, want: core.KindBadSignatureAlgorithm},
		{name: "alg not a string", extra: map[string]any{"alg": 256}, want: core.KindMalformed},
		{name: "alg null", extra: map[string]any{"alg": jsonNull}, want: core.KindMalformed},
		{name: "alg does not match curve", extra: map[string]any{"alg": "ES384"}, want: core.KindBadSignatureAlgorithm},
		{name: "alg does not match key type", extra: map[string]any{"alg": "RS256"}, want: core.KindBadSignatureAlgorithm},
		{name: "b64 false", extra: map[string]any{"b64": false, "crit": []string{"b64"}}, want: core.KindMalformed},
		{name: "b64 true", extra: map[string]any{"b64": true}, want: core.KindMalformed},
		{name: "crit", extra: map[string]any{"crit": []string{"exp"}, "exp": 1}, want: core.KindMalformed},
		{name: "jwk and kid", extra: map[string]any{"kid": "https://ca.test/acct/1"}, want: core.KindMalformed},
		{name: "neither jwk nor kid", extra: map[string]any{"jwk": nil}, want: core.KindMalformed},
		{name: "empty kid", kid: "k", extra: map[string]any{"kid": ""}, want: core.KindMalformed},
		{name: "kid not a string", kid: "k", extra: map[string]any{"kid": 1}, want: core.KindMalformed},
		{name: "kid null", kid: "k", extra: map[string]any{"kid": jsonNull}, want: core.KindMalformed},
		{name: "jwk null", extra: map[string]any{"jwk": jsonNull}, want: core.KindMalformed},
		{name: "url missing", extra: map[string]any{"url": nil}, want: core.KindMalformed},
		{name: "url empty", extra: map[string]any{"url": ""}, want: core.KindMalformed},
		{name: "url not a string", extra: map[string]any{"url": true}, want: core.KindMalformed},
		{name: "url null", extra: map[string]any{"url": jsonNull}, want: core.KindMalformed},
		{name: "nonce missing", extra: map[string]any{"nonce": nil}, want: core.KindBadNonce},
		{name: "nonce empty", extra: map[string]any{"nonce": ""}, want: core.KindBadNonce},
		{name: "nonce not a string", extra: map[string]any{"nonce": 5}, want: core.KindMalformed},
		{name: "nonce null", extra: map[string]any{"nonce": jsonNull}, want: core.KindMalformed},
		{name: "jwk with private key", extra: map[string]any{"jwk": privJWK}, want: core.KindMalformed},
		{name: "jwk not an object", extra: map[string]any{"jwk": "key"}, want: core.KindMalformed},
		{name: "jwk with x5c", extra: map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x5c": []string{"AAAA"}}}, want: core.KindMalformed},
		{name: "jwk symmetric", extra: map[string]any{"jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, want: core.KindMalformed},
		{name: "jwk unknown type", extra: map[string]any{"jwk": map[string]any{"kty": "XYZ"}}, want: core.KindBadPublicKey},
		{name: "jwk secp256k1", extra: map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}}, want: core.KindBadPublicKey},
		{name: "jwk point not on curve", extra: map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": b64(strings.Repeat("a", 32)), "y": b64(strings.Repeat("b", 32))}}, want: core.KindBadPublicKey},
		{name: "jwk RSA 1024", extra: map[string]any{"alg": "RS256", "jwk": jose.JSONWebKey{Key: &small.PublicKey}}, want: core.KindBadPublicKey},
		{name: "jwk RSA exponent 1", extra: map[string]any{"alg": "RS256", "jwk": rsaWithExponent(t, rsaJWK, "AQ")}, want: core.KindBadPublicKey},
		{name: "jwk RSA even exponent", extra: map[string]any{"alg": "RS256", "jwk": rsaWithExponent(t, rsaJWK, "AAI")}, want: core.KindBadPublicKey},
		{name: "jwk of another key with wrong alg", extra: map[string]any{"jwk": p384.jwk()}, want: core.KindBadSignatureAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := rawSign(t, k, header(t, k, tc.kid, tc.extra), []byte(`{}`))
			_, err := jws.Parse(body)
			e := wantKind(t, err, tc.want)
			if tc.want == core.KindBadSignatureAlgorithm && len(e.Algorithms) == 0 {
				t.Fatal("badSignatureAlgorithm without algorithms")
			}
		})
	}
}

func rsaWithExponent(t *testing.T, k *jose.JSONWebKey, e string) map[string]any {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["e"] = e
	return m
}

func TestUnsignedRequestIsBadSignatureAlgorithm(t *testing.T) {
	k := key(t, "ES256")
	body := flat(b64(header(t, k, "k", map[string]any{"alg": "none"})), b64(`{}`), "")
	_, err := jws.Parse(body)
	wantKind(t, err, core.KindBadSignatureAlgorithm)
}

func TestBadSignatureAlgorithmListsAlgorithms(t *testing.T) {
	k := key(t, "ES256")
	_, err := jws.Parse(rawSign(t, k, header(t, k, "k", map[string]any{"alg": "none"}), nil))
	e := wantKind(t, err, core.KindBadSignatureAlgorithm)
	if !slices.Equal(e.Algorithms, jws.Algorithms) {
		t.Fatalf("Algorithms = %v, want %v", e.Algorithms, jws.Algorithms)
	}
	// The list in the error must be a copy: a handler that edits it must
	// not change what the server accepts.
	e.Algorithms[0] = "none"
	if jws.Algorithms[0] == "none" {
		t.Fatal("the error shares the Algorithms slice")
	}
}

func TestVerifyRefuses(t *testing.T) {
	es256, es384, ed := key(t, "ES256"), key(t, "ES384"), key(t, "EdDSA")
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(body []byte) []byte {
		var parts map[string]string
		if err := json.Unmarshal(body, &parts); err != nil {
			t.Fatal(err)
		}
		return flat(parts["protected"], b64(`{"evil":true}`), parts["signature"])
	}
	tests := []struct {
		name string
		body []byte
		key  *jose.JSONWebKey
		want core.ErrorKind
	}{
		{"wrong key", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), &jose.JSONWebKey{Key: &other.PublicKey}, core.KindMalformed},
		{"tampered payload", tamper(goJoseSign(t, es256, "k", "n", "u", []byte(`{}`))), es256.jwk(), core.KindMalformed},
		{"tampered empty payload", tamper(goJoseSign(t, ed, "k", "n", "u", nil)), ed.jwk(), core.KindMalformed},
		{"key of another curve", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), es384.jwk(), core.KindBadSignatureAlgorithm},
		{"key of another type", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), ed.jwk(), core.KindBadSignatureAlgorithm},
		{"nil key", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), nil, core.KindServerInternal},
		{"empty key", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), &jose.JSONWebKey{}, core.KindServerInternal},
		{"symmetric key", goJoseSign(t, es256, "k", "n", "u", []byte(`{}`)), &jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")}, core.KindBadPublicKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.Parse(tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			payload, err := m.Verify(tc.key)
			wantKind(t, err, tc.want)
			if payload != nil {
				t.Fatalf("payload %q returned with an error", payload)
			}
			if m.IsPostAsGet() {
				t.Fatal("IsPostAsGet after a failed Verify")
			}
		})
	}
}

func TestVerifyAcceptsPrivateKey(t *testing.T) {
	// A caller holding the private key (tests, the CLI) may verify with it.
	k := key(t, "ES384")
	m, err := jws.Parse(goJoseSign(t, k, "k", "n", "u", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(&jose.JSONWebKey{Key: k.priv}); err != nil {
		t.Fatal(err)
	}
	if !m.IsPostAsGet() {
		t.Fatal("empty payload is not POST-as-GET")
	}
}

func TestParseInner(t *testing.T) {
	newKey := key(t, "EdDSA")
	const url = "https://ca.test/acme/key-change"
	payload := []byte(`{"account":"https://ca.test/acme/acct/1","oldKey":{}}`)
	tests := []struct {
		name string
		body []byte
		want core.ErrorKind // "" for success
	}{
		{"valid", rawSign(t, newKey, header(t, newKey, "", map[string]any{"nonce": nil, "url": url}), payload), ""},
		{"valid from go-jose", goJoseSign(t, newKey, "", "", url, payload), ""},
		{"with nonce", rawSign(t, newKey, header(t, newKey, "", map[string]any{"url": url}), payload), core.KindMalformed},
		{"with kid", rawSign(t, newKey, header(t, newKey, "https://ca.test/acme/acct/1", map[string]any{"nonce": nil}), payload), core.KindMalformed},
		{"with jwk and kid", rawSign(t, newKey, header(t, newKey, "", map[string]any{"nonce": nil, "kid": "x"}), payload), core.KindMalformed},
		{"without url", rawSign(t, newKey, header(t, newKey, "", map[string]any{"nonce": nil, "url": nil}), payload), core.KindMalformed},
		{"alg none", rawSign(t, newKey, header(t, newKey, "", map[string]any{"nonce": nil, "alg": "none"}), payload), core.KindBadSignatureAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.ParseInner(tc.body)
			if tc.want != "" {
				wantKind(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("ParseInner: %v", err)
			}
			if m.Header.URL != url || m.Header.Nonce != "" || m.Header.KID != "" {
				t.Fatalf("header = %+v", m.Header)
			}
			got, err := m.Verify(m.Header.JWK)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if string(got) != string(payload) {
				t.Fatalf("payload = %q", got)
			}
		})
	}
}

func TestParseOuterNeedsNonceWhereInnerForbidsIt(t *testing.T) {
	k := key(t, "ES256")
	body := rawSign(t, k, header(t, k, "", map[string]any{"nonce": nil}), nil)
	if _, err := jws.ParseInner(body); err != nil {
		t.Fatalf("ParseInner: %v", err)
	}
	_, err := jws.Parse(body)
	wantKind(t, err, core.KindBadNonce)
}

func TestSignatureEncodingIsStrict(t *testing.T) {
	// Flipping the unused low bits of the last base64url character gives a
	// second spelling of the same signature; it must not be accepted.
	k := key(t, "ES256") // 64-byte signature: 86 characters, 2 spare bits
	var parts map[string]string
	if err := json.Unmarshal(rawSign(t, k, header(t, k, "k", nil), nil), &parts); err != nil {
		t.Fatal(err)
	}
	sig := parts["signature"]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	alt := sig[:len(sig)-1] + string(alphabet[last^1])
	if _, err := base64.RawURLEncoding.DecodeString(alt); err != nil {
		t.Fatalf("test setup: %v", err)
	}
	_, err := jws.Parse(flat(parts["protected"], parts["payload"], alt))
	wantKind(t, err, core.KindMalformed)
}
