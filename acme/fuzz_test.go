package acme

import (
	"errors"
	"slices"
	"testing"

	"github.com/policyca/policyca/core"
)

func FuzzNewOrderPayload(f *testing.F) {
	for _, s := range []string{
		`{"identifiers":[{"type":"dns","value":"a.internal"}]}`,
		`{"identifiers":[{"type":"dns","value":"*.A.internal."},{"type":"ip","value":"::ffff:10.0.0.1"}]}`,
		`{"identifiers":[{"type":"ip","value":"fe80::1%eth0"}],"notBefore":"2030-01-01T00:00:00Z"}`,
		`{"identifiers":[{"type":"dns","value":"a.internal"}],"notBefore":"2030-01-02T00:00:00Z","notAfter":"2030-01-01T00:00:00Z"}`,
		`{"identifiers":[{"type":"email","value":"x@y"}]}`,
		`{"identifiers":null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		or, err := parseNewOrder(payload)
		if err != nil {
			var ce *core.Error
			if !errors.As(err, &ce) {
				t.Fatalf("untyped error %v", err)
			}
			if p := ProblemFor(ce); p.Status != 400 {
				t.Fatalf("problem %+v for a client payload", p)
			}
			return
		}
		if len(or.Identifiers) == 0 || len(or.Identifiers) > maxOrderIdentifiers {
			t.Fatalf("%d identifiers accepted", len(or.Identifiers))
		}
		again, err := core.NormalizeIdentifiers(or.Identifiers)
		if err != nil || !slices.Equal(again, or.Identifiers) {
			t.Fatalf("identifiers not normalised: %v -> %v, %v", or.Identifiers, again, err)
		}
		if !or.NotBefore.IsZero() && !or.NotAfter.IsZero() && !or.NotAfter.After(or.NotBefore) {
			t.Fatalf("notAfter %v not after notBefore %v", or.NotAfter, or.NotBefore)
		}
		// Every accepted identifier gets an authorization with challenges.
		o := &core.Order{ID: "o", AccountID: "a"}
		for _, id := range or.Identifiers {
			if a := newAuthorization(o, id, or.NotAfter); len(a.Challenges) == 0 {
				t.Fatalf("no challenges for %v", id)
			}
		}
	})
}

func FuzzFinalizePayload(f *testing.F) {
	f.Add([]byte(`{"csr":"AAAA"}`))
	f.Add([]byte(`{"csr":""}`))
	f.Add([]byte(`{"csr":"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, err := parseFinalize(payload)
		if err != nil && !core.IsKind(err, core.KindMalformed) && !core.IsKind(err, core.KindBadCSR) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
