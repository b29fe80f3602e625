package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/store"
)

func TestMapErr(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	timedOut, cancel2 := context.WithTimeoutCause(live, time.Nanosecond, errOpTimeout)
	defer cancel2()
	<-timedOut.Done()
	pg := func(code, constraint string) error {
		return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, ConstraintName: constraint})
	}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: none of the sentinels
	}{
		{"no rows", live, pgx.ErrNoRows, store.ErrNotFound},
		{"duplicate serial", live, pg("23505", serialConstraint), store.ErrDuplicateSerial},
		{"duplicate thumbprint", live, pg("23505", "accounts_key_thumbprint"), store.ErrConflict},
		{"missing account", live, pg("23503", "orders_account_id_fkey"), store.ErrNotFound},
		{"deadlock", live, pg("40P01", ""), store.ErrConflict},
		{"admin shutdown", live, pg("57P01", ""), ErrUnavailable},
		{"starting up", live, pg("57P03", ""), ErrUnavailable},
		{"too many connections", live, pg("53300", ""), ErrUnavailable},
		{"connection failure", live, pg("08006", ""), ErrUnavailable},
		{"standby", live, pg("25006", ""), ErrUnavailable},
		{"syntax error", live, pg("42601", ""), nil},
		{"bad text", live, pg("22021", ""), nil},
		{"connection closed", live, fmt.Errorf("query: %w", pgconn.ErrConnClosed), ErrUnavailable},
		{"unexpected EOF", live, io.ErrUnexpectedEOF, ErrUnavailable},
		{"store timeout", timedOut, context.DeadlineExceeded, ErrUnavailable},
		// The caller giving up says nothing about the database.
		{"caller cancelled", cancelled, pgconn.ErrConnClosed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mapErr(tc.ctx, tc.err)
			if !errors.Is(got, tc.err) && tc.err != pgx.ErrNoRows {
				t.Fatalf("mapErr(%v) = %v, which lost the original error", tc.err, got)
			}
			for _, s := range []error{store.ErrNotFound, store.ErrConflict, store.ErrDuplicateSerial, ErrUnavailable} {
				if errors.Is(got, s) != (s == tc.want) {
					t.Fatalf("mapErr(%v) = %v; errors.Is(%v) = %v", tc.err, got, s, !(s == tc.want))
				}
			}
		})
	}
	if mapErr(live, nil) != nil {
		t.Fatal("mapErr(nil) != nil")
	}
}

// TestMapErrRealConnectError: a refused connection, as pgx reports it.
func TestMapErrRealConnectError(t *testing.T) {
	ctx := t.Context()
	_, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("connected to port 1")
	}
	if got := mapErr(ctx, err); !errors.Is(got, ErrUnavailable) {
		t.Fatalf("mapErr(%v) = %v, want ErrUnavailable", err, got)
	}
}

func TestReplaceNULEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain"`, `"plain"`},
		{`"a\u0000b"`, `"a\ufffdb"`},
		{`"\u0000\u0000"`, `"\ufffd\ufffd"`},
		{`"\\u0000"`, `"\\u0000"`},               // an escaped backslash, then text
		{`"\\\u0000"`, `"\\\ufffd"`},             // an escaped backslash, then a NUL
		{`"\u00001"`, `"\ufffd1"`},               // digits after the escape stay
		{`{"a":"\"\u0000"}`, `{"a":"\"\ufffd"}`}, // after an escaped quote
		{`"\u0001\u0000"`, `"\u0001\ufffd"`},     // other control characters stay
		{`"x\u000"`, `"x\u000"`},                 // truncated: not ours to fix
	}
	for _, tc := range tests {
		if got := string(replaceNULEscapes([]byte(tc.in))); got != tc.want {
			t.Errorf("replaceNULEscapes(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestAwkwardText: values PostgreSQL's text and jsonb types cannot hold as
// such are either stored (JSON: NUL replaced) or looked up as not found,
// never a database error.
func TestAwkwardText(t *testing.T) {
	s := open(t, pgtest.Shared(t))
	ctx := t.Context()
	acct := mustAccount(t, s, "awkward")
	o := mustOrder(t, s, acct, "a.example.internal")
	o.Status = core.StatusInvalid
	o.Error = &core.Error{Kind: core.KindIncorrectResponse, Detail: "got \x00 and \xff and \\u0000"}
	if err := s.UpdateOrder(ctx, o); err != nil {
		t.Fatalf("UpdateOrder with a NUL in the problem: %v", err)
	}
	got, err := s.GetOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got \ufffd and \ufffd and \\u0000"; got.Error.Detail != want {
		t.Fatalf("stored detail %q, want %q", got.Error.Detail, want)
	}
	for _, key := range []string{"a\x00b", "\xff\xfe"} {
		if _, err := s.GetAccount(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAccount(%q): %v", key, err)
		}
		if _, err := s.GetOrder(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetOrder(%q): %v", key, err)
		}
		if _, err := s.GetAuthorizations(ctx, []string{key}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAuthorizations(%q): %v", key, err)
		}
		if _, err := s.GetCertificateBySerial(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetCertificateBySerial(%q): %v", key, err)
		}
		if err := s.RevokeCertificate(ctx, key, 0, time.Time{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeCertificate(%q): %v", key, err)
		}
		if _, _, err := s.ListOrderIDs(ctx, acct.ID, key, 10, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ListOrderIDs cursor %q: %v", key, err)
		}
	}
}

func TestChallengeTimesRoundTrip(t *testing.T) {
	in := []core.Challenge{
		{ID: "a", Type: core.ChallengeDNS01, Token: "t", Status: core.StatusValid,
			Validated: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))},
		{ID: "b", Type: core.ChallengeHTTP01, Token: "u", Status: core.StatusPending},
	}
	b, err := challengesJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw[0]["validated"] != "2030-01-02T02:04:05.123456Z" || raw[1]["validated"] != nil {
		t.Fatalf("stored challenges %s", b)
	}
	out, err := challengesFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := in[0].Validated.UTC().Truncate(time.Microsecond); out[0].Validated != want || !out[1].Validated.IsZero() {
		t.Fatalf("read back %v, %v", out[0].Validated, out[1].Validated)
	}
}
