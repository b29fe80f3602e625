package storetest

import (
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var accountTests = []subtest{
	{"CreateGet", testAccountCreateGet},
	{"Defaults", testAccountDefaults},
	{"DuplicateThumbprint", testAccountDuplicateThumbprint},
	{"DuplicateID", testAccountDuplicateID},
	{"Update", testAccountUpdate},
	{"UpdateStale", testAccountUpdateStale},
	{"KeyRolloverConflict", testAccountKeyRolloverConflict},
	{"NotFound", testAccountNotFound},
}

func testAccountCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := newAccount(t)
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	if a.Version != 1 {
		t.Fatalf("Version after create = %d, want 1", a.Version)
	}
	got, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)
	sameAccount(t, "GetAccount", got, a)

	got, err = s.GetAccountByThumbprint(ctx, a.KeyThumbprint)
	noErr(t, "GetAccountByThumbprint", err)
	sameAccount(t, "GetAccountByThumbprint", got, a)
}

// testAccountDefaults: an empty ID and a zero CreatedAt are filled in by the
// store and written back into the caller's struct.
func testAccountDefaults(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := newAccount(t)
	a.ID = ""
	a.CreatedAt = time.Time{}
	a.Contact = nil
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	if a.ID == "" {
		t.Fatal("CreateAccount did not assign an ID")
	}
	if a.CreatedAt.IsZero() {
		t.Fatal("CreateAccount did not set CreatedAt")
	}
	got, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)
	sameAccount(t, "GetAccount", got, a)
}

func testAccountDuplicateThumbprint(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := mustAccount(t, s)
	b := newAccount(t)
	b.KeyThumbprint = a.KeyThumbprint
	wantErr(t, "CreateAccount with a used thumbprint", s.CreateAccount(ctx, b), store.ErrConflict)
	_, err := s.GetAccount(ctx, b.ID)
	wantErr(t, "GetAccount of refused account", err, store.ErrNotFound)
}

func testAccountDuplicateID(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := mustAccount(t, s)
	b := newAccount(t)
	b.ID = a.ID
	wantErr(t, "CreateAccount with a used ID", s.CreateAccount(ctx, b), store.ErrConflict)
}

func testAccountUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := mustAccount(t, s)
	tests := []struct {
		name   string
		change func(a *core.Account)
	}{
		{"contact", func(a *core.Account) { a.Contact = []string{"mailto:new@example.internal"} }},
		{"no contact", func(a *core.Account) { a.Contact = nil }},
		{"deactivate", func(a *core.Account) { a.Status = core.StatusDeactivated }},
		{"key rollover", func(a *core.Account) {
			a.KeyThumbprint = "rolled-" + a.ID
			a.KeyJWK = []byte(`{"kty":"OKP","crv":"Ed25519","x":"new"}`)
		}},
	}
	for i, tc := range tests {
		tc.change(a)
		noErr(t, "UpdateAccount "+tc.name, s.UpdateAccount(ctx, a))
		if want := int64(i + 2); a.Version != want {
			t.Fatalf("%s: Version = %d, want %d", tc.name, a.Version, want)
		}
		got, err := s.GetAccount(ctx, a.ID)
		noErr(t, "GetAccount", err)
		sameAccount(t, "after "+tc.name, got, a)
	}
	got, err := s.GetAccountByThumbprint(ctx, "rolled-"+a.ID)
	noErr(t, "GetAccountByThumbprint after rollover", err)
	sameAccount(t, "by new thumbprint", got, a)
}

func testAccountUpdateStale(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := mustAccount(t, s)
	first, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)
	second, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)

	first.Status = core.StatusDeactivated
	noErr(t, "first UpdateAccount", s.UpdateAccount(ctx, first))
	second.Contact = []string{"mailto:lost@example.internal"}
	wantErr(t, "stale UpdateAccount", s.UpdateAccount(ctx, second), store.ErrConflict)
	if second.Version != 1 {
		t.Fatalf("a refused update changed Version to %d", second.Version)
	}
	got, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)
	sameAccount(t, "after refused update", got, first)
}

func testAccountKeyRolloverConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := mustAccount(t, s)
	b := mustAccount(t, s)
	want := *b
	b.KeyThumbprint = a.KeyThumbprint
	wantErr(t, "rollover to another account's key", s.UpdateAccount(ctx, b), store.ErrConflict)
	got, err := s.GetAccount(ctx, b.ID)
	noErr(t, "GetAccount", err)
	sameAccount(t, "after refused rollover", got, &want)
	got, err = s.GetAccountByThumbprint(ctx, a.KeyThumbprint)
	noErr(t, "GetAccountByThumbprint", err)
	if got.ID != a.ID {
		t.Fatalf("thumbprint now resolves to %q, want %q", got.ID, a.ID)
	}
}

func testAccountNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustAccount(t, s)
	_, err := s.GetAccount(ctx, "no-such-account")
	wantErr(t, "GetAccount", err, store.ErrNotFound)
	_, err = s.GetAccountByThumbprint(ctx, "no-such-thumbprint")
	wantErr(t, "GetAccountByThumbprint", err, store.ErrNotFound)
	ghost := newAccount(t)
	ghost.Version = 1
	wantErr(t, "UpdateAccount", s.UpdateAccount(ctx, ghost), store.ErrNotFound)
}
