package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var authzTests = []subtest{
	{"GetAuthorizationsOrder", testGetAuthorizationsOrder},
	{"GetAuthorizationsMissing", testGetAuthorizationsMissing},
	{"UpdateChallenges", testAuthzUpdateChallenges},
	{"UpdateStale", testAuthzUpdateStale},
	{"NotFound", testAuthzNotFound},
	{"HoldsValidAuthorization", testHoldsValidAuthorization},
}

func testGetAuthorizationsOrder(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, a1 := mustOrder(t, s, acct, "a.example.internal", "b.example.internal", "c.example.internal")
	_, a2 := mustOrder(t, s, acct, "d.example.internal")
	all := slices.Concat(a1, a2)
	byID := map[string]*core.Authorization{}
	for _, a := range all {
		byID[a.ID] = a
	}
	tests := []struct {
		name string
		ids  []string
	}{
		{"empty", nil},
		{"one", []string{a1[1].ID}},
		{"as created", []string{a1[0].ID, a1[1].ID, a1[2].ID}},
		{"reversed", []string{a1[2].ID, a1[1].ID, a1[0].ID}},
		{"across orders", []string{a2[0].ID, a1[0].ID}},
		{"repeated", []string{a1[0].ID, a1[0].ID}},
	}
	for _, tc := range tests {
		got, err := s.GetAuthorizations(ctx, tc.ids)
		noErr(t, "GetAuthorizations "+tc.name, err)
		if len(got) != len(tc.ids) {
			t.Fatalf("%s: got %d authorizations, want %d", tc.name, len(got), len(tc.ids))
		}
		for i, id := range tc.ids {
			sameAuthz(t, tc.name, got[i], byID[id])
		}
	}
}

func testGetAuthorizationsMissing(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, authzs := mustOrder(t, s, acct)
	_, err := s.GetAuthorizations(ctx, []string{authzs[0].ID, "no-such-authz"})
	wantErr(t, "GetAuthorizations with a missing ID", err, store.ErrNotFound)
}

func testAuthzUpdateChallenges(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, authzs := mustOrder(t, s, acct)
	a := authzs[0]
	tests := []struct {
		name   string
		change func(a *core.Authorization)
	}{
		{"challenge processing", func(a *core.Authorization) {
			a.Challenges[0].Status = core.StatusProcessing
			a.Challenges[0].Started = baseTime.Add(time.Minute + 7654321)
		}},
		{"challenge failed", func(a *core.Authorization) {
			a.Status = core.StatusInvalid
			a.Challenges[0].Status = core.StatusInvalid
			a.Challenges[0].Error = &core.Error{
				Kind:       core.KindConnection,
				Detail:     "all addresses failed",
				Identifier: &a.Identifier,
				Subproblems: []*core.Error{
					{Kind: core.KindConnection, Detail: "10.0.0.1:80: refused"},
					{Kind: core.KindTLS, Detail: "10.0.0.2:443: bad cert", Algorithms: []string{"ES256"}},
				},
			}
		}},
		{"challenge valid", func(a *core.Authorization) {
			a.Status = core.StatusValid
			a.Expires = baseTime.Add(30 * 24 * time.Hour)
			a.Challenges[0].Error = nil
			a.Challenges[1].Status = core.StatusValid
			a.Challenges[1].Validated = baseTime.Add(5*time.Minute + 1234567)
		}},
		{"deactivated", func(a *core.Authorization) { a.Status = core.StatusDeactivated }},
	}
	for i, tc := range tests {
		tc.change(a)
		noErr(t, "UpdateAuthorization "+tc.name, s.UpdateAuthorization(ctx, a))
		if want := int64(i + 2); a.Version != want {
			t.Fatalf("%s: Version = %d, want %d", tc.name, a.Version, want)
		}
		got, err := s.GetAuthorization(ctx, a.ID)
		noErr(t, "GetAuthorization", err)
		sameAuthz(t, "after "+tc.name, got, a)
	}
}

func testAuthzUpdateStale(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, authzs := mustOrder(t, s, acct)
	a := authzs[0]
	stale, err := s.GetAuthorization(ctx, a.ID)
	noErr(t, "GetAuthorization", err)
	a.Status = core.StatusValid
	noErr(t, "UpdateAuthorization", s.UpdateAuthorization(ctx, a))
	stale.Status = core.StatusInvalid
	wantErr(t, "stale UpdateAuthorization", s.UpdateAuthorization(ctx, stale), store.ErrConflict)
	got, err := s.GetAuthorization(ctx, a.ID)
	noErr(t, "GetAuthorization", err)
	sameAuthz(t, "after refused update", got, a)
}

func testAuthzNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, authzs := newOrder(t, acct)
	_, err := s.GetAuthorization(ctx, authzs[0].ID)
	wantErr(t, "GetAuthorization", err, store.ErrNotFound)
	authzs[0].Version = 1
	wantErr(t, "UpdateAuthorization", s.UpdateAuthorization(ctx, authzs[0]), store.ErrNotFound)
}

func testHoldsValidAuthorization(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct, other := mustAccount(t, s), mustAccount(t, s)
	_, authzs := mustOrder(t, s, acct, "valid.example.internal", "pending.example.internal", "wild.example.internal")
	for _, a := range []*core.Authorization{authzs[0], authzs[2]} {
		a.Status = core.StatusValid
		a.Wildcard = a.Identifier.Value == "wild.example.internal"
		noErr(t, "UpdateAuthorization", s.UpdateAuthorization(ctx, a))
	}
	expires := authzs[0].Expires
	dns := func(n string) core.Identifier { return core.Identifier{Type: core.DNS, Value: n} }
	tests := []struct {
		name     string
		account  string
		id       core.Identifier
		wildcard bool
		at       time.Time
		want     bool
	}{
		{"valid", acct.ID, dns("valid.example.internal"), false, baseTime, true},
		{"valid, a moment before it expires", acct.ID, dns("valid.example.internal"), false, expires.Add(-time.Second), true},
		{"expired", acct.ID, dns("valid.example.internal"), false, expires, false},
		{"another account", other.ID, dns("valid.example.internal"), false, baseTime, false},
		{"pending", acct.ID, dns("pending.example.internal"), false, baseTime, false},
		{"another name", acct.ID, dns("x.valid.example.internal"), false, baseTime, false},
		{"another type", acct.ID, core.Identifier{Type: core.IP, Value: "valid.example.internal"}, false, baseTime, false},
		{"wildcard", acct.ID, dns("wild.example.internal"), true, baseTime, true},
		{"a wildcard authorization is not one for the name", acct.ID, dns("wild.example.internal"), false, baseTime, false},
		{"nor the reverse", acct.ID, dns("valid.example.internal"), true, baseTime, false},
	}
	for _, tc := range tests {
		got, err := s.HoldsValidAuthorization(ctx, tc.account, tc.id, tc.wildcard, tc.at)
		noErr(t, "HoldsValidAuthorization "+tc.name, err)
		if got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
