package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// open opens a store on url, closed when the test ends.
func open(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := Open(t.Context(), pgtest.Shared(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestConcurrentMigration: nodes starting together on an empty database
// all succeed, and the schema is created once.
func TestConcurrentMigration(t *testing.T) {
	const nodes = 4
	url := pgtest.Shared(t)
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	var versions, max int
	err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&versions, &max)
	if err != nil {
		t.Fatal(err)
	}
	if versions != SchemaVersion || max != SchemaVersion {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d", versions, max, SchemaVersion)
	}
	// Each node sees the others' writes at once.
	a := testAccount("migration")
	if err := stores[1].CreateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if _, err := s.GetAccountByThumbprint(t.Context(), a.KeyThumbprint); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	// Opening a current database again changes nothing.
	open(t, url)
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != SchemaVersion {
		t.Fatalf("after reopening: %d migrations, %v", versions, err)
	}
}

// TestNewerSchemaRefused: a database migrated by a newer policyca is not
// touched.
func TestNewerSchemaRefused(t *testing.T) {
	url := pgtest.Shared(t)
	s := open(t, url)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations VALUES ($1, now())`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.Context(), url)
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a newer schema")
	}
	if errors.Is(err, ErrUnavailable) {
		t.Fatalf("a newer schema reported as unavailable: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts []Option
		// unavailable: the error must wrap ErrUnavailable.
		unavailable bool
	}{
		{"bad URL", "postgres://[::1", nil, false},
		{"negative pool size", "postgres://127.0.0.1/x", []Option{WithMaxConns(-1)}, false},
		{"zero health check period", "postgres://127.0.0.1/x", []Option{WithHealthCheckPeriod(0)}, false},
		// Port 1 on loopback: nothing listens there, so the dial is refused.
		{"nothing listening", "postgres://postgres@127.0.0.1:1/x?sslmode=disable", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.url, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, ErrUnavailable) != tc.unavailable {
				t.Fatalf("error %v: unavailable = %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
		})
	}
}

func testAccount(name string) *core.Account {
	return &core.Account{
		Provisioner:   "acme",
		KeyThumbprint: "thumb-" + name + "-" + core.NewID(),
		KeyJWK:        []byte(`{"kty":"EC"}`),
		Status:        core.StatusValid,
		TermsAgreed:   true,
	}
}

func testOrder(acct *core.Account, names ...string) (*core.Order, []*core.Authorization) {
	o := &core.Order{
		AccountID:   acct.ID,
		Provisioner: acct.Provisioner,
		Status:      core.StatusPending,
		Expires:     time.Now().Add(time.Hour),
	}
	var authzs []*core.Authorization
	for _, n := range names {
		id := core.Identifier{Type: core.DNS, Value: n}
		o.Identifiers = append(o.Identifiers, id)
		authzs = append(authzs, &core.Authorization{
			Identifier: id,
			Status:     core.StatusPending,
			Expires:    time.Now().Add(time.Hour),
			Challenges: []core.Challenge{{ID: core.NewID(), Type: core.ChallengeHTTP01, Token: core.NewID(), Status: core.StatusPending}},
		})
	}
	return o, authzs
}

func mustOrder(t testing.TB, s *Store, acct *core.Account, names ...string) *core.Order {
	t.Helper()
	o, authzs := testOrder(acct, names...)
	if err := s.CreateOrder(context.Background(), o, authzs); err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return o
}

func mustAccount(t testing.TB, s *Store, name string) *core.Account {
	t.Helper()
	a := testAccount(name)
	if err := s.CreateAccount(context.Background(), a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

// TestTwoNodesUpdateOrder: writers on two stores (two nodes) sharing one
// database do read-modify-write on one order; every version is won by
// exactly one writer and no update is lost.
func TestTwoNodesUpdateOrder(t *testing.T) {
	const workers, perWorker = 20, 3
	url := pgtest.Shared(t)
	nodes := []*Store{open(t, url), open(t, url)}
	ctx := t.Context()
	acct := mustAccount(t, nodes[0], "contention")
	o := mustOrder(t, nodes[1], acct, "a.example.internal")

	var (
		mu      sync.Mutex
		winners = map[int64]string{} // version written from -> writer
		wg      sync.WaitGroup
		errs    = make(chan error, workers)
	)
	for w := range workers {
		s := nodes[w%2]
		wg.Go(func() {
			for k := 0; k < perWorker; {
				cur, err := s.GetOrder(ctx, o.ID)
				if err != nil {
					errs <- fmt.Errorf("worker %d: GetOrder: %w", w, err)
					return
				}
				from := cur.Version
				name := fmt.Sprintf("w%d-%d.example.internal", w, k)
				cur.Identifiers = append(cur.Identifiers, core.Identifier{Type: core.DNS, Value: name})
				err = s.UpdateOrder(ctx, cur)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d: UpdateOrder: %w", w, err)
					return
				}
				mu.Lock()
				prev, dup := winners[from]
				winners[from] = name
				mu.Unlock()
				if dup {
					errs <- fmt.Errorf("version %d won by both %s and %s", from, prev, name)
					return
				}
				k++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	got, err := nodes[0].GetOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	total := workers * perWorker
	if got.Version != int64(total+1) || len(winners) != total || len(got.Identifiers) != total+1 {
		t.Fatalf("final Version %d, %d winners, %d identifiers; want %d, %d, %d",
			got.Version, len(winners), len(got.Identifiers), total+1, total, total+1)
	}
	stored := map[string]bool{}
	for _, id := range got.Identifiers {
		stored[id.Value] = true
	}
	for v, name := range winners {
		if !stored[name] {
			t.Fatalf("the update from version %d (%s) was lost", v, name)
		}
	}
}

// TestTwoNodesCompleteOrder: finalizers racing on one order through two
// nodes store exactly one certificate.
func TestTwoNodesCompleteOrder(t *testing.T) {
	const workers = 10
	url := pgtest.Shared(t)
	nodes := []*Store{open(t, url), open(t, url)}
	ctx := t.Context()
	acct := mustAccount(t, nodes[0], "finalize")
	o := mustOrder(t, nodes[0], acct, "a.example.internal")

	certs := make([]*core.Certificate, workers)
	results := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		mine := *o
		c := &core.Certificate{Serial: fmt.Sprintf("7%x", w+1) + core.NewID()[core.IDLen-8:], AccountID: o.AccountID, OrderID: o.ID,
			DER: []byte{0x30}, Names: o.Identifiers, NotAfter: time.Now().Add(time.Hour)}
		c.ID = core.NewID()
		mine.Status, mine.CertificateID = core.StatusValid, c.ID
		certs[w] = c
		s := nodes[w%2]
		wg.Go(func() { results[w] = s.CompleteOrder(ctx, &mine, c) })
	}
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("workers %d and %d both completed the order", winner, w)
			}
			winner = w
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("worker %d: %v, want nil or ErrConflict", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no worker completed the order")
	}
	var n int
	if err := nodes[1].pool.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE order_id = $1`, o.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d certificates stored for one order", n)
	}
	got, err := nodes[1].GetOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CertificateID != certs[winner].ID || got.Status != core.StatusValid {
		t.Fatalf("order is %s with certificate %q; the winner stored %q", got.Status, got.CertificateID, certs[winner].ID)
	}
}
