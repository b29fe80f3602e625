package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// The registry of registration authorities. These are rare operator and
// enrolment writes, so the statements are not prepared at Open.

const (
	raCols      = `name, provisioners, disabled_at, enrolled_at, cert_serial, cert_not_after, created_at, version`
	raTokenCols = `id, ra_name, provisioners, secret_hash, created_at, expires_at, used_at`
)

// CreateRAToken inserts t. An empty ID and a zero CreatedAt are filled in.
func (s *Store) CreateRAToken(ctx context.Context, t *core.RAToken) error {
	tc := *t
	if tc.ID == "" {
		tc.ID = core.NewID()
	}
	tc.CreatedAt = nowOr(tc.CreatedAt)
	provs, err := jsonText(orEmpty(tc.Provisioners))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO ra_tokens (`+raTokenCols+`) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
			tc.ID, tc.RAName, provs, orEmpty(tc.SecretHash), toMicros(tc.CreatedAt), toMicros(tc.ExpiresAt))
		return mapErr(err)
	})
	if err != nil {
		return err
	}
	tc.UsedAt = time.Time{}
	*t = tc
	return nil
}

// GetRAToken returns the token with the given ID.
func (s *Store) GetRAToken(ctx context.Context, id string) (*core.RAToken, error) {
	return scanRAToken(s.r.QueryRowContext(ctx, `SELECT `+raTokenCols+` FROM ra_tokens WHERE id = ?`, id))
}

// EnrolRA redeems the token and creates or updates its RA in one
// transaction (the writer's), so that a token enrols at most once.
func (s *Store) EnrolRA(ctx context.Context, id string, secretHash []byte, now time.Time, ra *core.RA) error {
	now = nowOr(now)
	var out *core.RA
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		t, err := scanRAToken(tx.QueryRowContext(ctx, `SELECT `+raTokenCols+` FROM ra_tokens WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if err := store.Redeemable(t, secretHash, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ra_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL`,
			toMicros(now), id); err != nil {
			return mapErr(err)
		}
		provs, err := jsonText(orEmpty(t.Provisioners))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ras (`+raCols+`) VALUES (?, ?, NULL, ?, ?, ?, ?, 1)
ON CONFLICT (name) DO UPDATE SET provisioners = excluded.provisioners, enrolled_at = excluded.enrolled_at,
	cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after, version = ras.version + 1`,
			t.RAName, provs, toMicros(now), ra.CertSerial, toMicros(ra.CertNotAfter), toMicros(now))
		if err != nil {
			return mapErr(err)
		}
		out, err = scanRA(tx.QueryRowContext(ctx, `SELECT `+raCols+` FROM ras WHERE name = ?`, t.RAName))
		return err
	})
	if err != nil {
		return err
	}
	*ra = *out
	return nil
}

// GetRA returns the RA by name.
func (s *Store) GetRA(ctx context.Context, name string) (*core.RA, error) {
	return scanRA(s.r.QueryRowContext(ctx, `SELECT `+raCols+` FROM ras WHERE name = ?`, name))
}

// ListRAs returns every RA, by name.
func (s *Store) ListRAs(ctx context.Context) ([]*core.RA, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+raCols+` FROM ras ORDER BY name`)
	return collect(rows, err, scanRA)
}

// UpdateRA writes the mutable fields of ra if its Version is current.
func (s *Store) UpdateRA(ctx context.Context, ra *core.RA) error {
	provs, err := jsonText(orEmpty(ra.Provisioners))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ras SET provisioners = ?, disabled_at = ?, cert_serial = ?, cert_not_after = ?,
	version = version + 1 WHERE name = ? AND version = ?`,
			provs, toMicros(ra.DisabledAt), ra.CertSerial, toMicros(ra.CertNotAfter), ra.Name, ra.Version)
		if err != nil {
			return mapErr(err)
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM ras WHERE name = ?`, ra.Name).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return mapErr(err)
			}
			return store.ErrConflict
		}
		return nil
	})
	if err != nil {
		return err
	}
	ra.Version++
	return nil
}

func scanRA(row scanner) (*core.RA, error) {
	var (
		ra                                    core.RA
		provs                                 string
		disabled, enrolled, notAfter, created sql.NullInt64
	)
	if err := row.Scan(&ra.Name, &provs, &disabled, &enrolled, &ra.CertSerial, &notAfter, &created, &ra.Version); err != nil {
		return nil, mapErr(err)
	}
	if err := fromJSON(provs, &ra.Provisioners); err != nil {
		return nil, err
	}
	ra.DisabledAt, ra.EnrolledAt, ra.CertNotAfter = fromMicros(disabled), fromMicros(enrolled), fromMicros(notAfter)
	ra.CreatedAt = fromMicros(created)
	return &ra, nil
}

func scanRAToken(row scanner) (*core.RAToken, error) {
	var (
		t                      core.RAToken
		provs                  string
		created, expires, used sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.RAName, &provs, &t.SecretHash, &created, &expires, &used); err != nil {
		return nil, mapErr(err)
	}
	if err := fromJSON(provs, &t.Provisioners); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return &t, nil
}
