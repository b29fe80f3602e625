package eab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

const testURL = "https://ca.internal/acme/acme/new-account"

func accountKey(t testing.TB) *jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jose.JSONWebKey{Key: k.Public(), Algorithm: "ES256"}
}

// sign builds a binding JWS by hand, so that every field can be made wrong.
func sign(t testing.TB, hdr map[string]any, payload []byte, secret []byte) []byte {
	t.Helper()
	h, _ := json.Marshal(hdr)
	p64 := base64.RawURLEncoding.EncodeToString(h)
	pl64 := base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(p64 + "." + pl64))
	b, _ := json.Marshal(map[string]string{"protected": p64, "payload": pl64, "signature": base64.RawURLEncoding.EncodeToString(m.Sum(nil))})
	return b
}

func jwkJSON(t testing.TB, k *jose.JSONWebKey) []byte {
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goJoseBinding is a binding made the way clients make them (go-jose HS256).
func goJoseBinding(t testing.TB, kid string, secret []byte, key *jose.JSONWebKey, url string) []byte {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"kid": kid, "url": url}})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(jwkJSON(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

type fakeStore struct {
	mu       sync.Mutex
	keys     map[string]*core.EABKey
	accounts []*core.Account
}

func (f *fakeStore) GetEABKey(_ context.Context, id string) (*core.EABKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	c := *k
	return &c, nil
}

func (f *fakeStore) CreateAccountBound(_ context.Context, a *core.Account, kid string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[kid]
	if k.BoundAccount != "" {
		return store.ErrEABUnusable
	}
	k.BoundAccount, k.BoundAt = a.ID, now
	a.EABKeyID = kid
	f.accounts = append(f.accounts, a)
	return nil
}

func TestBinderRefusals(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	key := accountKey(t)
	other := accountKey(t)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	good := map[string]any{"alg": "HS256", "kid": "k1", "url": testURL}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		binding []byte
		kind    core.ErrorKind
		detail  string
	}{
		{"not JSON", []byte("nope"), core.KindMalformed, "not a JWS"},
		{"compact serialization", []byte(`"a.b.c"`), core.KindMalformed, "not a JWS"},
		{"extra member", []byte(`{"protected":"e30","payload":"e30","signature":"AA","header":{}}`), core.KindMalformed, "not a JWS"},
		{"missing signature", []byte(`{"protected":"e30","payload":"e30"}`), core.KindMalformed, "must have"},
		{"bad base64", []byte(`{"protected":"e30=","payload":"e30","signature":"AA"}`), core.KindMalformed, "base64url"},
		{"header not object", sign(t, nil, jwkJSON(t, key), secret), core.KindMalformed, "header"},
		{"RS256", sign(t, with("alg", "RS256"), jwkJSON(t, key), secret), core.KindBadSignatureAlgorithm, "HS256"},
		{"none", sign(t, with("alg", "none"), jwkJSON(t, key), secret), core.KindBadSignatureAlgorithm, "HS256"},
		{"no kid", sign(t, with("kid", nil), jwkJSON(t, key), secret), core.KindMalformed, "alg, kid and url"},
		{"nonce", sign(t, with("nonce", "abc"), jwkJSON(t, key), secret), core.KindMalformed, "nonce"},
		{"jwk header", sign(t, with("jwk", map[string]any{}), jwkJSON(t, key), secret), core.KindMalformed, "unsupported header"},
		{"wrong url", sign(t, with("url", "https://ca.internal/acme/other/new-account"), jwkJSON(t, key), secret), core.KindMalformed, "not the newAccount URL"},
		{"payload another key", sign(t, good, jwkJSON(t, other), secret), core.KindMalformed, "not the account key"},
		{"payload not a key", sign(t, good, []byte(`{"hello":1}`), secret), core.KindMalformed, "not the account key"},
		{"wrong MAC", sign(t, good, jwkJSON(t, key), []byte("another secret, not the right one")), core.KindUnauthorized, "does not verify"},
		{"unknown kid", sign(t, with("kid", "nope"), jwkJSON(t, key), secret), core.KindUnauthorized, "unknown"},
		{"revoked", sign(t, with("kid", "revoked"), jwkJSON(t, key), secret), core.KindUnauthorized, "revoked"},
		{"expired", sign(t, with("kid", "expired"), jwkJSON(t, key), secret), core.KindUnauthorized, "expired"},
		{"other provisioner", sign(t, with("kid", "elsewhere"), jwkJSON(t, key), secret), core.KindUnauthorized, "another provisioner"},
		{"already bound", sign(t, with("kid", "bound"), jwkJSON(t, key), secret), core.KindUnauthorized, "already bound"},
		{"too large", append([]byte(`{"protected":"`), append([]byte(strings.Repeat("A", MaxBindingSize)), `"}`...)...), core.KindMalformed, "larger"},
	}
	fs := &fakeStore{keys: map[string]*core.EABKey{
		"k1":        {ID: "k1", Provisioner: "acme", HMACKey: secret},
		"revoked":   {ID: "revoked", Provisioner: "acme", HMACKey: secret, RevokedAt: now.Add(-time.Hour)},
		"expired":   {ID: "expired", Provisioner: "acme", HMACKey: secret, ExpiresAt: now},
		"elsewhere": {ID: "elsewhere", Provisioner: "other", HMACKey: secret},
		"bound":     {ID: "bound", Provisioner: "acme", HMACKey: secret, BoundAccount: "a0"},
	}}
	b := &Binder{Store: fs, Now: func() time.Time { return now }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.CreateBoundAccount(context.Background(), &core.Account{ID: "new", Provisioner: "acme"}, tt.binding, key, testURL)
			var e *core.Error
			if !errors.As(err, &e) || e.Kind != tt.kind || !strings.Contains(e.Detail, tt.detail) {
				t.Fatalf("err = %v, want %s containing %q", err, tt.kind, tt.detail)
			}
			if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), EncodeHMAC(secret)) {
				t.Fatal("the HMAC key leaked into an error")
			}
			if tt.kind == core.KindBadSignatureAlgorithm && len(e.Algorithms) != 3 {
				t.Errorf("algorithms = %v", e.Algorithms)
			}
		})
	}
	if len(fs.accounts) != 0 {
		t.Fatalf("refused bindings created %d accounts", len(fs.accounts))
	}

	// The same binding, correct, made by go-jose as clients do: one account,
	// bound; the second use of the key is refused.
	acct := &core.Account{ID: "a1", Provisioner: "acme"}
	if err := b.CreateBoundAccount(context.Background(), acct, goJoseBinding(t, "k1", secret, key, testURL), key, testURL); err != nil {
		t.Fatal(err)
	}
	if acct.EABKeyID != "k1" || fs.keys["k1"].BoundAccount != "a1" {
		t.Fatalf("not bound: %+v", fs.keys["k1"])
	}
	err := b.CreateBoundAccount(context.Background(), &core.Account{ID: "a2", Provisioner: "acme"}, goJoseBinding(t, "k1", secret, other, testURL), other, testURL)
	if !core.IsKind(err, core.KindUnauthorized) {
		t.Fatalf("second binding: %v", err)
	}
}

func TestNewKey(t *testing.T) {
	a, err := NewKey("acme", "web-17", time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKey("acme", "web-17", time.Time{}, nil)
	if a.ID == b.ID || string(a.HMACKey) == string(b.HMACKey) || len(a.HMACKey) != 32 {
		t.Fatal("keys are not random 256-bit secrets with distinct ids")
	}
	if dec, err := base64.RawURLEncoding.DecodeString(EncodeHMAC(a.HMACKey)); err != nil || string(dec) != string(a.HMACKey) {
		t.Fatal("EncodeHMAC is not base64url")
	}
	if _, err := NewKey("", "x", time.Time{}, nil); err == nil {
		t.Fatal("key without provisioner")
	}
}

func FuzzParse(f *testing.F) {
	key := accountKey(f)
	secret := []byte("0123456789abcdef0123456789abcdef")
	f.Add(goJoseBinding(f, "k1", secret, key, testURL))
	f.Add([]byte(`{"protected":"e30","payload":"e30","signature":"AA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := Parse(raw, key, testURL)
		if err != nil {
			if _, ok := err.(*core.Error); !ok {
				t.Fatalf("error is not a *core.Error: %T", err)
			}
			return
		}
		if b.URL != testURL || b.KID == "" || hashFor(b.Alg) == nil {
			t.Fatalf("accepted a binding with bad header: %+v", b)
		}
		_ = b.Verify(secret)
	})
}
