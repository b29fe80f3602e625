package jws_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
)

// testKey is an account key with the algorithm it signs with.
type testKey struct {
	alg  string
	priv crypto.Signer
}

func (k testKey) jwk() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: k.priv.Public()}
}

// keys are generated once: RSA generation is slow under -race.
var keys = sync.OnceValue(func() map[string]testKey {
	m := map[string]testKey{}
	for name, curve := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			panic(err)
		}
		m[name] = testKey{name, k}
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	m["RS256"] = testKey{"RS256", r}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	m["EdDSA"] = testKey{"EdDSA", ed}
	return m
})

func key(t testing.TB, alg string) testKey {
	t.Helper()
	k, ok := keys()[alg]
	if !ok {
		t.Fatalf("no test key for %s", alg)
	}
	return k
}

// goJoseSign makes a request the way ACME clients built on go-jose do, so
// that the parser is tested against an independent producer.
func goJoseSign(t testing.TB, k testKey, kid, nonce, url string, payload []byte) []byte {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"url": url}}
	if nonce != "" {
		opts.ExtraHeaders["nonce"] = nonce
	}
	var sk jose.SigningKey
	if kid != "" {
		sk = jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: jose.JSONWebKey{Key: k.priv, KeyID: kid}}
	} else {
		opts.EmbedJWK = true
		sk = jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	// go-jose omits the payload member for a nil payload, which RFC 7515
	// §7.2.1 does not allow; ACME clients sign []byte{} for POST-as-GET.
	if payload == nil {
		payload = []byte{}
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

// rawSign signs an arbitrary protected header with k, so that tests can
// build the malformed headers no JWS library would produce.
func rawSign(t *testing.T, k testKey, protected string, payload []byte) []byte {
	t.Helper()
	p := b64(protected)
	pl := base64.RawURLEncoding.EncodeToString(payload)
	return flat(p, pl, b64(string(sign(t, k, p+"."+pl))))
}

func sign(t *testing.T, k testKey, input string) []byte {
	t.Helper()
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		var h []byte
		switch priv.Curve {
		case elliptic.P256():
			s := sha256.Sum256([]byte(input))
			h = s[:]
		case elliptic.P384():
			s := sha512.Sum384([]byte(input))
			h = s[:]
		default:
			s := sha512.Sum512([]byte(input))
			h = s[:]
		}
		r, s, err := ecdsa.Sign(rand.Reader, priv, h)
		if err != nil {
			t.Fatal(err)
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		h := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, []byte(input))
	}
	t.Fatalf("unsupported key %T", k.priv)
	return nil
}

// header builds a protected header from k's public key (as jwk) or kid,
// with extra members merged over the defaults; a nil value removes one.
func header(t *testing.T, k testKey, kid string, extra map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg, "nonce": "bm9uY2U", "url": "https://ca.test/acme/new-order"}
	if kid != "" {
		h["kid"] = kid
	} else {
		h["jwk"] = k.jwk()
	}
	for name, v := range extra {
		if v == nil {
			delete(h, name)
			continue
		}
		h[name] = v
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsonNull is a header value that marshals as JSON null (a nil value in
// header's extra removes the parameter instead).
var jsonNull = json.RawMessage("null")

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func flat(protected, payload, signature string) []byte {
	b, err := json.Marshal(map[string]string{"protected": protected, "payload": payload, "signature": signature})
	if err != nil {
		panic(err)
	}
	return b
}

// wantKind fails unless err is a *core.Error of kind want.
func wantKind(t *testing.T, err error, want core.ErrorKind) *core.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	var e *core.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *core.Error of kind %s", err, err, want)
	}
	if e.Kind != want {
		t.Fatalf("got kind %s (%v), want %s", e.Kind, err, want)
	}
	if e.Detail == "" {
		t.Fatalf("error of kind %s has no detail", e.Kind)
	}
	return e
}
