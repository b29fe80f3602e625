package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var certificateTests = []subtest{
	{"PutGet", testCertPutGet},
	{"PutIdempotent", testCertPutIdempotent},
	{"PutDuplicateSerial", testCertDuplicateSerial},
	{"PutSameIDOtherSerial", testCertSameIDOtherSerial},
	{"NotFound", testCertNotFound},
	{"CompleteOrder", testCompleteOrder},
	{"CompleteOrderStale", testCompleteOrderStale},
	{"CompleteOrderDuplicateSerial", testCompleteOrderDuplicateSerial},
	{"CompleteOrderRetry", testCompleteOrderRetry},
	{"Revoke", testRevoke},
	{"ListRevoked", testListRevoked},
	{"ByOrder", testCertsByOrder},
}

func testCertPutGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct, "a.example.internal", "b.example.internal")
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	got, err := s.GetCertificate(ctx, c.ID)
	noErr(t, "GetCertificate", err)
	sameCert(t, "GetCertificate", got, c)
	got, err = s.GetCertificateBySerial(ctx, c.Serial)
	noErr(t, "GetCertificateBySerial", err)
	sameCert(t, "GetCertificateBySerial", got, c)

	// The CA's record must be storable even without an order (e.g. a
	// certificate signed through the admin API), so no reference checks.
	bare := newCertificate(t, o)
	bare.ID, bare.OrderID, bare.CreatedAt = "", "", time.Time{}
	noErr(t, "PutCertificate without order", s.PutCertificate(ctx, bare))
	if bare.ID == "" || bare.CreatedAt.IsZero() {
		t.Fatalf("PutCertificate left ID %q / CreatedAt %v unset", bare.ID, bare.CreatedAt)
	}
	got, err = s.GetCertificateBySerial(ctx, bare.Serial)
	noErr(t, "GetCertificateBySerial", err)
	sameCert(t, "certificate without order", got, bare)
}

func testCertPutIdempotent(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	again := *c
	noErr(t, "PutCertificate again", s.PutCertificate(ctx, &again))
	got, err := s.GetCertificate(ctx, c.ID)
	noErr(t, "GetCertificate", err)
	sameCert(t, "after second put", got, c)
}

func testCertDuplicateSerial(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	dup := newCertificate(t, o)
	dup.Serial = c.Serial
	wantErr(t, "PutCertificate with a used serial", s.PutCertificate(ctx, dup), store.ErrDuplicateSerial)
	_, err := s.GetCertificate(ctx, dup.ID)
	wantErr(t, "GetCertificate of refused certificate", err, store.ErrNotFound)
}

func testCertSameIDOtherSerial(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	other := newCertificate(t, o)
	other.ID = c.ID
	wantErr(t, "PutCertificate with a used ID", s.PutCertificate(ctx, other), store.ErrConflict)
	_, err := s.GetCertificateBySerial(ctx, other.Serial)
	wantErr(t, "GetCertificateBySerial of refused certificate", err, store.ErrNotFound)
}

func testCertNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.GetCertificate(ctx, "no-such-cert")
	wantErr(t, "GetCertificate", err, store.ErrNotFound)
	_, err = s.GetCertificateBySerial(ctx, "abcdef")
	wantErr(t, "GetCertificateBySerial", err, store.ErrNotFound)
}

// processing moves a fresh order to "processing", as finalize would.
func processing(t *testing.T, s store.Store, o *core.Order) {
	t.Helper()
	o.Status = core.StatusProcessing
	o.ProcessingSince = baseTime.Add(time.Minute)
	noErr(t, "UpdateOrder", s.UpdateOrder(ctxT(t), o))
}

func finish(o *core.Order, c *core.Certificate) {
	o.Status = core.StatusValid
	o.CertificateID = c.ID
	o.ProcessingSince = time.Time{}
}

func testCompleteOrder(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	processing(t, s, o)
	c := newCertificate(t, o)
	finish(o, c)
	noErr(t, "CompleteOrder", s.CompleteOrder(ctx, o, c))
	if o.Version != 3 {
		t.Fatalf("order Version = %d, want 3", o.Version)
	}
	gotO, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "completed order", gotO, o)
	gotC, err := s.GetCertificate(ctx, gotO.CertificateID)
	noErr(t, "GetCertificate", err)
	sameCert(t, "completed order's certificate", gotC, c)
}

// testCompleteOrderStale: losing the version race must not leave the
// certificate behind, or two finalize calls could both store one.
func testCompleteOrderStale(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	stale := *o
	processing(t, s, o)
	c := newCertificate(t, &stale)
	finish(&stale, c)
	wantErr(t, "CompleteOrder with a stale order", s.CompleteOrder(ctx, &stale, c), store.ErrConflict)
	_, err := s.GetCertificate(ctx, c.ID)
	wantErr(t, "GetCertificate after refused CompleteOrder", err, store.ErrNotFound)
	_, err = s.GetCertificateBySerial(ctx, c.Serial)
	wantErr(t, "GetCertificateBySerial after refused CompleteOrder", err, store.ErrNotFound)
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "order after refused CompleteOrder", got, o)

	ghost, _ := newOrder(t, acct)
	ghost.Version = 1
	c2 := newCertificate(t, ghost)
	wantErr(t, "CompleteOrder of a missing order", s.CompleteOrder(ctx, ghost, c2), store.ErrNotFound)
	_, err = s.GetCertificate(ctx, c2.ID)
	wantErr(t, "GetCertificate after CompleteOrder of a missing order", err, store.ErrNotFound)
}

func testCompleteOrderDuplicateSerial(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o1, _ := mustOrder(t, s, acct)
	o2, _ := mustOrder(t, s, acct)
	c1 := newCertificate(t, o1)
	finish(o1, c1)
	noErr(t, "CompleteOrder", s.CompleteOrder(ctx, o1, c1))

	before := *o2
	c2 := newCertificate(t, o2)
	c2.Serial = c1.Serial
	finish(o2, c2)
	wantErr(t, "CompleteOrder with a used serial", s.CompleteOrder(ctx, o2, c2), store.ErrDuplicateSerial)
	got, err := s.GetOrder(ctx, o2.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "order after refused CompleteOrder", got, &before)
}

// testCompleteOrderRetry: a caller that does not know whether its commit
// went through may retry with a fresh order version and the same certificate.
func testCompleteOrderRetry(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	finish(o, c)
	noErr(t, "CompleteOrder after PutCertificate", s.CompleteOrder(ctx, o, c))
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	sameOrder(t, "order", got, o)
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	c := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
	at := baseTime.Add(36*time.Hour + 555)

	wantErr(t, "RevokeCertificate of unknown serial", s.RevokeCertificate(ctx, "0123abc", 1, at), store.ErrNotFound)
	noErr(t, "RevokeCertificate", s.RevokeCertificate(ctx, c.Serial, 4, at))
	wantErr(t, "second RevokeCertificate", s.RevokeCertificate(ctx, c.Serial, 1, at.Add(time.Hour)), store.ErrAlreadyRevoked)

	c.RevokedAt = at
	c.RevocationReason = 4
	got, err := s.GetCertificateBySerial(ctx, c.Serial)
	noErr(t, "GetCertificateBySerial", err)
	sameCert(t, "revoked certificate", got, c)
}

func testListRevoked(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	now := baseTime.Add(30 * 24 * time.Hour)
	mk := func(notAfter time.Time, revoke bool, reason int) *core.Certificate {
		t.Helper()
		c := newCertificate(t, o)
		c.NotAfter = notAfter
		noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
		if revoke {
			c.RevokedAt = now.Add(-time.Hour)
			c.RevocationReason = reason
			noErr(t, "RevokeCertificate", s.RevokeCertificate(ctx, c.Serial, reason, c.RevokedAt))
		}
		return c
	}
	live1 := mk(now.Add(time.Hour), true, 1)
	live2 := mk(now.Add(24*time.Hour), true, 0)
	mk(now.Add(-time.Second), true, 1) // expired: no longer on CRLs
	mk(now.Add(time.Hour), false, 0)   // not revoked

	got, err := s.ListRevoked(ctx, now)
	noErr(t, "ListRevoked", err)
	want := map[string]*core.Certificate{live1.Serial: live1, live2.Serial: live2}
	var serials []string
	for _, c := range got {
		w, ok := want[c.Serial]
		if !ok {
			t.Fatalf("ListRevoked returned %s (NotAfter %v, RevokedAt %v)", c.Serial, c.NotAfter, c.RevokedAt)
		}
		sameCert(t, "revoked certificate", c, w)
		serials = append(serials, c.Serial)
	}
	slices.Sort(serials)
	wantSerials := []string{live1.Serial, live2.Serial}
	slices.Sort(wantSerials)
	if !slices.Equal(serials, wantSerials) {
		t.Fatalf("ListRevoked serials = %v, want %v", serials, wantSerials)
	}
}

func testCertsByOrder(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct, "a.example.internal")
	other, _ := mustOrder(t, s, acct, "b.example.internal")
	got, err := s.GetCertificatesByOrder(ctx, o.ID)
	noErr(t, "GetCertificatesByOrder (none)", err)
	if len(got) != 0 {
		t.Fatalf("GetCertificatesByOrder of an order without certificates: %d", len(got))
	}
	first := newCertificate(t, o)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, first))
	second := newCertificate(t, o)
	second.CreatedAt = first.CreatedAt.Add(time.Second)
	noErr(t, "PutCertificate", s.PutCertificate(ctx, second))
	noErr(t, "PutCertificate", s.PutCertificate(ctx, newCertificate(t, other)))
	got, err = s.GetCertificatesByOrder(ctx, o.ID)
	noErr(t, "GetCertificatesByOrder", err)
	if len(got) != 2 {
		t.Fatalf("GetCertificatesByOrder: %d certificates, want 2", len(got))
	}
	sameCert(t, "GetCertificatesByOrder[0]", got[0], first)
	sameCert(t, "GetCertificatesByOrder[1]", got[1], second)
	got, err = s.GetCertificatesByOrder(ctx, "no-such-order")
	noErr(t, "GetCertificatesByOrder (unknown)", err)
	if len(got) != 0 {
		t.Fatalf("unknown order: %d certificates", len(got))
	}
}
