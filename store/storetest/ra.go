package storetest

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var raTests = []subtest{
	{"TokenCreateGet", testRATokenCreateGet},
	{"Enrol", testRAEnrol},
	{"EnrolRefused", testRAEnrolRefused},
	{"ReEnrolKeepsDisabled", testRAReEnrolKeepsDisabled},
	{"UpdateAndList", testRAUpdateAndList},
	{"EnrolRace", testRAEnrolRace},
}

func newRAToken(t *testing.T, s store.Store, name string, provs ...string) (*core.RAToken, []byte) {
	t.Helper()
	h := sha256.Sum256([]byte(newID(t)))
	tok := &core.RAToken{RAName: name, Provisioners: provs, SecretHash: h[:], ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateRAToken(ctxT(t), tok); err != nil {
		t.Fatalf("CreateRAToken: %v", err)
	}
	return tok, h[:]
}

func testRATokenCreateGet(t *testing.T, s store.Store) {
	tok, _ := newRAToken(t, s, "site-a", "acme", "eab")
	if tok.ID == "" || tok.CreatedAt.IsZero() {
		t.Fatalf("ID/CreatedAt not filled in: %+v", tok)
	}
	got, err := s.GetRAToken(ctxT(t), tok.ID)
	if err != nil {
		t.Fatalf("GetRAToken: %v", err)
	}
	want := *tok
	want.CreatedAt = want.CreatedAt.UTC().Truncate(TimePrecision)
	want.ExpiresAt = want.ExpiresAt.UTC().Truncate(TimePrecision)
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("GetRAToken:\n got %+v\nwant %+v", got, &want)
	}
	if _, err := s.GetRAToken(ctxT(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
	if err := s.CreateRAToken(ctxT(t), &core.RAToken{ID: tok.ID, RAName: "x", SecretHash: []byte{1}, ExpiresAt: time.Now()}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate ID: %v, want ErrConflict", err)
	}
}

func testRAEnrol(t *testing.T, s store.Store) {
	tok, h := newRAToken(t, s, "site-a", "acme")
	now := time.Now()
	notAfter := now.Add(720 * time.Hour)
	ra := &core.RA{CertSerial: "abc1", CertNotAfter: notAfter}
	if err := s.EnrolRA(ctxT(t), tok.ID, h, now, ra); err != nil {
		t.Fatalf("EnrolRA: %v", err)
	}
	if ra.Name != "site-a" || !reflect.DeepEqual(ra.Provisioners, []string{"acme"}) || ra.CertSerial != "abc1" ||
		!ra.DisabledAt.IsZero() || ra.Version != 1 || !ra.CertNotAfter.Equal(notAfter.Truncate(TimePrecision)) {
		t.Fatalf("enrolled RA: %+v", ra)
	}
	got, err := s.GetRA(ctxT(t), "site-a")
	if err != nil {
		t.Fatalf("GetRA: %v", err)
	}
	if !reflect.DeepEqual(got, ra) {
		t.Fatalf("GetRA:\n got %+v\nwant %+v", got, ra)
	}
	used, err := s.GetRAToken(ctxT(t), tok.ID)
	if err != nil || used.UsedAt.IsZero() {
		t.Fatalf("token after enrolment: %+v, %v; want UsedAt set", used, err)
	}
	// A token works once.
	if err := s.EnrolRA(ctxT(t), tok.ID, h, now, &core.RA{}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("second redemption: %v, want ErrTokenUnusable", err)
	}
	if _, err := s.GetRA(ctxT(t), "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown RA: %v, want ErrNotFound", err)
	}
}

func testRAEnrolRefused(t *testing.T, s store.Store) {
	tok, h := newRAToken(t, s, "site-a", "acme")
	wrong := sha256.Sum256([]byte("guess"))
	if err := s.EnrolRA(ctxT(t), tok.ID, wrong[:], time.Now(), &core.RA{}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("wrong secret: %v, want ErrTokenUnusable", err)
	}
	if err := s.EnrolRA(ctxT(t), tok.ID, h, time.Now().Add(2*time.Hour), &core.RA{}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("expired: %v, want ErrTokenUnusable", err)
	}
	if err := s.EnrolRA(ctxT(t), "missing", h, time.Now(), &core.RA{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
	// Refusals leave the token usable and create no RA.
	if _, err := s.GetRA(ctxT(t), "site-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RA after refusals: %v, want ErrNotFound", err)
	}
	if err := s.EnrolRA(ctxT(t), tok.ID, h, time.Now(), &core.RA{}); err != nil {
		t.Fatalf("EnrolRA after refusals: %v", err)
	}
}

func testRAReEnrolKeepsDisabled(t *testing.T, s store.Store) {
	tok, h := newRAToken(t, s, "site-a", "acme")
	ra := &core.RA{CertSerial: "1"}
	if err := s.EnrolRA(ctxT(t), tok.ID, h, time.Now(), ra); err != nil {
		t.Fatal(err)
	}
	ra.DisabledAt = time.Now()
	if err := s.UpdateRA(ctxT(t), ra); err != nil {
		t.Fatalf("UpdateRA: %v", err)
	}
	tok2, h2 := newRAToken(t, s, "site-a", "acme", "eab")
	again := &core.RA{CertSerial: "2"}
	if err := s.EnrolRA(ctxT(t), tok2.ID, h2, time.Now(), again); err != nil {
		t.Fatalf("re-enrol: %v", err)
	}
	if again.DisabledAt.IsZero() || again.CertSerial != "2" || len(again.Provisioners) != 2 || again.Version != 3 {
		t.Fatalf("re-enrolled RA: %+v; want still disabled, serial 2, two provisioners, version 3", again)
	}
}

func testRAUpdateAndList(t *testing.T, s store.Store) {
	for _, n := range []string{"site-b", "site-a"} {
		tok, h := newRAToken(t, s, n, "acme")
		if err := s.EnrolRA(ctxT(t), tok.ID, h, time.Now(), &core.RA{}); err != nil {
			t.Fatal(err)
		}
	}
	ras, err := s.ListRAs(ctxT(t))
	if err != nil || len(ras) != 2 || ras[0].Name != "site-a" || ras[1].Name != "site-b" {
		t.Fatalf("ListRAs: %+v, %v", ras, err)
	}
	a := ras[0]
	stale := *a
	a.Provisioners = []string{"acme", "other"}
	a.DisabledAt = baseTime
	if err := s.UpdateRA(ctxT(t), a); err != nil || a.Version != 2 {
		t.Fatalf("UpdateRA: %v (version %d)", err, a.Version)
	}
	got, _ := s.GetRA(ctxT(t), "site-a")
	if !got.DisabledAt.Equal(baseTime.Truncate(TimePrecision)) || len(got.Provisioners) != 2 {
		t.Fatalf("after update: %+v", got)
	}
	if err := s.UpdateRA(ctxT(t), &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if err := s.UpdateRA(ctxT(t), &core.RA{Name: "gone", Version: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of unknown RA: %v, want ErrNotFound", err)
	}
	got.DisabledAt = time.Time{}
	if err := s.UpdateRA(ctxT(t), got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.GetRA(ctxT(t), "site-a"); !again.DisabledAt.IsZero() {
		t.Fatalf("enable: DisabledAt = %v", again.DisabledAt)
	}
}

func testRAEnrolRace(t *testing.T, s store.Store) {
	tok, h := newRAToken(t, s, "site-a", "acme")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.EnrolRA(ctxT(t), tok.ID, h, time.Now(), &core.RA{}) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUnusable):
			t.Errorf("racing redemption: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d redemptions of one token succeeded, want 1", ok)
	}
}
