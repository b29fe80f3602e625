package nonce_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/postgres"
	"github.com/policyca/policyca/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// clock is a settable time source shared by the nodes of a test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newShared(t *testing.T, st nonce.SharedStore, c *clock) *nonce.Shared {
	t.Helper()
	s, err := nonce.NewShared(t.Context(), st, nonce.SharedOptions{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func issueShared(t *testing.T, s *nonce.Shared) string {
	t.Helper()
	n, err := s.Nonce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// twoNodes returns two nonce sources on separate connections to one
// database: once SQLite (two handles on one file), once PostgreSQL.
func twoNodes(t *testing.T, backend string, c *clock) (*nonce.Shared, *nonce.Shared) {
	t.Helper()
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "ca.db")
		return newShared(t, openSQLite(t, path), c), newShared(t, openSQLite(t, path), c)
	default:
		url := pgtest.Shared(t)
		var nodes [2]*nonce.Shared
		for i := range nodes {
			st, err := postgres.Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			nodes[i] = newShared(t, st, c)
		}
		return nodes[0], nodes[1]
	}
}

func TestSharedAcrossNodes(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := t.Context()
			c := newClock()
			a, b := twoNodes(t, backend, c)
			for i := range 20 {
				issuer, redeemer := a, b
				if i%2 == 1 {
					issuer, redeemer = b, a
				}
				n := issueShared(t, issuer)
				if _, err := base64.RawURLEncoding.Strict().DecodeString(n); err != nil {
					t.Fatalf("nonce %q is not base64url: %v", n, err)
				}
				if err := redeemer.Redeem(ctx, n); err != nil {
					t.Fatalf("nonce %d from the other node: %v", i, err)
				}
				wantBadNonce(t, issuer.Redeem(ctx, n))
				wantBadNonce(t, redeemer.Redeem(ctx, n))
			}
		})
	}
}

// TestSharedConcurrentRedeem: of nodes racing to redeem one nonce, exactly
// one wins.
func TestSharedConcurrentRedeem(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			c := newClock()
			a, b := twoNodes(t, backend, c)
			for range 10 {
				n := issueShared(t, a)
				var wg sync.WaitGroup
				var accepted atomic.Int32
				for i := range 8 {
					node := a
					if i%2 == 1 {
						node = b
					}
					wg.Go(func() {
						err := node.Redeem(t.Context(), n)
						if err == nil {
							accepted.Add(1)
						} else if !core.IsKind(err, core.KindBadNonce) {
							t.Errorf("Redeem: %v", err)
						}
					})
				}
				wg.Wait()
				if got := accepted.Load(); got != 1 {
					t.Fatalf("nonce accepted %d times", got)
				}
			}
		})
	}
}

func TestSharedRefuses(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	path := filepath.Join(t.TempDir(), "ca.db")
	s := newShared(t, openSQLite(t, path), c)
	// Another cluster: same format, different key.
	other := newShared(t, openSQLite(t, filepath.Join(t.TempDir(), "other.db")), c)
	mem := newMemory(t, "", 10)
	good := issueShared(t, s)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	tamper := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name, nonce string
	}{
		{"empty", ""},
		{"too short", good[:len(good)-1]},
		{"too long", good + "A"},
		{"not base64url", strings.Repeat("!", len(good))},
		{"version changed", tamper(0)},
		{"time changed", tamper(5)},
		{"random part changed", tamper(12)},
		{"mac changed", tamper(len(raw) - 1)},
		{"other cluster", issueShared(t, other)},
		{"a memory nonce", issue(t, mem)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantBadNonce(t, s.Redeem(ctx, tc.nonce)) })
	}
	if err := s.Redeem(ctx, good); err != nil {
		t.Fatalf("the refusals used up the good nonce: %v", err)
	}
}

func TestSharedAge(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	path := filepath.Join(t.TempDir(), "ca.db")
	st := openSQLite(t, path)
	s := newShared(t, st, c)

	fresh := issueShared(t, s)
	edge := issueShared(t, s)
	old := issueShared(t, s)
	c.advance(nonce.DefaultWindow - time.Second)
	if err := s.Redeem(ctx, fresh); err != nil {
		t.Fatalf("nonce inside the window: %v", err)
	}
	c.advance(time.Second)
	if err := s.Redeem(ctx, edge); err != nil {
		t.Fatalf("nonce at the edge of the window: %v", err)
	}
	c.advance(time.Millisecond)
	wantBadNonce(t, s.Redeem(ctx, old))

	// A node whose clock runs ahead issues nonces "in the future".
	ahead := newClock()
	ahead.ns.Store(c.ns.Load())
	ahead.advance(nonce.DefaultMaxSkew)
	aheadNode := newShared(t, openSQLite(t, path), ahead)
	if err := s.Redeem(ctx, issueShared(t, aheadNode)); err != nil {
		t.Fatalf("nonce from a node MaxSkew ahead: %v", err)
	}
	ahead.advance(time.Second)
	wantBadNonce(t, s.Redeem(ctx, issueShared(t, aheadNode)))
}

func TestSharedPrune(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	s := newShared(t, openSQLite(t, filepath.Join(t.TempDir(), "ca.db")), c)
	for range 5 {
		if err := s.Redeem(ctx, issueShared(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(30 * time.Minute)
	kept := issueShared(t, s)
	if err := s.Redeem(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("Prune inside the window: %d, %v; want 0", n, err)
	}
	c.advance(nonce.DefaultWindow - 30*time.Minute + nonce.DefaultMaxSkew + time.Millisecond)
	if n, err := s.Prune(ctx); err != nil || n != 5 {
		t.Fatalf("Prune: %d, %v; want the 5 expired records", n, err)
	}
	// The record of the newer nonce is still there: a replay is refused
	// by the store, not only by age.
	wantBadNonce(t, s.Redeem(ctx, kept))
}

// downStore fails every call the way a backend does when the database is
// unreachable.
type downStore struct{ key []byte }

var errDown = errors.Join(store.ErrUnavailable, errors.New("connection refused"))

func (d *downStore) ClusterSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if d.key == nil {
		return nil, errDown
	}
	return d.key, nil
}
func (d *downStore) RedeemNonce(context.Context, string, time.Time) error { return errDown }
func (d *downStore) PruneNonces(context.Context, time.Time) (int64, error) {
	return 0, errDown
}

func TestSharedDatabaseDown(t *testing.T) {
	if _, err := nonce.NewShared(t.Context(), &downStore{}, nonce.SharedOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("NewShared without a database: %v, want ErrUnavailable", err)
	}
	s, err := nonce.NewShared(t.Context(), &downStore{key: make([]byte, 32)}, nonce.SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Issuing needs no database.
	n := issueShared(t, s)
	err = s.Redeem(t.Context(), n)
	var e *core.Error
	if !errors.As(err, &e) || e.Kind != core.KindServerInternal || e.RetryAfter < 1 || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Redeem with the database down: %#v, want serverInternal with Retry-After wrapping ErrUnavailable", err)
	}
}

func BenchmarkSharedNonce(b *testing.B) {
	st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "ca.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := nonce.NewShared(b.Context(), st, nonce.SharedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Nonce(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
