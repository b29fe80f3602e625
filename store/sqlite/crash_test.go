package sqlite

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

// crashHelperEnv, when set to a database path, turns the test binary into
// the writer that TestCrashSafety kills. TestMain dispatches on it so the
// helper never runs as a (trivially passing) test of its own.
const crashHelperEnv = "POLICYCA_SQLITE_CRASH_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashHelperEnv); path != "" {
		os.Exit(crashWriter(path))
	}
	os.Exit(m.Run())
}

// crashWriter issues certificates until it is killed, printing
// "committed <serial> <orderID>" only after CompleteOrder has returned.
// Eight goroutines write so that batches of several operations, each under
// its savepoint, are common when the kill lands (group commit), and so that
// it can land while operations wait for a batch's fsync.
func crashWriter(path string) int {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	acct := &core.Account{KeyThumbprint: randHex(16), Status: core.StatusValid, Provisioner: "acme"}
	if err := s.CreateAccount(ctx, acct); err != nil {
		fmt.Fprintln(os.Stderr, "create account:", err)
		return 2
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := issueOne(ctx, s, acct, &out); err != nil {
					fmt.Fprintln(os.Stderr, "issue:", err)
					os.Exit(3)
				}
			}
		}()
	}
	wg.Wait()
	return 0
}

func issueOne(ctx context.Context, s *Store, acct *core.Account, out *sync.Mutex) error {
	name := core.Identifier{Type: core.DNS, Value: randHex(6) + ".crash.internal"}
	o := &core.Order{AccountID: acct.ID, Provisioner: acct.Provisioner, Status: core.StatusPending,
		Identifiers: []core.Identifier{name}, Expires: time.Now().Add(time.Hour)}
	az := &core.Authorization{Identifier: name, Status: core.StatusPending,
		Challenges: []core.Challenge{{ID: randHex(8), Type: core.ChallengeHTTP01, Token: randHex(16), Status: core.StatusPending}}}
	if err := s.CreateOrder(ctx, o, []*core.Authorization{az}); err != nil {
		return err
	}
	o.Status, o.ProcessingSince = core.StatusProcessing, time.Now()
	if err := s.UpdateOrder(ctx, o); err != nil {
		return err
	}
	der := make([]byte, 1500) // about a real leaf's size, so commits span pages
	rand.Read(der)
	c := &core.Certificate{Serial: "1" + randHex(15), AccountID: acct.ID, OrderID: o.ID, DER: der,
		ChainPEM: der, NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour), Names: o.Identifiers}
	c.ID = randHex(16)
	o.Status, o.CertificateID, o.ProcessingSince = core.StatusValid, c.ID, time.Time{}
	if err := s.CompleteOrder(ctx, o, c); err != nil {
		return err
	}
	out.Lock()
	defer out.Unlock()
	// One write(2) per line, well under PIPE_BUF, so lines are never torn.
	_, err := fmt.Fprintf(os.Stdout, "committed %s %s\n", c.Serial, o.ID)
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestCrashSafety SIGKILLs a writer in the middle of issuing, several times
// over the same file, and checks after each crash that the database is
// intact, that every certificate reported as committed is there, and that no
// order or certificate is half-written.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	tests := []struct {
		name      string
		killAfter int // committed certificates before the kill
	}{
		{"early", 3},
		{"later", 40},
		{"again", 17},
	}
	var committed []string // serial and order ID, across all rounds
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			round := runAndKill(t, path, tc.killAfter)
			if len(round) < tc.killAfter {
				t.Fatalf("child reported %d commits before the kill, want %d", len(round), tc.killAfter)
			}
			committed = append(committed, round...)
			checkAfterCrash(t, path, committed)
		})
	}
}

// runAndKill starts the writer on path and kills it once it has reported
// killAfter commits; it returns every commit line it saw.
func runAndKill(t *testing.T, path string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start writer: %v", err)
	}
	// Never leave a writer behind if this test fails half-way. (Killing an
	// already reaped process is a harmless error.)
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var lines []string
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "committed ") {
			continue
		}
		lines = append(lines, strings.TrimPrefix(line, "committed "))
		if !killed && len(lines) >= killAfter {
			// Keep reading afterwards: lines already in the pipe were
			// committed too.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("writer exited by itself (%v) after %d commits; stderr:\n%s", err, len(lines), stderr.String())
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer ended with %v, want SIGKILL; stderr:\n%s", err, stderr.String())
	}
	return lines
}

func checkAfterCrash(t *testing.T, path string, committed []string) {
	t.Helper()
	ctx := t.Context()
	s := mustOpen(t, path)
	defer s.Close()

	var integrity string
	if err := s.w.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if integrity != "ok" {
		t.Fatalf("integrity_check = %q", integrity)
	}
	for _, line := range committed {
		serial, orderID, _ := strings.Cut(line, " ")
		c, err := s.GetCertificateBySerial(ctx, serial)
		if err != nil {
			t.Fatalf("certificate %s reported as committed: %v", serial, err)
		}
		o, err := s.GetOrder(ctx, orderID)
		if err != nil {
			t.Fatalf("order %s of certificate %s: %v", orderID, serial, err)
		}
		if o.Status != core.StatusValid || o.CertificateID != c.ID {
			t.Fatalf("order %s: status %s, certificate %q; want valid, %q", orderID, o.Status, o.CertificateID, c.ID)
		}
	}
	// Across everything written, including what the child had not yet
	// reported: a valid order always has its certificate, and a stored
	// certificate always belongs to a valid order.
	checks := []struct {
		what  string
		query string
	}{
		{"valid orders without certificate", `SELECT count(*) FROM orders o
			LEFT JOIN certificates c ON c.id = o.certificate_id WHERE o.status = 'valid' AND c.id IS NULL`},
		{"certificates of orders that are not valid", `SELECT count(*) FROM certificates c
			JOIN orders o ON o.id = c.order_id WHERE o.status != 'valid' OR o.certificate_id != c.id`},
		{"orders without their authorizations", `SELECT count(*) FROM orders o
			WHERE NOT EXISTS (SELECT 1 FROM authorizations a WHERE a.order_id = o.id)`},
	}
	for _, c := range checks {
		var n int
		if err := s.r.QueryRowContext(ctx, c.query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			t.Fatalf("%d %s", n, c.what)
		}
	}
	var valid int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE status = 'valid'`).Scan(&valid); err != nil {
		t.Fatalf("count: %v", err)
	}
	if valid < len(committed) {
		t.Fatalf("%d valid orders, %d reported committed", valid, len(committed))
	}
}
