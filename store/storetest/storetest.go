package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// TimePrecision is the precision to which backends must preserve times.
const TimePrecision = time.Microsecond

// Run runs the contract suite against the backend returned by open, which
// must return a fresh, empty store each time it is called. Each subtest gets
// its own store, so subtests are independent; Run closes the stores.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Accounts", accountTests},
		{"Orders", orderTests},
		{"Authorizations", authzTests},
		{"Certificates", certificateTests},
		{"Times", timeTests},
		{"Concurrency", concurrencyTests},
		{"EAB", eabTests},
		{"Decisions", decisionTests},
		{"Nonces", nonceTests},
		{"RARegistry", raTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.run(t, s)
				})
			}
		})
	}
	t.Run("Ping", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

type subtest struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// baseTime has sub-microsecond digits and a non-UTC zone on purpose: the
// suite checks that both are normalised the documented way.
var baseTime = time.Date(2031, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+5:30", 5*3600+1800))

func newID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	return hex.EncodeToString(b)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func newAccount(t *testing.T) *core.Account {
	t.Helper()
	return &core.Account{
		ID:            newID(t),
		Provisioner:   "acme",
		KeyThumbprint: newID(t),
		KeyJWK:        []byte(`{"kty":"EC","crv":"P-256","x":"x","y":"y"}`),
		Contact:       []string{"mailto:ops@example.internal", "mailto:pki@example.internal"},
		Status:        core.StatusValid,
		TermsAgreed:   true,
		EABKeyID:      "kid-" + newID(t),
		CreatedAt:     baseTime,
	}
}

// mustAccount creates an account so that orders have an owner.
func mustAccount(t *testing.T, s store.Store) *core.Account {
	t.Helper()
	a := newAccount(t)
	noErr(t, "CreateAccount", s.CreateAccount(ctxT(t), a))
	return a
}

// newOrder returns an order for acct with one pending authorization per
// identifier; the authorizations' IDs are listed in the order.
func newOrder(t *testing.T, acct *core.Account, names ...string) (*core.Order, []*core.Authorization) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"a.example.internal"}
	}
	o := &core.Order{
		ID:          newID(t),
		AccountID:   acct.ID,
		Provisioner: acct.Provisioner,
		Status:      core.StatusPending,
		Expires:     baseTime.Add(7 * 24 * time.Hour),
		NotBefore:   baseTime,
		NotAfter:    baseTime.Add(90 * 24 * time.Hour),
		CreatedAt:   baseTime,
	}
	var authzs []*core.Authorization
	for _, n := range names {
		id := core.Identifier{Type: core.DNS, Value: n}
		o.Identifiers = append(o.Identifiers, id)
		a := &core.Authorization{
			ID:         newID(t),
			AccountID:  acct.ID,
			OrderID:    o.ID,
			Identifier: id,
			Status:     core.StatusPending,
			Expires:    baseTime.Add(24 * time.Hour),
			Challenges: []core.Challenge{
				{ID: newID(t), Type: core.ChallengeHTTP01, Token: newID(t), Status: core.StatusPending},
				{ID: newID(t), Type: core.ChallengeDNS01, Token: newID(t), Status: core.StatusPending},
			},
		}
		authzs = append(authzs, a)
		o.AuthzIDs = append(o.AuthzIDs, a.ID)
	}
	return o, authzs
}

func mustOrder(t *testing.T, s store.Store, acct *core.Account, names ...string) (*core.Order, []*core.Authorization) {
	t.Helper()
	o, authzs := newOrder(t, acct, names...)
	noErr(t, "CreateOrder", s.CreateOrder(ctxT(t), o, authzs))
	return o, authzs
}

func newCertificate(t *testing.T, o *core.Order) *core.Certificate {
	t.Helper()
	return &core.Certificate{
		ID:             newID(t),
		Serial:         "7" + newID(t),
		AccountID:      o.AccountID,
		OrderID:        o.ID,
		Provisioner:    o.Provisioner,
		DER:            []byte{0x30, 0x82, 0x01, 0x0a, 0x02},
		ChainPEM:       []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		NotBefore:      baseTime,
		NotAfter:       baseTime.Add(90 * 24 * time.Hour),
		Names:          o.Identifiers,
		PolicyRevision: "rev-42",
		DecisionID:     "dec-" + newID(t),
		CreatedAt:      baseTime,
	}
}

// Normalisation to the documented precision, so that expected and stored
// values can be compared with reflect.DeepEqual. Empty and nil slices are
// treated alike because SQL backends cannot always tell them apart.

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(TimePrecision)
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normIDs(ids []core.Identifier) []core.Identifier {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

func normStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normError(e *core.Error) *core.Error {
	if e == nil {
		return nil
	}
	c := *e
	c.Algorithms = normStrings(c.Algorithms)
	if len(c.Subproblems) == 0 {
		c.Subproblems = nil
	} else {
		c.Subproblems = make([]*core.Error, len(e.Subproblems))
		for i, sp := range e.Subproblems {
			c.Subproblems[i] = normError(sp)
		}
	}
	return &c
}

func normAccount(a *core.Account) core.Account {
	c := *a
	c.KeyJWK = normBytes(c.KeyJWK)
	c.Contact = normStrings(c.Contact)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func normOrder(o *core.Order) core.Order {
	c := *o
	c.Identifiers = normIDs(c.Identifiers)
	c.AuthzIDs = normStrings(c.AuthzIDs)
	c.Error = normError(c.Error)
	c.Expires = normTime(c.Expires)
	c.NotBefore = normTime(c.NotBefore)
	c.NotAfter = normTime(c.NotAfter)
	c.ProcessingSince = normTime(c.ProcessingSince)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func normAuthz(a *core.Authorization) core.Authorization {
	c := *a
	c.Expires = normTime(c.Expires)
	if len(a.Challenges) == 0 {
		c.Challenges = nil
	} else {
		c.Challenges = make([]core.Challenge, len(a.Challenges))
		for i, ch := range a.Challenges {
			ch.Validated, ch.Started = normTime(ch.Validated), normTime(ch.Started)
			ch.Error = normError(ch.Error)
			c.Challenges[i] = ch
		}
	}
	return c
}

func normCert(x *core.Certificate) core.Certificate {
	c := *x
	c.DER = normBytes(c.DER)
	c.ChainPEM = normBytes(c.ChainPEM)
	c.Names = normIDs(c.Names)
	c.NotBefore = normTime(c.NotBefore)
	c.NotAfter = normTime(c.NotAfter)
	c.RevokedAt = normTime(c.RevokedAt)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

// checkUTC fails unless every non-zero time is in UTC: callers compare
// times with ==, JSON-encode them and log them, so the zone matters.
func checkUTC(t *testing.T, what string, times ...time.Time) {
	t.Helper()
	for i, tm := range times {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time #%d is in %v, want UTC", what, i, tm.Location())
		}
	}
}

func sameAccount(t *testing.T, what string, got, want *core.Account) {
	t.Helper()
	checkUTC(t, what, got.CreatedAt)
	if g, w := normAccount(got), normAccount(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func sameOrder(t *testing.T, what string, got, want *core.Order) {
	t.Helper()
	checkUTC(t, what, got.Expires, got.NotBefore, got.NotAfter, got.ProcessingSince, got.CreatedAt)
	if g, w := normOrder(got), normOrder(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func sameAuthz(t *testing.T, what string, got, want *core.Authorization) {
	t.Helper()
	checkUTC(t, what, got.Expires)
	for _, ch := range got.Challenges {
		checkUTC(t, what, ch.Validated)
		checkUTC(t, what, ch.Started)
	}
	if g, w := normAuthz(got), normAuthz(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func sameCert(t *testing.T, what string, got, want *core.Certificate) {
	t.Helper()
	checkUTC(t, what, got.NotBefore, got.NotAfter, got.RevokedAt, got.CreatedAt)
	if g, w := normCert(got), normCert(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}
