package jws_test

import (
	"slices"
	"testing"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// FuzzParse checks that no input panics Parse or ParseInner, that every
// refusal is a *core.Error, and that whatever is accepted satisfies the
// header invariants handlers rely on.
func FuzzParse(f *testing.F) {
	for _, alg := range jws.Algorithms {
		k := key(f, alg)
		f.Add(goJoseSign(f, k, "", "bm9uY2U", "https://ca.test/acme/new-account", []byte(`{"termsOfServiceAgreed":true}`)))
		f.Add(goJoseSign(f, k, "https://ca.test/acme/acct/1", "bm9uY2U", "https://ca.test/acme/order/1", nil))
		f.Add(goJoseSign(f, k, "", "", "https://ca.test/acme/key-change", []byte(`{}`)))
	}
	f.Add([]byte(`{"protected":"e30","payload":"","signature":"AA"}`))
	f.Add([]byte(`{"payload":"","signatures":[]}`))
	f.Add([]byte(`a.b.c`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (*jws.Message, error){jws.Parse, jws.ParseInner} {
			m, err := parse(body)
			if err != nil {
				if e := core.AsError(err); e.Kind == core.KindServerInternal {
					t.Fatalf("refusal is not a client error: %v", err)
				}
				continue
			}
			h := m.Header
			if !slices.Contains(jws.Algorithms, h.Alg) || h.URL == "" || (h.JWK == nil) == (h.KID == "") {
				t.Fatalf("accepted header %+v", h)
			}
			if h.JWK != nil {
				if _, err := jws.Thumbprint(h.JWK); err != nil {
					t.Fatalf("accepted key has no thumbprint: %v", err)
				}
				// Verifying must not panic whatever the signature; with the
				// embedded key it may or may not succeed.
				if _, err := m.Verify(h.JWK); err == nil && m.IsPostAsGet() != (len(mustPayload(t, m, h)) == 0) {
					t.Fatal("IsPostAsGet disagrees with the payload")
				}
			}
		}
	})
}

func mustPayload(t *testing.T, m *jws.Message, h jws.Header) []byte {
	t.Helper()
	p, err := m.Verify(h.JWK)
	if err != nil {
		t.Fatalf("second Verify failed: %v", err)
	}
	return p
}
