package acme

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

func TestNewAccount(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.Provisioners[0].TermsOfService = "https://ca.internal/tos"
		o.Provisioners = append(o.Provisioners, Provisioner{Name: "eab", Validator: &fakeValidator{}, RequireEAB: true})
	})
	tests := []struct {
		name       string
		prov       string
		payload    map[string]any
		wantStatus int
		wantType   string // problem type, "" for success
	}{
		{"created", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@example.internal"}}, 201, ""},
		{"no contact", testProv, map[string]any{"termsOfServiceAgreed": true}, 201, ""},
		{"terms not agreed", testProv, map[string]any{"contact": []string{"mailto:a@example.internal"}}, 403, "userActionRequired"},
		{"only return existing, none", testProv, map[string]any{"onlyReturnExisting": true}, 400, "accountDoesNotExist"},
		{"tel contact", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"tel:+15551234"}}, 400, "unsupportedContact"},
		{"two addresses", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@x.internal,b@x.internal"}}, 400, "invalidContact"},
		{"hfields", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@x.internal?subject=hi"}}, 400, "invalidContact"},
		{"display name", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:Bob <a@x.internal>"}}, 400, "invalidContact"},
		{"no at", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:nobody"}}, 400, "invalidContact"},
		{"not a URI", testProv, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"a@x.internal"}}, 400, "invalidContact"},
		{"eab required", "eab", map[string]any{}, 400, "externalAccountRequired"},
		{"eab given, no binder configured", "eab", map[string]any{"externalAccountBinding": map[string]string{"protected": "x"}}, 400, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.newClient(t)
			c.dir = env.base + "/acme/" + tt.prov
			r := c.post(c.dir+"/new-account", tt.payload)
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
				if tt.wantType == "userActionRequired" && !slices.Contains(r.header.Values("Link"), `<https://ca.internal/tos>;rel="terms-of-service"`) {
					t.Errorf("Link = %v", r.header.Values("Link"))
				}
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			loc := r.header.Get("Location")
			if !strings.HasPrefix(loc, c.dir+"/account/") {
				t.Fatalf("Location = %q", loc)
			}
			var a accountJSON
			r.decode(t, &a)
			if a.Status != core.StatusValid || a.Orders != loc+"/orders" || !a.TermsOfServiceAgreed {
				t.Errorf("account = %+v", a)
			}
			// The same key again: 200 and the same account, with or
			// without onlyReturnExisting.
			for _, pl := range []map[string]any{{"termsOfServiceAgreed": true}, {"onlyReturnExisting": true}} {
				r2 := c.post(c.dir+"/new-account", pl)
				if r2.status != http.StatusOK || r2.header.Get("Location") != loc {
					t.Errorf("existing key %v: %d %s at %q", pl, r2.status, r2.body, r2.header.Get("Location"))
				}
			}
		})
	}
}

func TestAccountUpdate(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register("mailto:old@example.internal")
	other := env.newClient(t)
	other.register()

	tests := []struct {
		name       string
		url        func() string
		payload    any
		wantStatus int
		wantType   string
		check      func(t *testing.T, a accountJSON)
	}{
		{"post-as-get", func() string { return c.kid }, nil, 200, "", func(t *testing.T, a accountJSON) {
			if !slices.Equal(a.Contact, []string{"mailto:old@example.internal"}) {
				t.Errorf("contact = %v", a.Contact)
			}
		}},
		{"update contact", func() string { return c.kid }, map[string]any{"contact": []string{"mailto:new@example.internal"}}, 200, "", func(t *testing.T, a accountJSON) {
			if !slices.Equal(a.Contact, []string{"mailto:new@example.internal"}) {
				t.Errorf("contact = %v", a.Contact)
			}
		}},
		{"bad contact", func() string { return c.kid }, map[string]any{"contact": []string{"mailto:"}}, 400, "invalidContact", nil},
		{"status valid", func() string { return c.kid }, map[string]any{"status": "valid"}, 400, "malformed", nil},
		{"status revoked", func() string { return c.kid }, map[string]any{"status": "revoked"}, 400, "malformed", nil},
		{"another account", func() string { return other.kid }, nil, 403, "unauthorized", nil},
		{"orders of another account", func() string { return other.kid + "/orders" }, nil, 403, "unauthorized", nil},
		{"deactivate", func() string { return c.kid }, map[string]any{"status": "deactivated"}, 200, "", func(t *testing.T, a accountJSON) {
			if a.Status != core.StatusDeactivated {
				t.Errorf("status = %s", a.Status)
			}
		}},
		{"after deactivation", func() string { return c.kid }, nil, 403, "unauthorized", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.post(tt.url(), tt.payload)
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var a accountJSON
			r.decode(t, &a)
			tt.check(t, a)
		})
	}
	// A deactivated account's key cannot register again either.
	c.kid = ""
	c.post(env.url("/new-account"), map[string]any{"termsOfServiceAgreed": true}).wantProblem(t, 403, "unauthorized")
}

func TestAccountOrdersPagination(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.OrdersPageSize = 2 })
	c := env.newClient(t)
	c.register()
	var want []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		_, u := c.newOrder("dns:" + name + ".internal")
		want = append(want, u)
	}
	if got := c.listOrders(4); !slices.Equal(got, want) {
		t.Errorf("orders = %v, want %v", got, want)
	}
	c.post(c.kid+"/orders", map[string]any{}).wantProblem(t, 400, "malformed")
}

// listOrders follows the account's orders list through its Link rel="next"
// pages, at most maxPages of them.
func (c *testClient) listOrders(maxPages int) []string {
	c.t.Helper()
	var got []string
	next := c.kid + "/orders"
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			c.t.Fatal("too many pages")
		}
		r := c.post(next, nil)
		if r.status != http.StatusOK {
			c.t.Fatalf("orders: %d %s", r.status, r.body)
		}
		var l ordersListJSON
		r.decode(c.t, &l)
		got = append(got, l.Orders...)
		next = ""
		for _, v := range r.header.Values("Link") {
			if u, ok := strings.CutSuffix(v, `>;rel="next"`); ok {
				next = strings.TrimPrefix(u, "<")
			}
		}
	}
	return got
}

// TestAccountOrdersLeaveOutInvalid: the orders list leaves out invalid
// orders (§7.1.2.1), both those stored as invalid and pending or ready
// ones past their expiry that nobody has read since, and keeps the others
// (a valid order past its expiry among them), across pages.
func TestAccountOrdersLeaveOutInvalid(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.OrderLifetime = time.Hour
		o.AuthzLifetime = time.Hour
		o.OrdersPageSize = 1
	})
	c := env.newClient(t)
	c.register()
	_, oldPending := c.newOrder("dns:a.internal")
	oldReadyOrder, oldReady := c.newOrder("dns:b.internal")
	c.solve(oldReadyOrder, oldReady, "")
	env.now.Advance(30 * time.Minute)
	_, pending := c.newOrder("dns:c.internal")
	deactivated, deactivatedURL := c.newOrder("dns:d.internal")
	if r := c.post(deactivated.Authorizations[0], map[string]string{"status": "deactivated"}); r.status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", r.status, r.body)
	}
	_, issued := c.issue("dns:e.internal")
	if got, want := c.listOrders(10), []string{oldPending, oldReady, pending, issued}; !slices.Equal(got, want) {
		t.Fatalf("orders = %v, want %v (deactivated's order %s is invalid)", got, want, deactivatedURL)
	}

	// The first two orders expire; nothing has read them since.
	env.now.Advance(45 * time.Minute)
	for _, u := range []string{oldPending, oldReady} {
		o, err := env.store.GetOrder(t.Context(), lastSegment(u))
		if err != nil || (o.Status != core.StatusPending && o.Status != core.StatusReady) {
			t.Fatalf("stored %s = %+v, %v; want it still pending or ready", u, o, err)
		}
	}
	got := c.listOrders(10)
	if want := []string{pending, issued}; !slices.Equal(got, want) {
		t.Fatalf("orders after the first expiry = %v, want %v", got, want)
	}
	// The list agrees with what each order reads as.
	for _, u := range []string{oldPending, oldReady, pending, deactivatedURL, issued} {
		o := c.order(u)
		if listed := slices.Contains(got, u); listed != (o.Status != core.StatusInvalid) {
			t.Errorf("order %s reads as %s, listed = %v", u, o.Status, listed)
		}
	}

	// Past every order's expiry only the valid one is left.
	env.now.Advance(time.Hour)
	if got, want := c.listOrders(10), []string{issued}; !slices.Equal(got, want) {
		t.Fatalf("orders after every expiry = %v, want %v", got, want)
	}
}

// lostRaceStore hides an account from the next thumbprint lookup once
// armed, as when a concurrent request creates it between newAccount's
// lookup and its CreateAccount.
type lostRaceStore struct {
	store.Store
	hide atomic.Bool
}

func (s *lostRaceStore) GetAccountByThumbprint(ctx context.Context, tp string) (*core.Account, error) {
	if s.hide.CompareAndSwap(true, false) {
		return nil, store.ErrNotFound
	}
	return s.Store.GetAccountByThumbprint(ctx, tp)
}

// A newAccount that loses the race for its key answers as it would have
// had it come second: the winner's account, or the lookup's refusal when
// that account is another provisioner's or deactivated, never a 500.
func TestNewAccountLostRace(t *testing.T) {
	var rs *lostRaceStore
	env := newEnv(t, func(o *Options) {
		rs = &lostRaceStore{Store: o.Store.(store.Store)}
		o.Store = rs
		o.Provisioners = append(o.Provisioners, Provisioner{Name: "other", Validator: &fakeValidator{}})
	})
	tests := []struct {
		name       string
		winnerProv string
		deactivate bool
		wantStatus int
		wantType   string // problem type, "" for success
	}{
		{"winner valid", testProv, false, 200, ""},
		{"winner on another provisioner", "other", false, 403, "unauthorized"},
		{"winner deactivated", testProv, true, 403, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			winner := env.newClient(t)
			winner.dir = env.base + "/acme/" + tt.winnerProv
			winner.register()
			if tt.deactivate {
				if r := winner.post(winner.kid, map[string]string{"status": "deactivated"}); r.status != http.StatusOK {
					t.Fatalf("deactivate: %d %s", r.status, r.body)
				}
			}
			loser := env.newClient(t)
			loser.key = winner.key
			rs.hide.Store(true)
			r := loser.post(loser.dir+"/new-account", map[string]any{"termsOfServiceAgreed": true})
			if rs.hide.Load() {
				t.Fatal("the lookup before CreateAccount did not run")
			}
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
				return
			}
			if r.status != tt.wantStatus || r.header.Get("Location") != winner.kid {
				t.Fatalf("%d %s at %q, want %d at %q", r.status, r.body, r.header.Get("Location"), tt.wantStatus, winner.kid)
			}
		})
	}
}

// keyChangeBody builds the inner JWS of a key change, signed by newKey.
func keyChangeBody(t testing.TB, c *testClient, newKey *testClient, account string, oldKey any, innerURL string) []byte {
	t.Helper()
	inner, err := json.Marshal(map[string]any{"account": account, "oldKey": oldKey})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: newKey.key},
		&jose.SignerOptions{EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{"url": innerURL}})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(inner)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

func TestKeyChange(t *testing.T) {
	env := newEnv(t)
	kcURL := env.url("/key-change")
	taken := env.newClient(t)
	taken.register()

	tests := []struct {
		name       string
		build      func(c, nk *testClient) []byte
		newKey     func(nk *testClient) *testClient
		wantStatus int
		wantType   string
		wantLoc    func(c *testClient) string
	}{
		{
			name:       "ok",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, nk, c.kid, jwkOf(c), kcURL) },
			wantStatus: 200,
		},
		{
			name:       "key of another account",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, nk, c.kid, jwkOf(c), kcURL) },
			newKey:     func(*testClient) *testClient { return taken },
			wantStatus: 409, wantType: "malformed",
			wantLoc: func(*testClient) string { return taken.kid },
		},
		{
			name:       "account mismatch",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, nk, taken.kid, jwkOf(c), kcURL) },
			wantStatus: 400, wantType: "malformed",
		},
		{
			name:       "wrong old key",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, nk, c.kid, jwkOf(nk), kcURL) },
			wantStatus: 400, wantType: "malformed",
		},
		{
			name:       "inner url mismatch",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, nk, c.kid, jwkOf(c), env.url("/new-order")) },
			wantStatus: 400, wantType: "malformed",
		},
		{
			name:       "same key",
			build:      func(c, nk *testClient) []byte { return keyChangeBody(t, c, c, c.kid, jwkOf(c), kcURL) },
			wantStatus: 400, wantType: "malformed",
		},
		{
			name:       "inner with nonce",
			build:      func(c, nk *testClient) []byte { return nk.sign(kcURL, []byte(`{}`), signOpts{forceJWK: true}) },
			wantStatus: 400, wantType: "malformed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.newClient(t)
			c.register()
			nk := env.newClient(t)
			if tt.newKey != nil {
				nk = tt.newKey(nk)
			}
			r := c.post(kcURL, tt.build(c, nk))
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
				if tt.wantLoc != nil && r.header.Get("Location") != tt.wantLoc(c) {
					t.Errorf("Location = %q, want %q", r.header.Get("Location"), tt.wantLoc(c))
				}
				// The old key still works.
				if r := c.post(c.kid, nil); r.status != http.StatusOK {
					t.Errorf("old key after failed change: %d %s", r.status, r.body)
				}
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			// The old key is refused, the new one works with the same kid.
			c.post(c.kid, nil).wantProblem(t, 400, "malformed")
			nk.kid = c.kid
			if r := nk.post(c.kid, nil); r.status != http.StatusOK {
				t.Errorf("new key: %d %s", r.status, r.body)
			}
		})
	}
}

func jwkOf(c *testClient) jose.JSONWebKey { return jose.JSONWebKey{Key: c.key.Public()} }
