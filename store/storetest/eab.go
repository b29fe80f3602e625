package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var eabTests = []subtest{
	{"CreateGet", testEABCreateGet},
	{"Defaults", testEABDefaults},
	{"DuplicateID", testEABDuplicateID},
	{"NotFound", testEABNotFound},
	{"List", testEABList},
	{"Update", testEABUpdate},
	{"UpdateStale", testEABUpdateStale},
	{"Bind", testEABBind},
	{"BindRefused", testEABBindRefused},
	{"BindThumbprintConflict", testEABBindThumbprintConflict},
	{"BoundForever", testEABBoundForever},
	{"BindRace", testEABBindRace},
}

// eabPolicy is an account layer's name rules, as `policyca eab add
// --policy` stores them.
const eabPolicy = `{"allow":{"dns":[".team.example.internal"],"ip":["10.1.0.0/16"]},"max_lifetime":"720h"}`

func newEABKey(t *testing.T, provisioner string) *core.EABKey {
	t.Helper()
	mac := make([]byte, 32)
	if _, err := rand.Read(mac); err != nil {
		t.Fatalf("rand: %v", err)
	}
	// Bytes that text encodings mangle, so that a backend storing the
	// key as text fails the round trip.
	mac[0], mac[1], mac[2] = 0x00, 0xff, 0x80
	return &core.EABKey{
		ID:          "kid-" + newID(t),
		Provisioner: provisioner,
		Reference:   "build-server-7",
		HMACKey:     mac,
		CreatedAt:   baseTime,
		ExpiresAt:   baseTime.Add(30 * 24 * time.Hour),
		Policy:      []byte(eabPolicy),
	}
}

func mustEABKey(t *testing.T, s store.Store, provisioner string) *core.EABKey {
	t.Helper()
	k := newEABKey(t, provisioner)
	noErr(t, "CreateEABKey", s.CreateEABKey(ctxT(t), k))
	return k
}

// normEAB compares policies as JSON values: a backend may keep them in a
// JSON column type that does not preserve the text's spacing.
func normEAB(t *testing.T, k *core.EABKey) (core.EABKey, any) {
	t.Helper()
	c := *k
	c.HMACKey = normBytes(c.HMACKey)
	c.CreatedAt = normTime(c.CreatedAt)
	c.ExpiresAt = normTime(c.ExpiresAt)
	c.RevokedAt = normTime(c.RevokedAt)
	c.BoundAt = normTime(c.BoundAt)
	var policy any
	if c.Policy != nil {
		if err := json.Unmarshal(c.Policy, &policy); err != nil {
			t.Fatalf("policy of key %s is not JSON: %v", k.ID, err)
		}
	}
	c.Policy = nil
	return c, policy
}

func sameEAB(t *testing.T, what string, got, want *core.EABKey) {
	t.Helper()
	checkUTC(t, what, got.CreatedAt, got.ExpiresAt, got.RevokedAt, got.BoundAt)
	g, gp := normEAB(t, got)
	w, wp := normEAB(t, want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, g, w)
	}
	if (got.Policy == nil) != (want.Policy == nil) || !reflect.DeepEqual(gp, wp) {
		t.Fatalf("%s: policy %q, want %q", what, got.Policy, want.Policy)
	}
}

func testEABCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := newEABKey(t, "acme")
	mac := bytes.Clone(k.HMACKey)
	noErr(t, "CreateEABKey", s.CreateEABKey(ctx, k))
	if k.Version != 1 {
		t.Fatalf("Version after create = %d, want 1", k.Version)
	}
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "GetEABKey", got, k)
	if !bytes.Equal(got.HMACKey, mac) {
		t.Fatalf("HMAC key changed in storage: %x, want %x", got.HMACKey, mac)
	}
	if got.BoundAccount != "" || !got.BoundAt.IsZero() {
		t.Fatalf("new key is bound: %q at %v", got.BoundAccount, got.BoundAt)
	}
}

// testEABDefaults: ID and CreatedAt are filled in; a key without expiry
// or policy keeps them absent.
func testEABDefaults(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := newEABKey(t, "acme")
	k.ID, k.CreatedAt, k.ExpiresAt, k.Policy = "", time.Time{}, time.Time{}, nil
	noErr(t, "CreateEABKey", s.CreateEABKey(ctx, k))
	if k.ID == "" || k.CreatedAt.IsZero() {
		t.Fatalf("CreateEABKey did not fill in ID %q / CreatedAt %v", k.ID, k.CreatedAt)
	}
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "GetEABKey", got, k)
}

func testEABDuplicateID(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	dup := newEABKey(t, "other")
	dup.ID = k.ID
	wantErr(t, "CreateEABKey with a used ID", s.CreateEABKey(ctx, dup), store.ErrConflict)
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "after refused duplicate", got, k)
}

func testEABNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustEABKey(t, s, "acme")
	_, err := s.GetEABKey(ctx, "no-such-kid")
	wantErr(t, "GetEABKey", err, store.ErrNotFound)
	ghost := newEABKey(t, "acme")
	ghost.Version = 1
	wantErr(t, "UpdateEABKey", s.UpdateEABKey(ctx, ghost), store.ErrNotFound)
}

func testEABList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Created out of CreatedAt order: "oldest first" is by CreatedAt.
	var keys []*core.EABKey
	for i, p := range []string{"acme", "ops", "acme", "ops", "acme"} {
		k := newEABKey(t, p)
		k.CreatedAt = baseTime.Add(time.Duration(5-i) * time.Hour)
		noErr(t, "CreateEABKey", s.CreateEABKey(ctx, k))
		keys = append(keys, k)
	}
	tests := []struct {
		provisioner string
		want        []*core.EABKey
	}{
		{"acme", []*core.EABKey{keys[4], keys[2], keys[0]}},
		{"ops", []*core.EABKey{keys[3], keys[1]}},
		{"", []*core.EABKey{keys[4], keys[3], keys[2], keys[1], keys[0]}},
		{"nobody", nil},
	}
	for _, tc := range tests {
		got, err := s.ListEABKeys(ctx, tc.provisioner)
		noErr(t, "ListEABKeys "+tc.provisioner, err)
		if len(got) != len(tc.want) {
			t.Fatalf("ListEABKeys(%q) returned %d keys, want %d", tc.provisioner, len(got), len(tc.want))
		}
		for i := range got {
			sameEAB(t, "ListEABKeys("+tc.provisioner+")", got[i], tc.want[i])
		}
	}
}

func testEABUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	tests := []struct {
		name   string
		change func(k *core.EABKey)
	}{
		{"reference", func(k *core.EABKey) { k.Reference = "renamed" }},
		{"no expiry", func(k *core.EABKey) { k.ExpiresAt = time.Time{} }},
		{"no policy", func(k *core.EABKey) { k.Policy = nil }},
		{"new policy", func(k *core.EABKey) { k.Policy = []byte(`{"deny":{"dns":["db.example.internal"]}}`) }},
		{"revoke", func(k *core.EABKey) { k.RevokedAt = baseTime.Add(time.Hour) }},
	}
	for i, tc := range tests {
		tc.change(k)
		noErr(t, "UpdateEABKey "+tc.name, s.UpdateEABKey(ctx, k))
		if want := int64(i + 2); k.Version != want {
			t.Fatalf("%s: Version = %d, want %d", tc.name, k.Version, want)
		}
		got, err := s.GetEABKey(ctx, k.ID)
		noErr(t, "GetEABKey", err)
		sameEAB(t, "after "+tc.name, got, k)
	}

	// Everything else is immutable through UpdateEABKey, the binding
	// above all: it would otherwise let a key bind twice.
	want := *k
	want.Version++
	k.Provisioner, k.HMACKey, k.CreatedAt = "elsewhere", []byte("other"), baseTime.Add(time.Hour)
	k.BoundAccount, k.BoundAt = "acct-forged", baseTime
	noErr(t, "UpdateEABKey of immutable fields", s.UpdateEABKey(ctx, k))
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "after writing immutable fields", got, &want)
}

func testEABUpdateStale(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	first, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	second, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	first.RevokedAt = baseTime
	noErr(t, "first UpdateEABKey", s.UpdateEABKey(ctx, first))
	second.Reference = "lost"
	wantErr(t, "stale UpdateEABKey", s.UpdateEABKey(ctx, second), store.ErrConflict)
	if second.Version != 1 {
		t.Fatalf("a refused update changed Version to %d", second.Version)
	}
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "after refused update", got, first)
}

// bindNow is the "now" of the binding tests: within the keys' validity.
var bindNow = baseTime.Add(time.Hour)

func testEABBind(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	a := newAccount(t)
	a.ID, a.CreatedAt, a.EABKeyID = "", time.Time{}, ""
	noErr(t, "CreateAccountBound", s.CreateAccountBound(ctx, a, k.ID, bindNow))
	if a.ID == "" || a.CreatedAt.IsZero() || a.Version != 1 || a.EABKeyID != k.ID {
		t.Fatalf("account after binding: ID %q, CreatedAt %v, Version %d, EABKeyID %q",
			a.ID, a.CreatedAt, a.Version, a.EABKeyID)
	}
	got, err := s.GetAccount(ctx, a.ID)
	noErr(t, "GetAccount", err)
	sameAccount(t, "bound account", got, a)

	want := *k
	want.BoundAccount, want.BoundAt, want.Version = a.ID, bindNow, k.Version+1
	gk, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "bound key", gk, &want)

	// Revoking a bound key (say, when its machine is retired) keeps the
	// record of what it bound.
	gk.RevokedAt = bindNow.Add(time.Hour)
	noErr(t, "UpdateEABKey", s.UpdateEABKey(ctx, gk))
	after, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "revoked bound key", after, gk)
}

func testEABBindRefused(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	bound := mustEABKey(t, s, "acme")
	noErr(t, "first binding", s.CreateAccountBound(ctx, newAccount(t), bound.ID, bindNow))

	tests := []struct {
		name  string
		setup func(k *core.EABKey) // nil: use the bound key
		kid   string               // set: use this kid instead
		want  error
		why   string
	}{
		{name: "unknown kid", kid: "no-such-kid", want: store.ErrNotFound},
		{name: "revoked", setup: func(k *core.EABKey) { k.RevokedAt = baseTime }, want: store.ErrEABUnusable, why: "revoked"},
		{name: "revoked in the future", setup: func(k *core.EABKey) { k.RevokedAt = bindNow.Add(time.Hour) },
			want: store.ErrEABUnusable, why: "revoked"},
		{name: "expired", setup: func(k *core.EABKey) { k.ExpiresAt = bindNow.Add(-time.Second) },
			want: store.ErrEABUnusable, why: "expired"},
		{name: "expiring now", setup: func(k *core.EABKey) { k.ExpiresAt = bindNow }, want: store.ErrEABUnusable, why: "expired"},
		{name: "other provisioner", setup: func(k *core.EABKey) { k.Provisioner = "other" },
			want: store.ErrEABUnusable, why: "belongs to another provisioner"},
		{name: "already bound", kid: bound.ID, want: store.ErrEABUnusable, why: "already bound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kid := tc.kid
			if tc.setup != nil {
				k := newEABKey(t, "acme")
				tc.setup(k)
				noErr(t, "CreateEABKey", s.CreateEABKey(ctx, k))
				kid = k.ID
			}
			a := newAccount(t)
			orig := *a
			err := s.CreateAccountBound(ctx, a, kid, bindNow)
			wantErr(t, "CreateAccountBound", err, tc.want)
			if tc.why != "" && !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
			if !reflect.DeepEqual(*a, orig) {
				t.Errorf("refusal changed the caller's account:\n got %+v\nwant %+v", *a, orig)
			}
			_, err = s.GetAccountByThumbprint(ctx, a.KeyThumbprint)
			wantErr(t, "GetAccountByThumbprint of refused account", err, store.ErrNotFound)
			if tc.setup != nil {
				k, err := s.GetEABKey(ctx, kid)
				noErr(t, "GetEABKey", err)
				if k.BoundAccount != "" || !k.BoundAt.IsZero() {
					t.Fatalf("refused key was bound to %q", k.BoundAccount)
				}
			}
		})
	}
}

// testEABBindThumbprintConflict: an account key already in use refuses
// the account, and the EAB key must stay usable.
func testEABBindThumbprintConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	existing := mustAccount(t, s)
	k := mustEABKey(t, s, "acme")
	a := newAccount(t)
	a.KeyThumbprint = existing.KeyThumbprint
	wantErr(t, "CreateAccountBound with a used account key", s.CreateAccountBound(ctx, a, k.ID, bindNow),
		store.ErrConflict)
	_, err := s.GetAccount(ctx, a.ID)
	wantErr(t, "GetAccount of refused account", err, store.ErrNotFound)
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	sameEAB(t, "key after refused binding", got, k)

	b := newAccount(t)
	noErr(t, "CreateAccountBound with a fresh account key", s.CreateAccountBound(ctx, b, k.ID, bindNow))
}

// testEABBoundForever: deactivating the bound account does not free its
// key; binding is once per key, not once at a time.
func testEABBoundForever(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	a := newAccount(t)
	noErr(t, "CreateAccountBound", s.CreateAccountBound(ctx, a, k.ID, bindNow))
	a.Status = core.StatusDeactivated
	noErr(t, "UpdateAccount", s.UpdateAccount(ctx, a))

	b := newAccount(t)
	err := s.CreateAccountBound(ctx, b, k.ID, bindNow.Add(time.Minute))
	wantErr(t, "second binding", err, store.ErrEABUnusable)
	_, err = s.GetAccountByThumbprint(ctx, b.KeyThumbprint)
	wantErr(t, "GetAccountByThumbprint of refused account", err, store.ErrNotFound)
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	if got.BoundAccount != a.ID || !got.BoundAt.Equal(normTime(bindNow)) {
		t.Fatalf("key bound to %q at %v, want %q at %v", got.BoundAccount, got.BoundAt, a.ID, bindNow)
	}
}

// testEABBindRace: clients racing with one key (and different account
// keys) get exactly one account between them.
func testEABBindRace(t *testing.T, s store.Store) {
	const workers = 20
	ctx := ctxT(t)
	k := mustEABKey(t, s, "acme")
	accts := make([]*core.Account, workers)
	results := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		accts[w] = newAccount(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = s.CreateAccountBound(ctx, accts[w], k.ID, bindNow)
		}()
	}
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("workers %d and %d both bound the key", winner, w)
			}
			winner = w
		case !errors.Is(err, store.ErrEABUnusable):
			t.Fatalf("worker %d: %v, want nil or ErrEABUnusable", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no worker bound the key")
	}
	for w, a := range accts {
		got, err := s.GetAccountByThumbprint(ctx, a.KeyThumbprint)
		if w == winner {
			noErr(t, "GetAccountByThumbprint of winner", err)
			if got.EABKeyID != k.ID {
				t.Fatalf("winner's account has EABKeyID %q, want %q", got.EABKeyID, k.ID)
			}
			continue
		}
		wantErr(t, "GetAccountByThumbprint of loser", err, store.ErrNotFound)
	}
	got, err := s.GetEABKey(ctx, k.ID)
	noErr(t, "GetEABKey", err)
	if got.BoundAccount != accts[winner].ID {
		t.Fatalf("key bound to %q, winner is %q", got.BoundAccount, accts[winner].ID)
	}
}
