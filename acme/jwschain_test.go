package acme

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/policyca/policyca/acme/jws"
)

// rawJWS builds a flattened JWS by hand, for headers go-jose refuses to
// produce (alg none, MAC algorithms).
func rawJWS(t testing.TB, protected map[string]any, payload, sig []byte) []byte {
	t.Helper()
	ph, err := json.Marshal(protected)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"protected": base64.RawURLEncoding.EncodeToString(ph),
		"payload":   base64.RawURLEncoding.EncodeToString(payload),
		"signature": base64.RawURLEncoding.EncodeToString(sig),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hs256(protected map[string]any, payload []byte) []byte {
	ph, _ := json.Marshal(protected)
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	mac.Write([]byte(base64.RawURLEncoding.EncodeToString(ph) + "." + base64.RawURLEncoding.EncodeToString(payload)))
	return mac.Sum(nil)
}

func TestJWSChainRefusals(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.MaxBodyBytes = 4096
		o.Provisioners = append(o.Provisioners, Provisioner{Name: "other", Validator: &fakeValidator{}})
	})
	c := env.newClient(t)
	c.register()
	orderURL := env.url("/new-order")
	payload := []byte(`{"identifiers":[{"type":"dns","value":"a.internal"}]}`)

	deact := env.newClient(t)
	deact.register()
	if r := deact.post(deact.kid, map[string]string{"status": "deactivated"}); r.status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", r.status, r.body)
	}

	other := env.newClient(t)
	other.dir = env.base + "/acme/other"
	other.register()
	// This provisioner's URL of other's account, other's URL of c's.
	otherHere := env.url("/account/" + lastSegment(other.kid))
	cThere := other.dir + "/account/" + lastSegment(c.kid)

	// A forged request (signed by a key that is not the account's) must
	// learn nothing about the account: not its status, not its provisioner
	// (§6.2: the signature is checked first).
	tellsNothing := func(t *testing.T, _ *response, p Problem) {
		for _, w := range []string{"deactivated", "provisioner", "other"} {
			if strings.Contains(p.Detail, w) {
				t.Errorf("forged request told %q", p.Detail)
			}
		}
	}

	// A nonce that was used once already.
	used := c.nonce()
	if r := c.postWith(orderURL, payload, signOpts{nonce: used}); r.status != http.StatusCreated {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}

	tests := []struct {
		name       string
		send       func() *response
		wantStatus int
		wantType   string
		check      func(t *testing.T, r *response, p Problem)
	}{
		{
			name: "replayed nonce", wantStatus: 400, wantType: "badNonce",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{nonce: used}) },
			check: func(t *testing.T, r *response, p Problem) {
				if n := r.header.Get("Replay-Nonce"); n == "" || n == used {
					t.Errorf("badNonce response must carry a fresh nonce, got %q", n)
				}
			},
		},
		{
			name: "unknown nonce", wantStatus: 400, wantType: "badNonce",
			send: func() *response {
				return c.postWith(orderURL, payload, signOpts{nonce: "AAAAAAAAAAAAAAAAAAAAAA"})
			},
		},
		{
			name: "no nonce", wantStatus: 400, wantType: "badNonce",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{noNonce: true}) },
		},
		{
			name: "url mismatch", wantStatus: 403, wantType: "unauthorized",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{url: env.url("/revoke-cert")}) },
		},
		{
			name: "alg none", wantStatus: 400, wantType: "badSignatureAlgorithm",
			send: func() *response {
				body := rawJWS(t, map[string]any{"alg": "none", "nonce": c.nonce(), "url": orderURL, "kid": c.kid}, payload, []byte("x"))
				return c.postRaw(orderURL, body, "application/jose+json")
			},
			check: func(t *testing.T, _ *response, p Problem) {
				if !slices.Equal(p.Algorithms, jws.Algorithms) {
					t.Errorf("algorithms = %v, want %v", p.Algorithms, jws.Algorithms)
				}
			},
		},
		{
			// An unsecured JWS as RFC 7515 spells it (empty signature).
			name: "alg none, empty signature", wantStatus: 400, wantType: "badSignatureAlgorithm",
			send: func() *response {
				body := rawJWS(t, map[string]any{"alg": "none", "nonce": c.nonce(), "url": orderURL, "kid": c.kid}, payload, nil)
				return c.postRaw(orderURL, body, "application/jose+json")
			},
		},
		{
			name: "HS256", wantStatus: 400, wantType: "badSignatureAlgorithm",
			send: func() *response {
				h := map[string]any{"alg": "HS256", "nonce": c.nonce(), "url": orderURL, "kid": c.kid}
				return c.postRaw(orderURL, rawJWS(t, h, payload, hs256(h, payload)), "application/jose+json")
			},
			check: func(t *testing.T, _ *response, p Problem) {
				if !slices.Equal(p.Algorithms, jws.Algorithms) {
					t.Errorf("algorithms = %v", p.Algorithms)
				}
			},
		},
		{
			name: "jwk and kid", wantStatus: 400, wantType: "malformed",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{embedJWK: true}) },
		},
		{
			name: "neither jwk nor kid", wantStatus: 400, wantType: "malformed",
			send: func() *response {
				h := map[string]any{"alg": "ES256", "nonce": c.nonce(), "url": orderURL}
				return c.postRaw(orderURL, rawJWS(t, h, payload, make([]byte, 64)), "application/jose+json")
			},
		},
		{
			name: "jwk on a kid resource", wantStatus: 400, wantType: "malformed",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{forceJWK: true}) },
		},
		{
			name: "kid on newAccount", wantStatus: 400, wantType: "malformed",
			send: func() *response { return c.postWith(env.url("/new-account"), []byte(`{}`), signOpts{}) },
		},
		{
			name: "wrong content type", wantStatus: 415, wantType: "malformed",
			send: func() *response {
				return c.postRaw(orderURL, c.sign(orderURL, payload, signOpts{}), "application/json")
			},
		},
		{
			name: "oversized body", wantStatus: 413, wantType: "malformed",
			send: func() *response {
				big := []byte(`{"identifiers":[],"pad":"` + strings.Repeat("x", 8192) + `"}`)
				return c.postWith(orderURL, big, signOpts{})
			},
		},
		{
			name: "unknown account", wantStatus: 400, wantType: "accountDoesNotExist",
			send: func() *response {
				return c.postWith(orderURL, payload, signOpts{kid: env.url("/account/nosuchaccount")})
			},
		},
		{
			name: "kid not an account URL", wantStatus: 400, wantType: "accountDoesNotExist",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{kid: "https://elsewhere/account/1"}) },
		},
		{
			name: "account URL with a suffix", wantStatus: 400, wantType: "accountDoesNotExist",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{kid: c.kid + "/orders"}) },
		},
		{
			name: "account of another provisioner", wantStatus: 403, wantType: "unauthorized",
			send: func() *response {
				o := env.newClient(t)
				o.dir = env.base + "/acme/other"
				o.register()
				return o.postWith(orderURL, payload, signOpts{})
			},
		},
		{
			name: "another provisioner's account at this provisioner's URL", wantStatus: 403, wantType: "unauthorized",
			send: func() *response { return other.postWith(orderURL, payload, signOpts{kid: otherHere}) },
		},
		{
			name: "account at another provisioner's URL", wantStatus: 403, wantType: "unauthorized",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{kid: cThere}) },
		},
		{
			name: "unknown account at another provisioner's URL", wantStatus: 400, wantType: "accountDoesNotExist",
			send: func() *response {
				return c.postWith(orderURL, payload, signOpts{kid: other.dir + "/account/nosuchaccount"})
			},
		},
		{
			name: "deactivated account", wantStatus: 403, wantType: "unauthorized",
			send: func() *response { return deact.post(orderURL, payload) },
		},
		{
			name: "deactivated account, forged signature", wantStatus: 400, wantType: "malformed",
			send:  func() *response { return c.postWith(orderURL, payload, signOpts{kid: deact.kid}) },
			check: tellsNothing,
		},
		{
			name: "another provisioner's account, forged signature", wantStatus: 400, wantType: "malformed",
			send:  func() *response { return c.postWith(orderURL, payload, signOpts{kid: other.kid}) },
			check: tellsNothing,
		},
		{
			name: "another provisioner's account at this provisioner's URL, forged signature", wantStatus: 400, wantType: "malformed",
			send:  func() *response { return c.postWith(orderURL, payload, signOpts{kid: otherHere}) },
			check: tellsNothing,
		},
		{
			name: "signed by another key", wantStatus: 400, wantType: "malformed",
			send: func() *response { return c.postWith(orderURL, payload, signOpts{key: newKey(t)}) },
		},
		{
			name: "GET on a POST resource", wantStatus: 405, wantType: "malformed",
			send: func() *response { return c.get(orderURL) },
			check: func(t *testing.T, r *response, _ Problem) {
				if r.header.Get("Allow") != "POST" {
					t.Errorf("Allow = %q", r.header.Get("Allow"))
				}
			},
		},
		{
			// Not an empty payload: a POST-as-GET is "payload": "".
			name: "payload null", wantStatus: 400, wantType: "malformed",
			send: func() *response {
				var m map[string]any
				if err := json.Unmarshal(c.sign(c.kid, nil, signOpts{}), &m); err != nil {
					t.Fatal(err)
				}
				m["payload"] = nil
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				return c.postRaw(c.kid, b, "application/jose+json")
			},
		},
		{
			name: "not JSON", wantStatus: 400, wantType: "malformed",
			send: func() *response { return c.postRaw(orderURL, []byte("not a jws"), "application/jose+json") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send()
			p := r.wantProblem(t, tt.wantStatus, tt.wantType)
			if p.Detail == "" {
				t.Error("problem has no detail")
			}
			if r.header.Get("Replay-Nonce") == "" {
				t.Error("problem response has no Replay-Nonce")
			}
			if tt.check != nil {
				tt.check(t, r, p)
			}
		})
	}
}

func TestCheckContentType(t *testing.T) {
	tests := []struct {
		ct string
		ok bool
	}{
		{"application/jose+json", true},
		{"Application/JOSE+JSON", true},
		{"application/json", false},
		{"", false},
		{"application/jose+json; charset=utf-8", false},
		{"application/jose", false},
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Content-Type", tt.ct)
			err := checkContentType(r)
			if (err == nil) != tt.ok {
				t.Errorf("checkContentType(%q) = %v", tt.ct, err)
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	s := &Server{maxBody: 10}
	tests := []struct {
		name     string
		body     string
		declared int64 // Content-Length; -1 for unknown
		ok       bool
	}{
		{"fits", "0123456789", 10, true},
		{"too long", "0123456789a", 11, false},
		{"too long, unknown length", "0123456789a", -1, false},
		{"lying length", "0123456789abc", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			r.ContentLength = tt.declared
			b, err := s.readBody(httptest.NewRecorder(), r)
			if tt.ok != (err == nil) {
				t.Fatalf("readBody = %q, %v", b, err)
			}
			if !tt.ok && ProblemFor(err).Status != http.StatusRequestEntityTooLarge {
				t.Errorf("problem = %+v", ProblemFor(err))
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	s := &Server{base: "https://ca.internal:8443"}
	tests := []struct {
		target, signed string
		ok             bool
	}{
		{"/acme/p/new-order", "https://ca.internal:8443/acme/p/new-order", true},
		{"/acme/p/account/x/orders?cursor=abc", "https://ca.internal:8443/acme/p/account/x/orders?cursor=abc", true},
		{"/acme/p/account/x/orders?cursor=abc", "https://ca.internal:8443/acme/p/account/x/orders", false},
		{"/acme/p/new-order", "http://ca.internal:8443/acme/p/new-order", false},
		{"/acme/p/new-order", "https://evil.internal:8443/acme/p/new-order", false},
		{"/acme/p/new-order", "https://ca.internal:8443/acme/p/new-order/", false},
	}
	for _, tt := range tests {
		t.Run(tt.target+" "+tt.signed, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.target, nil)
			err := s.checkURL(r, &jws.Message{Header: jws.Header{URL: tt.signed}})
			if (err == nil) != tt.ok {
				t.Errorf("checkURL = %v", err)
			}
		})
	}
}
