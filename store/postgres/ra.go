package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// The registry of registration authorities (rare operator and enrolment
// writes).

const (
	raCols      = `name, provisioners, disabled_at, enrolled_at, cert_serial, cert_not_after, created_at, version`
	raTokenCols = `id, ra_name, provisioners, secret_hash, created_at, expires_at, used_at`
)

// CreateRAToken inserts t. An empty ID and a zero CreatedAt are filled in.
func (s *Store) CreateRAToken(ctx context.Context, t *core.RAToken) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tc := *t
	if tc.ID == "" {
		tc.ID = core.NewID()
	}
	tc.CreatedAt = nowOr(tc.CreatedAt)
	provs, err := jsonb(orEmpty(tc.Provisioners))
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO ra_tokens (`+raTokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, NULL)`,
		tc.ID, tc.RAName, provs, orEmpty(tc.SecretHash), ts(tc.CreatedAt), ts(tc.ExpiresAt))
	if err != nil {
		return mapErr(ctx, err)
	}
	tc.UsedAt = time.Time{}
	*t = tc
	return nil
}

// GetRAToken returns the token with the given ID.
func (s *Store) GetRAToken(ctx context.Context, id string) (*core.RAToken, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	t, err := scanRAToken(s.pool.QueryRow(ctx, `SELECT `+raTokenCols+` FROM ra_tokens WHERE id = $1`, id))
	return t, mapErr(ctx, err)
}

// EnrolRA redeems the token and creates or updates its RA in one
// transaction; the token's row is locked, so concurrent redemptions on any
// node queue and all but the first find it used.
func (s *Store) EnrolRA(ctx context.Context, id string, secretHash []byte, now time.Time, ra *core.RA) error {
	if !validKey(id) {
		return fmt.Errorf("%w: enrolment token", store.ErrNotFound)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	now = nowOr(now)
	var out *core.RA
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		t, err := scanRAToken(tx.QueryRow(ctx, `SELECT `+raTokenCols+` FROM ra_tokens WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return mapErr(ctx, err)
		}
		if err := store.Redeemable(t, secretHash, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE ra_tokens SET used_at = $1 WHERE id = $2`, ts(now), id); err != nil {
			return mapErr(ctx, err)
		}
		provs, err := jsonb(orEmpty(t.Provisioners))
		if err != nil {
			return err
		}
		out, err = scanRA(tx.QueryRow(ctx, `INSERT INTO ras (`+raCols+`) VALUES ($1, $2, NULL, $3, $4, $5, $3, 1)
ON CONFLICT (name) DO UPDATE SET provisioners = excluded.provisioners, enrolled_at = excluded.enrolled_at,
	cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after, version = ras.version + 1
RETURNING `+raCols, t.RAName, provs, ts(now), ra.CertSerial, ts(ra.CertNotAfter)))
		return mapErr(ctx, err)
	})
	if err != nil {
		return err
	}
	*ra = *out
	return nil
}

// GetRA returns the RA by name.
func (s *Store) GetRA(ctx context.Context, name string) (*core.RA, error) {
	if !validKey(name) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	ra, err := scanRA(s.pool.QueryRow(ctx, `SELECT `+raCols+` FROM ras WHERE name = $1`, name))
	return ra, mapErr(ctx, err)
}

// ListRAs returns every RA, by name.
func (s *Store) ListRAs(ctx context.Context) ([]*core.RA, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+raCols+` FROM ras ORDER BY name COLLATE "C"`)
	return collect(ctx, rows, err, scanRA)
}

// UpdateRA writes the mutable fields of ra if its Version is current.
func (s *Store) UpdateRA(ctx context.Context, ra *core.RA) error {
	if !validKey(ra.Name) {
		return fmt.Errorf("%w: RA %q", store.ErrNotFound, ra.Name)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	provs, err := jsonb(orEmpty(ra.Provisioners))
	if err != nil {
		return err
	}
	var updated, exists bool
	err = s.pool.QueryRow(ctx, `WITH upd AS (
	UPDATE ras SET provisioners = $1, disabled_at = $2, cert_serial = $3, cert_not_after = $4, version = version + 1
	WHERE name = $5 AND version = $6 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM ras WHERE name = $5)`,
		provs, ts(ra.DisabledAt), ra.CertSerial, ts(ra.CertNotAfter), ra.Name, ra.Version).Scan(&updated, &exists)
	if err != nil {
		return mapErr(ctx, err)
	}
	if !updated {
		return versionedMiss(exists, "RA", ra.Name)
	}
	ra.Version++
	return nil
}

func scanRA(row scanner) (*core.RA, error) {
	var (
		ra                                    core.RA
		provs                                 []byte
		disabled, enrolled, notAfter, created *time.Time
	)
	if err := row.Scan(&ra.Name, &provs, &disabled, &enrolled, &ra.CertSerial, &notAfter, &created, &ra.Version); err != nil {
		return nil, err
	}
	if err := fromJSON(provs, &ra.Provisioners); err != nil {
		return nil, err
	}
	ra.DisabledAt, ra.EnrolledAt, ra.CertNotAfter, ra.CreatedAt = fromTS(disabled), fromTS(enrolled), fromTS(notAfter), fromTS(created)
	return &ra, nil
}

func scanRAToken(row pgx.Row) (*core.RAToken, error) {
	var (
		t                      core.RAToken
		provs                  []byte
		created, expires, used *time.Time
	)
	if err := row.Scan(&t.ID, &t.RAName, &provs, &t.SecretHash, &created, &expires, &used); err != nil {
		return nil, err
	}
	if err := fromJSON(provs, &t.Provisioners); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromTS(created), fromTS(expires), fromTS(used)
	return &t, nil
}
