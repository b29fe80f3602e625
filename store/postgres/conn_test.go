package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/store"
)

// outageBound is how long the tests let a call take while the database is
// down. It is the callers' context deadline, far above the store's own
// timeout: a call that fails because of it (rather than with
// ErrUnavailable, from the store) did not fail promptly.
const outageBound = 60 * time.Second

// TestConnectionLoss: with the server down every call fails with
// ErrUnavailable before the caller's deadline, a write attempted then
// leaves nothing behind, and the same Store works again once the server is
// back, without being reopened.
func TestConnectionLoss(t *testing.T) {
	c := pgtest.StartCluster(t)
	s := open(t, c.CreateDatabase(t), WithTimeout(5*time.Second))
	acct := mustAccount(t, s, "outage")
	before := mustOrder(t, s, acct, "before.example.internal")

	c.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), outageBound)
	defer cancel()
	lost, authzs := testOrder(acct, "lost.example.internal")
	lost.ID = "order-during-outage"
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"GetAccount", func() error { _, err := s.GetAccount(ctx, acct.ID); return err }},
		{"GetOrder", func() error { _, err := s.GetOrder(ctx, before.ID); return err }},
		{"CreateOrder", func() error { return s.CreateOrder(ctx, lost, authzs) }},
		{"UpdateOrder", func() error { o := *before; o.Status = core.StatusReady; return s.UpdateOrder(ctx, &o) }},
	}
	for _, tc := range calls {
		err := tc.call()
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("%s with the database down: %v (caller's context: %v), want ErrUnavailable", tc.name, err, ctx.Err())
		}
	}
	if lost.Version != 0 {
		t.Fatal("a failed CreateOrder changed the caller's order")
	}

	c.StartAgain(t)
	waitAvailable(t, s)
	got, err := s.GetOrder(t.Context(), before.ID)
	if err != nil || got.Version != 1 || got.Status != core.StatusPending {
		t.Fatalf("order written before the outage: %+v, %v", got, err)
	}
	if _, err := s.GetOrder(t.Context(), lost.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("order written during the outage: %v, want ErrNotFound", err)
	}
	if err := s.CreateOrder(t.Context(), lost, authzs); err != nil {
		t.Fatalf("CreateOrder after the outage: %v", err)
	}
	got.Status = core.StatusReady
	if err := s.UpdateOrder(t.Context(), got); err != nil {
		t.Fatalf("UpdateOrder after the outage: %v", err)
	}
}

// waitAvailable waits until s answers again: the first calls after a
// restart may still meet connections the pool has not yet found dead, and
// the server may still be recovering.
func waitAvailable(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), outageBound)
	defer cancel()
	for {
		err := s.Ping(ctx)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Ping after restart: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the store did not recover within %v: %v", outageBound, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestConnectionKilledMidTransaction: a connection that dies inside a
// multi-statement write (here: terminated by the server while blocked on a
// lock between its statements) leaves nothing half-written, the error says
// ErrUnavailable, and the store carries on.
func TestConnectionKilledMidTransaction(t *testing.T) {
	tests := []struct {
		name string
		// lock is the table the write blocks on after its first statement.
		lock  string
		write func(ctx context.Context, s *Store, acct *core.Account, o *core.Order) error
		check func(t *testing.T, s *Store, acct *core.Account, o *core.Order)
	}{
		{
			name: "CreateOrder",
			lock: "authorizations",
			write: func(ctx context.Context, s *Store, acct *core.Account, _ *core.Order) error {
				o, authzs := testOrder(acct, "x.example.internal")
				o.ID = "half-written"
				return s.CreateOrder(ctx, o, authzs)
			},
			check: func(t *testing.T, s *Store, _ *core.Account, _ *core.Order) {
				if _, err := s.GetOrder(t.Context(), "half-written"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetOrder of the interrupted order: %v, want ErrNotFound", err)
				}
			},
		},
		{
			name: "CompleteOrder",
			lock: "certificates",
			write: func(ctx context.Context, s *Store, _ *core.Account, o *core.Order) error {
				c := &core.Certificate{ID: "interrupted", Serial: "7abc", OrderID: o.ID, DER: []byte{0x30}}
				mine := *o
				mine.Status, mine.CertificateID = core.StatusValid, c.ID
				return s.CompleteOrder(ctx, &mine, c)
			},
			check: func(t *testing.T, s *Store, _ *core.Account, o *core.Order) {
				got, err := s.GetOrder(t.Context(), o.ID)
				if err != nil || got.Version != o.Version || got.Status != o.Status || got.CertificateID != "" {
					t.Fatalf("order after the interrupted CompleteOrder: %+v, %v", got, err)
				}
				if _, err := s.GetCertificate(t.Context(), "interrupted"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetCertificate: %v, want ErrNotFound", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.Shared(t)
			s := open(t, url)
			acct := mustAccount(t, s, "killed")
			o := mustOrder(t, s, acct, "a.example.internal")
			unlock := lockTable(t, url, tc.lock)

			done := make(chan error, 1)
			go func() { done <- tc.write(t.Context(), s, acct, o) }()
			// Find the write's backend waiting for our lock, and kill it.
			killer, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer killer.Close(context.Background())
			for {
				var killed bool
				err := killer.QueryRow(t.Context(), `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false)
					FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&killed)
				if err != nil {
					t.Fatal(err)
				}
				if killed {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("the write finished while the table was locked: %v", err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			if err := <-done; !errors.Is(err, ErrUnavailable) {
				t.Fatalf("interrupted %s: %v, want ErrUnavailable", tc.name, err)
			}
			unlock()
			tc.check(t, s, acct, o)
		})
	}
}

// The revocation check by authorizations is bounded by the store's own
// timeout like every other call: against a locked table it fails with
// ErrUnavailable (so a client is told to retry), not with the caller's
// deadline.
func TestHoldsValidAuthorizationIsBounded(t *testing.T) {
	url := pgtest.Shared(t)
	s := open(t, url, WithTimeout(200*time.Millisecond))
	acct := mustAccount(t, s, "bounded")
	lockTable(t, url, "authorizations")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := s.HoldsValidAuthorization(ctx, acct.ID, core.Identifier{Type: core.DNS, Value: "a.example.internal"}, false, time.Now())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("HoldsValidAuthorization against a locked table: %v, want ErrUnavailable", err)
	}
}

// lockTable holds an exclusive lock on table, from another connection,
// until unlock is called or the test ends.
func lockTable(t *testing.T, url, table string) (unlock func()) {
	t.Helper()
	admin, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	locker, err := admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Exec(t.Context(), "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := locker.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
