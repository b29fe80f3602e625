package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/policyca/policyca/bench"
	"github.com/policyca/policyca/internal/testutil"
)

// kill -9 of the CA in the middle of a burst of issuances: after a restart
// no order is in an impossible state, every certificate a client received
// is in the database, and issuance works again.
func TestKillDuringIssuance(t *testing.T) {
	t.Parallel()
	bin := policycaBinary(t)
	state := filepath.Join(t.TempDir(), "state")
	listen := listenAddr(testutil.FreePort(t))
	http01 := testutil.FreePort(t)
	res := runInit(t, bin, state, listen, "--http01-port", strconv.Itoa(http01))
	// Orders left in processing by the crash are declared lost after 1s
	// (default 5m) so that the restart below recovers them at once.
	setConfig(t, res.Config, "stale_processing", "1s")

	roots, _ := rootPool(t, res.Root)
	ca := startCA(t, bin, state)
	waitHealthy(t, ca, httpsClient(roots), listen)

	var done atomic.Bool
	type outcome struct {
		r   *bench.ACMEResult
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		r, err := bench.Run(context.Background(), bench.ACMEOptions{
			DirectoryURL: res.DirectoryURL, Roots: roots, N: 400, Concurrency: 8,
			Accounts: bench.AccountsPerOrder, Identifier: "crash-{n}.localhost",
			HTTP01Port: http01, Timeout: 20 * time.Second,
		})
		done.Store(true)
		ch <- outcome{r, err}
	}()
	// Let some issuances complete and others be in flight, then kill.
	db := openDB(t, state)
	deadline := time.Now().Add(60 * time.Second)
	for countRows(t, db, "certificates") < 10 {
		if time.Now().After(deadline) || done.Load() {
			t.Fatal("no issuance under way to interrupt")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ca.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ca.done
	out := <-ch
	if out.err != nil {
		t.Fatal(out.err)
	}
	if out.r.Succeeded == 0 || out.r.Succeeded == out.r.Requested {
		t.Fatalf("the kill did not land mid-burst: %d of %d succeeded", out.r.Succeeded, out.r.Requested)
	}
	time.Sleep(1100 * time.Millisecond) // past stale_processing

	// Restart: the recovery sweep runs before serving.
	ca2 := startCA(t, bin, state)
	waitHealthy(t, ca2, httpsClient(roots), listen)

	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q %v", integrity, err)
	}
	// Every certificate a client received is stored.
	for _, s := range out.r.Serials {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM certificates WHERE serial = ?", s).Scan(&n); err != nil || n != 1 {
			t.Errorf("certificate %s handed out but not stored (%d, %v)", s, n, err)
		}
	}
	// Every order is in a legal state: nothing left processing, and a
	// valid order has its certificate.
	rows, err := db.Query("SELECT id, status, certificate_id FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	states := map[string]int{}
	for rows.Next() {
		var id, status, certID string
		if err := rows.Scan(&id, &status, &certID); err != nil {
			t.Fatal(err)
		}
		states[status]++
		switch status {
		case "pending", "ready", "invalid":
		case "valid":
			var n int
			if err := db.QueryRow("SELECT count(*) FROM certificates WHERE id = ? AND order_id = ?", certID, id).Scan(&n); err != nil || n != 1 {
				t.Errorf("valid order %s without its certificate %s", id, certID)
			}
		default:
			t.Errorf("order %s left %q after the restart", id, status)
		}
	}
	t.Logf("orders after the crash and restart: %v; %d certificates handed out", states, len(out.r.Serials))

	// And the CA issues again.
	r, err := bench.Run(context.Background(), bench.ACMEOptions{
		DirectoryURL: res.DirectoryURL, Roots: roots, N: 3, Concurrency: 1,
		Accounts: bench.AccountsOne, Identifier: "after-{n}.localhost", HTTP01Port: http01, Timeout: 60 * time.Second,
	})
	if err != nil || r.Succeeded != 3 {
		t.Fatalf("issuance after the restart: %+v %v", r, err)
	}
}

func openDB(t *testing.T, state string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(state, "db", "policyca.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		return 0 // the table may not be there yet
	}
	return n
}

// setConfig sets one top-level field of a configuration file.
func setConfig(t *testing.T, path, field string, value any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc[field] = value
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
