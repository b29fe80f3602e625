package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var orderTests = []subtest{
	{"CreateGet", testOrderCreateGet},
	{"Defaults", testOrderDefaults},
	{"CreateAtomic", testOrderCreateAtomic},
	{"UnknownAccount", testOrderUnknownAccount},
	{"Update", testOrderUpdate},
	{"UpdateStale", testOrderUpdateStale},
	{"NotFound", testOrderNotFound},
	{"ListOrderIDs", testListOrderIDs},
	{"ListOrderIDsErrors", testListOrderIDsErrors},
	{"ListOrderIDsLeavesOutInvalid", testListOrderIDsLeavesOutInvalid},
	{"ListOrderIDsCursorLeftOut", testListOrderIDsCursorLeftOut},
	{"ListStaleProcessingOrders", testListStaleProcessing},
}

func testOrderCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, authzs := newOrder(t, acct, "a.example.internal", "*.b.example.internal", "10.0.0.1")
	authzs[1].Wildcard = true
	authzs[1].Identifier.Value = "b.example.internal"
	authzs[2].Identifier.Type = core.IP
	o.Identifiers[2].Type = core.IP
	noErr(t, "CreateOrder", s.CreateOrder(ctx, o, authzs))
	if o.Version != 1 {
		t.Fatalf("order Version = %d, want 1", o.Version)
	}
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "GetOrder", got, o)
	for _, a := range authzs {
		if a.Version != 1 {
			t.Fatalf("authorization Version = %d, want 1", a.Version)
		}
		ga, err := s.GetAuthorization(ctx, a.ID)
		noErr(t, "GetAuthorization", err)
		sameAuthz(t, "GetAuthorization", ga, a)
	}
}

// testOrderDefaults: the store assigns missing IDs, ties the authorizations
// to the order and lists them in AuthzIDs when the caller left it empty.
func testOrderDefaults(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, authzs := newOrder(t, acct, "a.example.internal", "b.example.internal")
	o.ID = ""
	o.AuthzIDs = nil
	o.CreatedAt = time.Time{}
	for _, a := range authzs {
		a.ID = ""
		a.OrderID = ""
		a.AccountID = ""
	}
	noErr(t, "CreateOrder", s.CreateOrder(ctx, o, authzs))
	if o.ID == "" || o.CreatedAt.IsZero() {
		t.Fatalf("CreateOrder left ID %q / CreatedAt %v unset", o.ID, o.CreatedAt)
	}
	if len(o.AuthzIDs) != len(authzs) {
		t.Fatalf("AuthzIDs = %v, want %d IDs", o.AuthzIDs, len(authzs))
	}
	for i, a := range authzs {
		if a.ID == "" || a.ID != o.AuthzIDs[i] || a.OrderID != o.ID || a.AccountID != acct.ID {
			t.Fatalf("authorization %d: ID %q OrderID %q AccountID %q; order %q AuthzIDs %v",
				i, a.ID, a.OrderID, a.AccountID, o.ID, o.AuthzIDs)
		}
	}
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "GetOrder", got, o)
	gotAuthzs, err := s.GetAuthorizations(ctx, o.AuthzIDs)
	noErr(t, "GetAuthorizations", err)
	for i := range authzs {
		sameAuthz(t, "GetAuthorizations", gotAuthzs[i], authzs[i])
	}
}

// testOrderCreateAtomic: when one authorization cannot be inserted, neither
// the order nor any other authorization may be left behind.
func testOrderCreateAtomic(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, existing := mustOrder(t, s, acct)
	o, authzs := newOrder(t, acct, "x.example.internal", "y.example.internal")
	authzs[1].ID = existing[0].ID
	o.AuthzIDs[1] = existing[0].ID
	if err := s.CreateOrder(ctx, o, authzs); err == nil {
		t.Fatal("CreateOrder with a duplicate authorization ID succeeded")
	}
	_, err := s.GetOrder(ctx, o.ID)
	wantErr(t, "GetOrder after failed create", err, store.ErrNotFound)
	_, err = s.GetAuthorization(ctx, authzs[0].ID)
	wantErr(t, "GetAuthorization after failed create", err, store.ErrNotFound)
	ids, _, err := s.ListOrderIDs(ctx, acct.ID, "", 10, baseTime)
	noErr(t, "ListOrderIDs", err)
	if len(ids) != 1 {
		t.Fatalf("account has %d orders after a failed create, want 1", len(ids))
	}
}

func testOrderUnknownAccount(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ghost := newAccount(t)
	o, authzs := newOrder(t, ghost)
	wantErr(t, "CreateOrder for a missing account", s.CreateOrder(ctx, o, authzs), store.ErrNotFound)
}

func testOrderUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct, "a.example.internal", "b.example.internal")
	tests := []struct {
		name   string
		change func(o *core.Order)
	}{
		{"ready", func(o *core.Order) { o.Status = core.StatusReady }},
		{"processing", func(o *core.Order) {
			o.Status = core.StatusProcessing
			o.ProcessingSince = baseTime.Add(time.Hour + 987654321)
		}},
		{"invalid with subproblems", func(o *core.Order) {
			o.Status = core.StatusInvalid
			o.Error = &core.Error{
				Kind:   core.KindRejectedIdentifier,
				Detail: "policy refused 2 identifiers",
				Subproblems: []*core.Error{
					{Kind: core.KindRejectedIdentifier, Detail: "rule deny.dns[0]", Identifier: &o.Identifiers[0]},
					{Kind: core.KindCAA, Detail: "caa forbids", Identifier: &o.Identifiers[1], RetryAfter: 30},
				},
			}
		}},
		{"valid", func(o *core.Order) {
			o.Status = core.StatusValid
			o.Error = nil
			o.CertificateID = "cert-1"
			o.ProcessingSince = time.Time{}
		}},
	}
	for i, tc := range tests {
		tc.change(o)
		noErr(t, "UpdateOrder "+tc.name, s.UpdateOrder(ctx, o))
		if want := int64(i + 2); o.Version != want {
			t.Fatalf("%s: Version = %d, want %d", tc.name, o.Version, want)
		}
		got, err := s.GetOrder(ctx, o.ID)
		noErr(t, "GetOrder", err)
		sameOrder(t, "after "+tc.name, got, o)
	}
}

func testOrderUpdateStale(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	stale := *o
	o.Status = core.StatusReady
	noErr(t, "UpdateOrder", s.UpdateOrder(ctx, o))
	stale.Status = core.StatusInvalid
	wantErr(t, "stale UpdateOrder", s.UpdateOrder(ctx, &stale), store.ErrConflict)
	if stale.Version != 1 {
		t.Fatalf("a refused update changed Version to %d", stale.Version)
	}
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "after refused update", got, o)
}

func testOrderNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	_, err := s.GetOrder(ctx, "no-such-order")
	wantErr(t, "GetOrder", err, store.ErrNotFound)
	ghost, _ := newOrder(t, acct)
	ghost.Version = 1
	wantErr(t, "UpdateOrder", s.UpdateOrder(ctx, ghost), store.ErrNotFound)
}

func testListOrderIDs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	other := mustAccount(t, s)
	empty := mustAccount(t, s)
	var want []string
	for i := 0; i < 5; i++ {
		o, _ := mustOrder(t, s, acct)
		want = append(want, o.ID)
		mustOrder(t, s, other) // interleaved, must not show up
	}
	tests := []struct {
		limit int
		pages [][]string
	}{
		{1, [][]string{want[0:1], want[1:2], want[2:3], want[3:4], want[4:5]}},
		{2, [][]string{want[0:2], want[2:4], want[4:5]}},
		{5, [][]string{want}},
		{100, [][]string{want}},
	}
	for _, tc := range tests {
		cursor := ""
		for p, page := range tc.pages {
			ids, next, err := s.ListOrderIDs(ctx, acct.ID, cursor, tc.limit, baseTime)
			noErr(t, "ListOrderIDs", err)
			if !slices.Equal(ids, page) {
				t.Fatalf("limit %d page %d: got %v, want %v", tc.limit, p, ids, page)
			}
			last := p == len(tc.pages)-1
			if last != (next == "") {
				t.Fatalf("limit %d page %d: next = %q, last page = %v", tc.limit, p, next, last)
			}
			cursor = next
		}
	}
	ids, next, err := s.ListOrderIDs(ctx, empty.ID, "", 10, baseTime)
	noErr(t, "ListOrderIDs of an account without orders", err)
	if len(ids) != 0 || next != "" {
		t.Fatalf("account without orders: got %v, %q", ids, next)
	}
}

func testListOrderIDsErrors(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	mustOrder(t, s, acct)
	_, _, err := s.ListOrderIDs(ctx, acct.ID, "no-such-cursor", 10, baseTime)
	wantErr(t, "ListOrderIDs with an unknown cursor", err, store.ErrNotFound)
	for _, limit := range []int{0, -1} {
		if _, _, err := s.ListOrderIDs(ctx, acct.ID, "", limit, baseTime); err == nil {
			t.Fatalf("ListOrderIDs with limit %d succeeded", limit)
		}
	}
}

// listedAt is the ACME layer's rule for which orders an account's orders
// list leaves out, written out for the tests: invalid ones, and pending or
// ready ones whose expiry is set and not after now (acme's orderState).
func listedAt(o *core.Order, now time.Time) bool {
	switch o.Status {
	case core.StatusInvalid:
		return false
	case core.StatusPending, core.StatusReady:
		return o.Expires.IsZero() || now.Before(o.Expires)
	}
	return true
}

// testListOrderIDsLeavesOutInvalid: ListOrderIDs leaves out the orders that
// are invalid at now, stored so or expired, on every page and whatever the
// limit, and a page is the last one exactly when no listed order follows.
func testListOrderIDsLeavesOutInvalid(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	other := mustAccount(t, s)
	// now keeps baseTime's nanoseconds (789 past a microsecond) and zone.
	now := baseTime.Add(30 * 24 * time.Hour)
	cases := []struct {
		name    string
		status  core.Status
		expires time.Time
		listed  bool
	}{
		{"pending, expires a microsecond after now", core.StatusPending, now.Add(time.Microsecond), true},
		{"invalid", core.StatusInvalid, now.Add(time.Hour), false},
		{"pending, expires at now", core.StatusPending, now, false},
		{"ready, expired", core.StatusReady, now.Add(-time.Hour), false},
		{"valid, expired", core.StatusValid, now.Add(-time.Hour), true},
		{"processing, expired", core.StatusProcessing, now.Add(-time.Hour), true},
		{"pending, no expiry", core.StatusPending, time.Time{}, true},
		// Stored truncated to now's microsecond, which is not after now.
		{"pending, expires 100ns after now", core.StatusPending, now.Add(100 * time.Nanosecond), false},
		{"ready, expires after now", core.StatusReady, now.Add(time.Hour), true},
		{"invalid, no expiry", core.StatusInvalid, time.Time{}, false},
		{"pending, expired", core.StatusPending, now.Add(-time.Hour), false},
	}
	var all, want, notInvalid []string
	for _, tc := range cases {
		o, authzs := newOrder(t, acct)
		o.Status, o.Expires = tc.status, tc.expires
		if tc.status == core.StatusProcessing {
			o.ProcessingSince = now.Add(-2 * time.Hour)
		}
		noErr(t, "CreateOrder", s.CreateOrder(ctx, o, authzs))
		mustOrder(t, s, other) // interleaved, must not show up
		got, err := s.GetOrder(ctx, o.ID)
		noErr(t, "GetOrder", err)
		if listedAt(got, now) != tc.listed {
			t.Fatalf("%s: the test's expectation disagrees with the rule for the stored order %+v", tc.name, got)
		}
		all = append(all, o.ID)
		if tc.listed {
			want = append(want, o.ID)
		}
		if tc.status != core.StatusInvalid {
			notInvalid = append(notInvalid, o.ID)
		}
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		cursor := ""
		for pages := 1; ; pages++ {
			ids, next, err := s.ListOrderIDs(ctx, acct.ID, cursor, limit, now)
			noErr(t, "ListOrderIDs", err)
			if len(ids) > limit || (next != "" && len(ids) != limit) {
				t.Fatalf("limit %d page %d: %v, next %q", limit, pages, ids, next)
			}
			got = append(got, ids...)
			if next == "" {
				break
			}
			if pages > len(all) {
				t.Fatalf("limit %d: more pages than orders, listed so far %v, want %v", limit, got, want)
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %v, want %v (all: %v)", limit, got, want, all)
		}
	}
	// Before every expiry, and at the zero time (before every instant),
	// only the orders stored as invalid are left out.
	for _, at := range []time.Time{baseTime, {}} {
		ids, next, err := s.ListOrderIDs(ctx, acct.ID, "", 100, at)
		noErr(t, "ListOrderIDs", err)
		if !slices.Equal(ids, notInvalid) || next != "" {
			t.Fatalf("at %v: listed %v, next %q; want %v", at, ids, next, notInvalid)
		}
	}
}

// testListOrderIDsCursorLeftOut: a cursor naming an order of the account
// that is now left out (it became invalid after the page that returned it)
// still continues after it; an exhausted listing is not an error, and a
// cursor that is not one of the account's orders is still ErrNotFound.
func testListOrderIDsCursorLeftOut(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	other := mustAccount(t, s)
	var ords []*core.Order
	for range 4 {
		o, _ := mustOrder(t, s, acct)
		ords = append(ords, o)
	}
	foreign, _ := mustOrder(t, s, other)
	invalidate := func(o *core.Order) {
		t.Helper()
		o.Status = core.StatusInvalid
		noErr(t, "UpdateOrder", s.UpdateOrder(ctx, o))
	}
	invalidate(foreign)
	now := baseTime
	page := func(cursor string, at time.Time, want []string, wantNext string) {
		t.Helper()
		ids, next, err := s.ListOrderIDs(ctx, acct.ID, cursor, 1, at)
		noErr(t, "ListOrderIDs after "+cursor, err)
		if !slices.Equal(ids, want) || next != wantNext {
			t.Fatalf("after %q at %v: %v, next %q; want %v, next %q", cursor, at, ids, next, want, wantNext)
		}
	}
	page("", now, []string{ords[0].ID}, ords[0].ID)
	invalidate(ords[0])
	invalidate(ords[2])
	page(ords[0].ID, now, []string{ords[1].ID}, ords[1].ID)
	page(ords[1].ID, now, []string{ords[3].ID}, "") // across the invalid ords[2]
	page(ords[2].ID, now, []string{ords[3].ID}, "")
	// At their expiry the pending orders are left out too; cursors naming
	// them, or the invalid ones, end the listing without an error.
	expired := ords[1].Expires
	page("", expired, nil, "")
	for _, o := range ords {
		page(o.ID, expired, nil, "")
	}
	for _, cursor := range []string{"no-such-cursor", foreign.ID} {
		for _, at := range []time.Time{now, expired} {
			_, _, err := s.ListOrderIDs(ctx, acct.ID, cursor, 1, at)
			wantErr(t, "ListOrderIDs with a cursor that is no order of the account", err, store.ErrNotFound)
		}
	}
}

func testListStaleProcessing(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	now := baseTime.Add(48 * time.Hour)
	mk := func(status core.Status, since time.Duration) *core.Order {
		t.Helper()
		o, _ := mustOrder(t, s, acct)
		o.Status = status
		if since != 0 {
			o.ProcessingSince = now.Add(-since)
		}
		noErr(t, "UpdateOrder", s.UpdateOrder(ctx, o))
		return o
	}
	old1 := mk(core.StatusProcessing, 2*time.Hour)
	old2 := mk(core.StatusProcessing, 10*time.Minute)
	mk(core.StatusProcessing, time.Minute) // recent: still being worked on
	mk(core.StatusValid, 3*time.Hour)      // finished
	mk(core.StatusPending, 0)              // never processed
	mk(core.StatusInvalid, 3*time.Hour)    // failed
	cutoff := now.Add(-5 * time.Minute)

	got, err := s.ListStaleProcessingOrders(ctx, cutoff)
	noErr(t, "ListStaleProcessingOrders", err)
	var ids []string
	for _, o := range got {
		ids = append(ids, o.ID)
		want := old1
		if o.ID == old2.ID {
			want = old2
		}
		sameOrder(t, "stale order", o, want)
	}
	slices.Sort(ids)
	want := []string{old1.ID, old2.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("stale orders = %v, want %v", ids, want)
	}
	got, err = s.ListStaleProcessingOrders(ctx, now.Add(-24*time.Hour))
	noErr(t, "ListStaleProcessingOrders", err)
	if len(got) != 0 {
		t.Fatalf("got %d stale orders before any processing started", len(got))
	}
}
