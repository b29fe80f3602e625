// Package testutil holds the small helpers that the test suites of several
// packages share (server, ra, e2e, bench): loopback ports, a logger writing
// to the test log, and a lego account holder. It is for tests only.
package testutil

import (
	"crypto"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/registration"
)

// FreePort returns a loopback TCP port that was free a moment ago. Whoever
// binds it later may, rarely, find it taken; passing listeners around is
// the alternative where a test can.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger sends a component's logs, debug level and up, to the test log
// (shown on failure or with -v).
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LegoUser is the account holder lego's client needs.
type LegoUser struct {
	Key crypto.PrivateKey
	Reg *registration.Resource
}

func (u *LegoUser) GetEmail() string                        { return "" }
func (u *LegoUser) GetRegistration() *registration.Resource { return u.Reg }
func (u *LegoUser) GetPrivateKey() crypto.PrivateKey        { return u.Key }
