package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

func appliedVersions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("scan: %v", err)
		}
		vs = append(vs, v)
	}
	return vs
}

func checkAllMigrations(t *testing.T, db *sql.DB) {
	t.Helper()
	vs := appliedVersions(t, db)
	if len(vs) != SchemaVersion {
		t.Fatalf("applied migrations %v, want 1..%d", vs, SchemaVersion)
	}
	for i, v := range vs {
		if v != i+1 {
			t.Fatalf("applied migrations %v, want 1..%d", vs, SchemaVersion)
		}
	}
}

func TestOpenTwice(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	s1, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	a := &core.Account{KeyThumbprint: "tp", Status: core.StatusValid}
	if err := s1.CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	// A second store on the same file while the first is open (the CLI
	// next to a running CA), then again after both are closed.
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := s2.GetAccount(ctx, a.ID); err != nil {
		t.Fatalf("GetAccount through second store: %v", err)
	}
	checkAllMigrations(t, s2.w)
	if err := errors.Join(s1.Close(), s2.Close()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s3, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("third Open: %v", err)
	}
	defer s3.Close()
	checkAllMigrations(t, s3.w)
	if _, err := s3.GetAccount(ctx, a.ID); err != nil {
		t.Fatalf("GetAccount after reopen: %v", err)
	}
}

// TestOpenConcurrently: processes starting together on a new file must not
// apply a migration twice or fail on the lock.
func TestOpenConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(t.Context(), path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	checkAllMigrations(t, stores[0].w)
}

// TestMigrateFromV1: a database created by the first schema, with data,
// is upgraded on Open and its data stays readable.
func TestMigrateFromV1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		t.Fatalf("open raw: %v", err)
	}
	if err := migrate(ctx, raw, 1); err != nil {
		t.Fatalf("migrate to 1: %v", err)
	}
	created := time.Date(2024, 5, 6, 7, 8, 9, 123000, time.UTC)
	stmts := []string{
		`INSERT INTO accounts VALUES ('acct1', 'acme', 'tp1', x'7b7d', '["mailto:a@b.internal"]', 'valid', 1, '', ` +
			itoa(created.UnixMicro()) + `, 3)`,
		`INSERT INTO orders (id, account_id, provisioner, status, identifiers, authz_ids, certificate_id,
			processing_since, created_at, version) VALUES ('ord1', 'acct1', 'acme', 'processing',
			'[{"type":"dns","value":"a.internal"}]', '[]', '', ` + itoa(created.UnixMicro()) + `, ` + itoa(created.UnixMicro()) + `, 2)`,
	}
	for _, q := range stmts {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if vs := appliedVersions(t, raw); len(vs) != 1 {
		t.Fatalf("old database has migrations %v, want [1]", vs)
	}
	raw.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open old database: %v", err)
	}
	defer s.Close()
	checkAllMigrations(t, s.w)
	a, err := s.GetAccount(ctx, "acct1")
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	if a.Version != 3 || !a.TermsAgreed || len(a.Contact) != 1 || !a.CreatedAt.Equal(created) {
		t.Fatalf("migrated account = %+v", a)
	}
	stale, err := s.ListStaleProcessingOrders(ctx, created.Add(time.Hour))
	if err != nil {
		t.Fatalf("ListStaleProcessingOrders: %v", err)
	}
	if len(stale) != 1 || stale[0].ID != "ord1" || stale[0].Identifiers[0].Value != "a.internal" {
		t.Fatalf("stale orders after migration = %+v", stale)
	}
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index'
		AND name IN ('orders_processing', 'certificates_order', 'certificates_revoked')`).Scan(&n); err != nil {
		t.Fatalf("read indexes: %v", err)
	}
	if n != 3 {
		t.Fatalf("migration 2 created %d of 3 indexes", n)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	s := mustOpen(t, path)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, 0)`, SchemaVersion+1); err != nil {
		t.Fatalf("insert: %v", err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer version")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open: %v, want an error about the newer schema", err)
	}
}

func mustOpen(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts []Option
	}{
		{"empty path", "", nil},
		{"memory", ":memory:", nil},
		{"uri", "file:" + filepath.Join(dir, "x"), nil},
		{"query in path", filepath.Join(dir, "x?mode=ro"), nil},
		{"unknown sync mode", filepath.Join(dir, "x"), []Option{WithSynchronous("OFF")}},
		{"no readers", filepath.Join(dir, "x"), []Option{WithReadConns(0)}},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "x"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
		})
	}
}

// TestPragmas checks the settings the durability and concurrency argument
// in doc.go rests on.
func TestPragmas(t *testing.T) {
	tests := []struct {
		name     string
		opts     []Option
		wantSync int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{"default", nil, 2},
		{"normal", []Option{WithSynchronous(SyncNormal)}, 1},
		{"full", []Option{WithSynchronous(SyncFull), WithReadConns(2), WithBusyTimeout(time.Second)}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := openTemp(t, tc.opts...)
			defer s.Close()
			checks := []struct {
				db    *sql.DB
				query string
				want  string
			}{
				{s.w, "PRAGMA journal_mode", "wal"},
				{s.w, "PRAGMA foreign_keys", "1"},
				{s.w, "PRAGMA synchronous", itoa(int64(tc.wantSync))},
				{s.r, "PRAGMA query_only", "1"},
			}
			for _, c := range checks {
				var got string
				if err := c.db.QueryRowContext(ctx, c.query).Scan(&got); err != nil {
					t.Fatalf("%s: %v", c.query, err)
				}
				if !strings.EqualFold(got, c.want) {
					t.Fatalf("%s = %q, want %q", c.query, got, c.want)
				}
			}
			if _, err := s.r.ExecContext(ctx, `DELETE FROM accounts`); err == nil {
				t.Fatal("a read connection accepted a write")
			}
		})
	}
}

func TestPingAfterClose(t *testing.T) {
	s := openTemp(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded on a closed store")
	}
}

// TestCancelledContext: a cancelled request must fail without leaving the
// writer connection inside a transaction.
func TestCancelledContext(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a := &core.Account{KeyThumbprint: "tp", Status: core.StatusValid}
	if err := s.CreateAccount(ctx, a); err == nil {
		t.Fatal("CreateAccount succeeded with a cancelled context")
	}
	o := &core.Order{AccountID: "x", Status: core.StatusPending}
	if err := s.CreateOrder(ctx, o, nil); err == nil {
		t.Fatal("CreateOrder succeeded with a cancelled context")
	}
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount after a cancelled request: %v", err)
	}
	if _, err := s.GetAccount(t.Context(), a.ID); err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	if _, err := s.GetAccount(ctx, a.ID); errors.Is(err, store.ErrNotFound) || err == nil {
		t.Fatalf("GetAccount with a cancelled context: %v, want a context error", err)
	}
}

// A new database, and its WAL and shared-memory files, are readable by
// their owner only: the database holds EAB HMAC keys and the nodes' shared
// secrets, and may live outside policyca's 0700 state directory.
func TestNewDatabaseIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write, so that the WAL and its index exist.
	if err := s.CreateAccount(t.Context(), &core.Account{ID: "a", Provisioner: "acme", KeyThumbprint: "tp",
		KeyJWK: []byte("{}"), Status: core.StatusValid}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", filepath.Base(f), perm)
		}
	}
}
