package migrate_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/migrate"
	"github.com/policyca/policyca/store/postgres"
	"github.com/policyca/policyca/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// backend is what the test needs of a store: the CA's interface and both
// sides of migration.
type backend interface {
	store.Store
	migrate.Target
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), pgtest.Shared(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)

// counts of the generated data set.
const (
	nAccounts     = 40
	nOrders       = 200  // each with two authorizations
	nCertificates = 3000 // in the main test
	nEAB          = 30   // the first 10 bound
	nDecisions    = 400
	nRAs          = 5  // ra-00 … ra-04, enrolled; ra-00 twice, ra-02 then disabled
	nRATokens     = 12 // 6 used, 6 unused (one naming an RA never enrolled, one expired)
)

// usedTokens are the enrolment tokens fill redeems; the others stay unused.
var usedTokens = map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 6: true}

func raTokenID(i int) string { return fmt.Sprintf("rat-%02d", i) }

func raSecretHash(i int) []byte {
	h := sha256.Sum256([]byte(fmt.Sprintf("ra-secret-%d", i)))
	return h[:]
}

// fill writes a CA's worth of data through the store's normal API, with
// the awkward cases: updated objects (versions above 1), absent and
// sub-microsecond times, a revoked certificate, bound and unbound EAB keys,
// a policy written with spaces and unsorted keys, invalid orders with a
// problem, orders reusing another order's authorization, RAs enrolled
// once and twice and disabled, and used, unused and expired enrolment
// tokens.
func fill(t *testing.T, s store.Store, nCertificates int) {
	t.Helper()
	ctx := t.Context()
	accts := make([]*core.Account, nAccounts)
	for i := range accts {
		a := &core.Account{
			ID: fmt.Sprintf("acct-%03d", i), Provisioner: "acme", KeyThumbprint: fmt.Sprintf("thumb-%d", i),
			KeyJWK: []byte(`{"kty":"EC"}`), Status: core.StatusValid, TermsAgreed: i%2 == 0,
			CreatedAt: t0.Add(time.Duration(i) * time.Second),
		}
		if i%3 == 0 {
			a.Contact = []string{fmt.Sprintf("mailto:ops%d@example.internal", i)}
		}
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			a.Contact = append(a.Contact, "mailto:second@example.internal")
			for range 2 {
				if err := s.UpdateAccount(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
		}
		accts[i] = a
	}
	// Binding creates the accounts of the first 10 keys.
	for i := range nEAB {
		k := &core.EABKey{
			ID: fmt.Sprintf("kid-%02d", i), Provisioner: "acme", Reference: fmt.Sprintf("host-%d", i),
			HMACKey: []byte(fmt.Sprintf("secret-%d-0123456789abcdef", i)), CreatedAt: t0.Add(time.Duration(nEAB-i) * time.Minute),
		}
		if i%4 == 0 {
			k.Policy = []byte(`{ "deny": {"dns": [".bad.internal"]},  "allow": {"dns": [".team.internal"], "ip": ["10.1.0.0/16"]}, "max_lifetime": "72h" }`)
		}
		if i%7 == 0 {
			k.ExpiresAt = t0.Add(1000 * time.Hour)
		}
		if err := s.CreateEABKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			a := &core.Account{ID: fmt.Sprintf("bound-%02d", i), Provisioner: "acme", KeyThumbprint: fmt.Sprintf("bthumb-%d", i),
				KeyJWK: []byte(`{"kty":"OKP"}`), Status: core.StatusValid, TermsAgreed: true}
			if err := s.CreateAccountBound(ctx, a, k.ID, t0); err != nil {
				t.Fatal(err)
			}
		} else if i == 12 {
			k.RevokedAt = t0.Add(time.Hour)
			if err := s.UpdateEABKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	var prevAuthz string
	for i := range nOrders {
		a := accts[i%nAccounts]
		o := &core.Order{
			ID: fmt.Sprintf("order-%04d", i), AccountID: a.ID, Provisioner: "acme", Status: core.StatusPending,
			Expires:     t0.Add(24 * time.Hour),
			Identifiers: []core.Identifier{{Type: core.DNS, Value: fmt.Sprintf("h%d.team.internal", i)}, {Type: core.IP, Value: "10.1.2.3"}},
			// Orders are created in an order different from their IDs'.
			CreatedAt: t0.Add(time.Duration(nOrders-i) * time.Millisecond),
		}
		var authzs []*core.Authorization
		for j, id := range o.Identifiers {
			authzs = append(authzs, &core.Authorization{
				ID: fmt.Sprintf("authz-%04d-%d", i, j), Identifier: id, Status: core.StatusPending, Expires: t0.Add(24 * time.Hour),
				Challenges: []core.Challenge{{ID: fmt.Sprintf("ch-%d-%d", i, j), Type: core.ChallengeHTTP01, Token: "tok", Status: core.StatusPending}},
			})
		}
		if i%10 == 9 {
			o.AuthzIDs = []string{authzs[0].ID, authzs[1].ID, prevAuthz}
		}
		if err := s.CreateOrder(ctx, o, authzs); err != nil {
			t.Fatal(err)
		}
		prevAuthz = authzs[0].ID
		switch i % 4 {
		case 1:
			authzs[0].Status = core.StatusValid
			authzs[0].Challenges[0].Status = core.StatusValid
			authzs[0].Challenges[0].Validated = t0.Add(time.Duration(i) * time.Microsecond)
			if err := s.UpdateAuthorization(ctx, authzs[0]); err != nil {
				t.Fatal(err)
			}
		case 2:
			o.Status = core.StatusInvalid
			o.Error = &core.Error{Kind: core.KindConnection, Detail: "connection refused",
				Subproblems: []*core.Error{{Kind: core.KindDNS, Detail: "nxdomain", Identifier: &o.Identifiers[0]}}}
			if err := s.UpdateOrder(ctx, o); err != nil {
				t.Fatal(err)
			}
		case 3:
			o.Status, o.ProcessingSince = core.StatusProcessing, t0
			if err := s.UpdateOrder(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Certificates: fake DER is enough at the store level. Written by
	// several goroutines, as a busy CA would.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < nCertificates; i += 8 {
				c := &core.Certificate{
					ID: fmt.Sprintf("cert-%05d", i), Serial: fmt.Sprintf("%x", 0x10000+i*7919),
					AccountID: accts[i%nAccounts].ID, OrderID: fmt.Sprintf("order-%04d", i%nOrders), Provisioner: "acme",
					DER: []byte(fmt.Sprintf("\x30\x82fake-der-%d", i)), ChainPEM: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
					NotBefore: t0, NotAfter: t0.Add(24 * time.Hour),
					Names:          []core.Identifier{{Type: core.DNS, Value: fmt.Sprintf("h%d.team.internal", i)}},
					PolicyRevision: "rev-1", DecisionID: fmt.Sprintf("dec-%d", i),
					CreatedAt: t0.Add(time.Duration(i) * time.Millisecond),
				}
				if err := s.PutCertificate(ctx, c); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.RevokeCertificate(ctx, fmt.Sprintf("%x", 0x10000+17*7919), 4, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var recs []*core.DecisionRecord
	for i := range nDecisions {
		recs = append(recs, &core.DecisionRecord{
			ID: fmt.Sprintf("dec-%04d", nDecisions-i), Time: t0.Add(time.Duration(i%50) * time.Second), Stage: core.StageOrder,
			Provisioner: "acme", AccountID: accts[i%nAccounts].ID, Allow: i%3 != 0,
			Identifiers: []core.Identifier{{Type: core.DNS, Value: "x.team.internal"}},
			Violations:  []core.Violation{{Type: "dns", Value: "x", Layer: "account", Reason: "no"}}[:i%3/2],
			Lifetime:    72 * time.Hour, Revision: "rev-1", EvalTime: 1234567 * time.Nanosecond, Node: "ca-1/127.0.0.1:8443",
		})
	}
	if err := s.RecordDecisions(ctx, recs); err != nil {
		t.Fatal(err)
	}
	fillRAs(t, s)
}

// fillRAs creates the enrolment tokens and, by redeeming some of them,
// the RAs. Times have sub-microsecond parts the stores drop.
func fillRAs(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	for i := range nRATokens {
		tok := &core.RAToken{
			ID: raTokenID(i), RAName: fmt.Sprintf("ra-%02d", i%6), SecretHash: raSecretHash(i),
			CreatedAt: t0.Add(time.Duration(i)*time.Second + 789*time.Nanosecond),
			ExpiresAt: t0.Add(48*time.Hour + 1*time.Nanosecond),
		}
		switch i % 3 {
		case 0:
			tok.Provisioners = []string{"acme", "ra-only"}
		case 1:
			tok.Provisioners = []string{"acme"}
		}
		if i == nRATokens-1 {
			tok.ExpiresAt = t0.Add(-time.Hour)
		}
		if err := s.CreateRAToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nRATokens {
		if !usedTokens[i] {
			continue
		}
		ra := &core.RA{CertSerial: fmt.Sprintf("%x", 0xabc00+i), CertNotAfter: t0.Add(30*24*time.Hour + 555*time.Nanosecond)}
		if err := s.EnrolRA(ctx, raTokenID(i), raSecretHash(i), t0.Add(time.Duration(i)*time.Minute+321*time.Nanosecond), ra); err != nil {
			t.Fatalf("EnrolRA %s: %v", raTokenID(i), err)
		}
	}
	ra, err := s.GetRA(ctx, "ra-02")
	if err != nil {
		t.Fatal(err)
	}
	ra.DisabledAt = t0.Add(3*time.Hour + 999*time.Nanosecond)
	if err := s.UpdateRA(ctx, ra); err != nil {
		t.Fatal(err)
	}
}

func checksums(t *testing.T, s migrate.Source) map[string]migrate.TableResult {
	t.Helper()
	out := map[string]migrate.TableResult{}
	for _, table := range migrate.Tables {
		r, err := migrate.Checksum(t.Context(), s, table)
		if err != nil {
			t.Fatalf("Checksum %s: %v", table, err)
		}
		out[table] = r
	}
	return out
}

// sameBehaviour checks, through the CA's own interface, things a checksum
// over rows could not show: listings in insertion order and the lookups.
func sameBehaviour(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx := t.Context()
	// At t0 only the invalid orders are left out; two days later the
	// pending ones have expired too (acct-000 then has none listed,
	// acct-007 and acct-039 keep their orders in processing).
	for _, now := range []time.Time{t0, t0.Add(48 * time.Hour)} {
		for _, acct := range []string{"acct-000", "acct-007", "acct-039"} {
			ia, _, err := a.ListOrderIDs(ctx, acct, "", 100, now)
			if err != nil {
				t.Fatal(err)
			}
			ib, _, err := b.ListOrderIDs(ctx, acct, "", 100, now)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ia, ib) || (len(ia) == 0 && now.Equal(t0)) {
				t.Fatalf("ListOrderIDs(%s, %v): %v vs %v", acct, now, ia, ib)
			}
		}
	}
	ka, err := a.ListEABKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.ListEABKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ka) != nEAB || len(kb) != nEAB {
		t.Fatalf("ListEABKeys: %d and %d keys", len(ka), len(kb))
	}
	for i := range ka {
		if ka[i].ID != kb[i].ID || ka[i].BoundAccount != kb[i].BoundAccount || ka[i].Version != kb[i].Version {
			t.Fatalf("EAB key %d: %+v vs %+v", i, ka[i], kb[i])
		}
	}
	da, err := a.ListDecisions(ctx, core.DecisionFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.ListDecisions(ctx, core.DecisionFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(da) != nDecisions || len(db) != nDecisions {
		t.Fatalf("ListDecisions: %d and %d", len(da), len(db))
	}
	for i := range da {
		if da[i].ID != db[i].ID {
			t.Fatalf("decision %d: %s vs %s (order of equal times lost)", i, da[i].ID, db[i].ID)
		}
	}
	stale, err := b.ListStaleProcessingOrders(ctx, t0.Add(time.Second))
	if err != nil || len(stale) != nOrders/4 {
		t.Fatalf("ListStaleProcessingOrders: %d, %v", len(stale), err)
	}
	acct, err := b.GetAccount(ctx, "acct-005")
	if err != nil || acct.Version != 3 {
		t.Fatalf("updated account: %+v, %v; want version 3", acct, err)
	}
	revoked, err := b.ListRevoked(ctx, t0)
	if err != nil || len(revoked) != 1 {
		t.Fatalf("ListRevoked: %d, %v", len(revoked), err)
	}
	// The target is a working store: a bound key stays bound.
	err = b.CreateAccountBound(ctx, &core.Account{Provisioner: "acme", KeyThumbprint: "new", KeyJWK: []byte("{}"), Status: core.StatusValid}, "kid-00", t0)
	if !errors.Is(err, store.ErrEABUnusable) {
		t.Fatalf("binding an already bound key after migration: %v", err)
	}
	sameRAs(t, a, b)
}

// sameRAs checks the RA registry of b against a's, through the CA's
// interface, without changing b: the RAs keep their provisioners, state
// and versions, used tokens stay used and unused ones keep their secret.
func sameRAs(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx := t.Context()
	ra, err := a.ListRAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.ListRAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != nRAs || len(rb) != nRAs {
		t.Fatalf("ListRAs: %d and %d RAs, want %d", len(ra), len(rb), nRAs)
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.Name != y.Name || !slices.Equal(x.Provisioners, y.Provisioners) || !x.DisabledAt.Equal(y.DisabledAt) ||
			!x.EnrolledAt.Equal(y.EnrolledAt) || x.CertSerial != y.CertSerial || !x.CertNotAfter.Equal(y.CertNotAfter) ||
			!x.CreatedAt.Equal(y.CreatedAt) || x.Version != y.Version {
			t.Fatalf("RA %d: %+v vs %+v", i, x, y)
		}
	}
	if r, err := b.GetRA(ctx, "ra-00"); err != nil || r.Version != 2 || !r.DisabledAt.IsZero() || r.CertSerial != "abc06" ||
		!slices.Equal(r.Provisioners, []string{"acme", "ra-only"}) {
		t.Fatalf("RA enrolled twice: %+v, %v; want version 2, enabled, the second certificate", r, err)
	}
	if r, err := b.GetRA(ctx, "ra-02"); err != nil || r.Version != 2 || r.DisabledAt.IsZero() {
		t.Fatalf("disabled RA: %+v, %v; want version 2, disabled", r, err)
	}
	if r, err := b.GetRA(ctx, "ra-01"); err != nil || r.Version != 1 || !slices.Equal(r.Provisioners, []string{"acme"}) {
		t.Fatalf("RA ra-01: %+v, %v", r, err)
	}
	for i := range nRATokens {
		x, err := a.GetRAToken(ctx, raTokenID(i))
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.GetRAToken(ctx, raTokenID(i))
		if err != nil {
			t.Fatalf("token %s after migration: %v", raTokenID(i), err)
		}
		if x.RAName != y.RAName || !slices.Equal(x.Provisioners, y.Provisioners) || !slices.Equal(y.SecretHash, raSecretHash(i)) ||
			!x.CreatedAt.Equal(y.CreatedAt) || !x.ExpiresAt.Equal(y.ExpiresAt) || !x.UsedAt.Equal(y.UsedAt) {
			t.Fatalf("token %d: %+v vs %+v", i, x, y)
		}
		if y.UsedAt.IsZero() == usedTokens[i] {
			t.Fatalf("token %d: used at %v, want used %v", i, y.UsedAt, usedTokens[i])
		}
	}
	// A used token cannot enrol again on the target; failed redemptions
	// change nothing.
	if err := b.EnrolRA(ctx, raTokenID(0), raSecretHash(0), t0, &core.RA{CertSerial: "ff"}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("redeeming a used token after migration: %v, want ErrTokenUnusable", err)
	}
	if err := b.EnrolRA(ctx, raTokenID(nRATokens-1), raSecretHash(nRATokens-1), t0, &core.RA{CertSerial: "ff"}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("redeeming an expired token after migration: %v, want ErrTokenUnusable", err)
	}
}

func TestSQLiteToPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := openSQLite(t, filepath.Join(t.TempDir(), "ca.db"))
	fill(t, src, nCertificates)
	dst := openPostgres(t)

	res, err := migrate.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	want := map[string]int64{"accounts": nAccounts + 10, "orders": nOrders, "authorizations": 2 * nOrders,
		"certificates": nCertificates, "eab_keys": nEAB, "decisions": nDecisions, "ras": nRAs, "ra_tokens": nRATokens}
	if len(res) != len(want) {
		t.Fatalf("Copy: %d tables, want %d: %+v", len(res), len(want), res)
	}
	for _, r := range res {
		if r.Rows != want[r.Table] {
			t.Errorf("%s: copied %d rows, want %d", r.Table, r.Rows, want[r.Table])
		}
	}
	// Computed independently on both sides.
	cs, cd := checksums(t, src), checksums(t, dst)
	for _, table := range migrate.Tables {
		if cs[table] != cd[table] {
			t.Errorf("%s: source %+v, target %+v", table, cs[table], cd[table])
		}
	}
	sameBehaviour(t, src, dst)

	// A second run into the now non-empty target is refused and changes
	// nothing.
	if _, err := migrate.Copy(ctx, src, dst); !errors.Is(err, migrate.ErrTargetNotEmpty) {
		t.Fatalf("second Copy: %v, want ErrTargetNotEmpty", err)
	}
	if after := checksums(t, dst); after["certificates"] != cd["certificates"] {
		t.Fatal("the refused run changed the target")
	}

	// And back, PostgreSQL to a new SQLite file: the same checksums again.
	back := openSQLite(t, filepath.Join(t.TempDir(), "back.db"))
	if _, err := migrate.Copy(ctx, dst, back); err != nil {
		t.Fatalf("Copy back: %v", err)
	}
	if cb := checksums(t, back); !mapsEqual(cb, cs) {
		t.Fatalf("round trip changed the data:\n%v\n%v", cb, cs)
	}
	sameRAs(t, src, back)

	// An outstanding token still enrols its RA, once, on the copy of the
	// copy; the RA enrolled only after migration is a new one.
	i := 5 // ra-05: never enrolled before
	ra := &core.RA{CertSerial: "beef", CertNotAfter: t0.Add(time.Hour)}
	if err := back.EnrolRA(ctx, raTokenID(i), raSecretHash(i), t0.Add(time.Hour), ra); err != nil {
		t.Fatalf("redeeming an unused token after migration: %v", err)
	}
	if ra.Name != "ra-05" || ra.Version != 1 || len(ra.Provisioners) != 0 || !ra.CreatedAt.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("RA enrolled after migration: %+v", ra)
	}
	if err := back.EnrolRA(ctx, raTokenID(i), raSecretHash(i), t0.Add(time.Hour), &core.RA{}); !errors.Is(err, store.ErrTokenUnusable) {
		t.Fatalf("second redemption: %v, want ErrTokenUnusable", err)
	}
}

func mapsEqual(a, b map[string]migrate.TableResult) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// lossy is a target that silently drops one row: verification must notice.
type lossy struct {
	backend
	drop string
}

func (l *lossy) ImportRows(ctx context.Context, fill func(put func(string, any) error) error) error {
	return l.backend.ImportRows(ctx, func(put func(string, any) error) error {
		return fill(func(table string, row any) error {
			if c, ok := row.(*core.Certificate); ok && c.ID == l.drop {
				return nil
			}
			if tok, ok := row.(*core.RAToken); ok && tok.ID == l.drop {
				return nil
			}
			return put(table, row)
		})
	})
}

func TestVerificationCatchesLoss(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src := openSQLite(t, filepath.Join(dir, "src.db"))
	for i := range 3 {
		c := &core.Certificate{ID: fmt.Sprintf("c%d", i), Serial: fmt.Sprintf("%x", i+1), DER: []byte{1}, CreatedAt: t0}
		if err := src.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		tok := &core.RAToken{ID: fmt.Sprintf("t%d", i), RAName: "ra", SecretHash: raSecretHash(i), ExpiresAt: t0}
		if err := src.CreateRAToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, drop := range []string{"c1", "t1"} {
		dst := &lossy{backend: openSQLite(t, filepath.Join(dir, "dst-"+drop+".db")), drop: drop}
		if _, err := migrate.Copy(ctx, src, dst); !errors.Is(err, migrate.ErrMismatch) {
			t.Fatalf("Copy into a target losing %s: %v, want ErrMismatch", drop, err)
		}
	}
}

// failing is a target whose import fails half way: nothing may remain.
type failing struct{ backend }

func (f *failing) ImportRows(ctx context.Context, fill func(put func(string, any) error) error) error {
	return f.backend.ImportRows(ctx, func(put func(string, any) error) error {
		n := 0
		return fill(func(table string, row any) error {
			if n++; n == 50 {
				return errors.New("disk full")
			}
			return put(table, row)
		})
	})
}

func TestFailedImportLeavesTargetEmpty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := openSQLite(t, filepath.Join(t.TempDir(), "src.db"))
	// Fewer certificates: the point is the rollback, not the volume.
	fill(t, src, 200)
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var dst backend
			if name == "sqlite" {
				dst = openSQLite(t, filepath.Join(t.TempDir(), "dst.db"))
			} else {
				dst = openPostgres(t)
			}
			if _, err := migrate.Copy(ctx, src, &failing{dst}); err == nil {
				t.Fatal("Copy succeeded through a failing import")
			}
			for _, table := range migrate.Tables {
				if n, err := dst.CountRows(ctx, table); err != nil || n != 0 {
					t.Fatalf("%s: %d rows, %v after a failed import", table, n, err)
				}
			}
			// Being empty, it can take the migration again.
			if _, err := migrate.Copy(ctx, src, dst); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}
