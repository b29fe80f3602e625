package sqlite

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/policyca/policyca/store"
)

// TestMapErr drives real constraint failures through mapErr, including the
// ones the store's own pre-checks normally prevent from reaching it.
func TestMapErr(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	setup := []string{
		`INSERT INTO accounts VALUES ('a1', 'p', 'tp1', x'00', '[]', 'valid', 1, '', 0, 1)`,
		`INSERT INTO certificates VALUES ('c1', 'ab', 'a1', '', 'p', x'00', x'00', NULL, NULL, '[]', NULL, 0, '', '', 0)`,
	}
	for _, q := range setup {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tests := []struct {
		name  string
		query string
		want  error // nil: none of the sentinels
	}{
		{"duplicate serial", `INSERT INTO certificates VALUES ('c2', 'ab', 'a1', '', 'p', x'00', x'00', NULL, NULL, '[]', NULL, 0, '', '', 0)`, store.ErrDuplicateSerial},
		{"duplicate certificate id", `INSERT INTO certificates VALUES ('c1', 'cd', 'a1', '', 'p', x'00', x'00', NULL, NULL, '[]', NULL, 0, '', '', 0)`, store.ErrConflict},
		{"duplicate thumbprint", `INSERT INTO accounts VALUES ('a2', 'p', 'tp1', x'00', '[]', 'valid', 1, '', 0, 1)`, store.ErrConflict},
		{"missing account", `INSERT INTO orders (id, account_id, provisioner, status, identifiers, authz_ids, certificate_id, created_at, version)
			VALUES ('o1', 'nobody', 'p', 'pending', '[]', '[]', '', 0, 1)`, store.ErrNotFound},
		{"not null", `INSERT INTO accounts (id) VALUES ('a3')`, nil},
		{"syntax", `INSERT INTO nowhere VALUES (1)`, nil},
	}
	sentinels := []error{store.ErrNotFound, store.ErrConflict, store.ErrDuplicateSerial, store.ErrAlreadyRevoked}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, raw := s.w.ExecContext(ctx, tc.query)
			if raw == nil {
				t.Fatal("statement succeeded")
			}
			err := mapErr(raw)
			for _, sentinel := range sentinels {
				if errors.Is(err, sentinel) != (sentinel == tc.want) {
					t.Fatalf("mapErr(%v) = %v, want %v", raw, err, tc.want)
				}
			}
		})
	}
	if err := mapErr(sql.ErrNoRows); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mapErr(ErrNoRows) = %v", err)
	}
	if err := mapErr(nil); err != nil {
		t.Fatalf("mapErr(nil) = %v", err)
	}
}
