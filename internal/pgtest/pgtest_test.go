package pgtest

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartURL(t *testing.T) {
	u := Start(t)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Scheme != "postgres" || parsed.Hostname() != "127.0.0.1" || parsed.User.Username() != "postgres" ||
		parsed.Query().Get("sslmode") != "disable" || parsed.Path == "" || parsed.Path == "/postgres" {
		t.Fatalf("unexpected URL %s", u)
	}
	conn := connect(t, u)
	var addr, db string
	if err := conn.QueryRow(t.Context(), `SELECT current_setting('listen_addresses'), current_database()`).Scan(&addr, &db); err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1" || "/"+db != parsed.Path {
		t.Fatalf("listen_addresses %q, database %q; URL %s", addr, db, u)
	}
}

// TestSharedFreshDatabases: every Shared call is a database of its own in
// one cluster.
func TestSharedFreshDatabases(t *testing.T) {
	u1, u2 := Shared(t), Shared(t)
	if u1 == u2 {
		t.Fatalf("two Shared calls returned %s", u1)
	}
	p1, _ := url.Parse(u1)
	p2, _ := url.Parse(u2)
	if p1.Host != p2.Host {
		t.Fatalf("Shared databases on two servers: %s, %s", p1.Host, p2.Host)
	}
	c1, c2 := connect(t, u1), connect(t, u2)
	if _, err := c1.Exec(t.Context(), `CREATE TABLE only_here (x int)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c2.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table created in one Shared database shows up in another")
	}
}

// TestSharedDropsDatabase: a test's database is gone after the test.
func TestSharedDropsDatabase(t *testing.T) {
	var u string
	t.Run("inner", func(t *testing.T) { u = Shared(t) })
	p, _ := url.Parse(u)
	admin := p.ResolveReference(&url.URL{Path: "/postgres", RawQuery: p.RawQuery})
	conn := connect(t, admin.String())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, p.Path[1:]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test", p.Path)
	}
}

// TestRestart: data survives Stop/StartAgain, on the same URL, and the
// server refuses connections while stopped.
func TestRestart(t *testing.T) {
	c := StartCluster(t)
	u := c.CreateDatabase(t)
	conn := connect(t, u)
	if _, err := conn.Exec(t.Context(), `CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
	if c.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := conn.Exec(t.Context(), `SELECT 1`); err == nil {
		t.Fatal("a query succeeded on a stopped server")
	}
	if conn2, err := pgx.Connect(t.Context(), u); err == nil {
		conn2.Close(t.Context())
		t.Fatal("connected to a stopped server")
	}
	c.StartAgain(t)
	if !c.Running() {
		t.Fatal("not Running after StartAgain")
	}
	var x int
	if err := connect(t, u).QueryRow(t.Context(), `SELECT x FROM kept`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("after restart: %d, %v", x, err)
	}
	c.Restart(t)
	if err := connect(t, u).QueryRow(t.Context(), `SELECT x FROM kept`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("after Restart: %d, %v", x, err)
	}
}

func TestFindBinaries(t *testing.T) {
	dir, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if !hasAll(dir, "initdb", "postgres", "pg_ctl") {
		t.Fatalf("%s lacks a server binary", dir)
	}
	if hasAll(t.TempDir(), "initdb") {
		t.Fatal("hasAll found initdb in an empty directory")
	}
}
