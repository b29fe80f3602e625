package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

const certCols = `id, serial, account_id, order_id, provisioner, der, chain_pem, not_before, not_after, names, revoked_at, revocation_reason, policy_revision, decision_id, created_at`

const (
	// ON CONFLICT DO NOTHING (on the ID and on the serial) waits for a
	// concurrent insert of the same key to commit or roll back, so the
	// follow-up lookup in putCert always sees the row that won.
	sqlInsertCert = `INSERT INTO certificates (` + certCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING`
	sqlFindCert     = `SELECT id, serial FROM certificates WHERE id = $1 OR serial = $2`
	sqlCertByID     = `SELECT ` + certCols + ` FROM certificates WHERE id = $1`
	sqlCertBySerial = `SELECT ` + certCols + ` FROM certificates WHERE serial = $1`
	// See sqlUpdateAccount for the shape.
	sqlRevoke = `WITH upd AS (
	UPDATE certificates SET revoked_at = $1, revocation_reason = $2
	WHERE serial = $3 AND revoked_at IS NULL RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM certificates WHERE serial = $3)`
	sqlRevoked = `SELECT ` + certCols + ` FROM certificates WHERE revoked_at IS NOT NULL AND not_after > $1
	ORDER BY serial`
)

// PutCertificate stores c. An empty ID and a zero CreatedAt are filled in.
// Storing the same ID and serial again is a no-op (so a caller unsure
// whether a commit went through can retry); ErrDuplicateSerial if the serial
// belongs to another certificate, ErrConflict if the ID does.
func (s *Store) PutCertificate(ctx context.Context, c *core.Certificate) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cc, err := prepareCert(c)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error { return putCert(ctx, tx, cc) })
	if err != nil {
		return err
	}
	*c = *cc
	return nil
}

// CompleteOrder stores c and writes o in one transaction: either the order
// is updated and its certificate stored, or neither. A stale o stores
// nothing.
func (s *Store) CompleteOrder(ctx context.Context, o *core.Order, c *core.Certificate) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cc, err := prepareCert(c)
	if err != nil {
		return err
	}
	oc := *o
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// The order first: its row lock makes concurrent finalizers of one
		// order queue here, and the losers fail on the version check
		// without having written a certificate row at all.
		if err := updateOrder(ctx, tx, &oc); err != nil {
			return err
		}
		return putCert(ctx, tx, cc)
	})
	if err != nil {
		return err
	}
	*o, *c = oc, *cc
	return nil
}

// prepareCert returns a copy of c with defaults filled in.
func prepareCert(c *core.Certificate) (*core.Certificate, error) {
	if c.Serial == "" {
		return nil, errors.New("postgres: certificate without a serial")
	}
	cc := *c
	if cc.ID == "" {
		cc.ID = core.NewID()
	}
	cc.CreatedAt = nowOr(cc.CreatedAt)
	return &cc, nil
}

// putCert inserts c inside tx. When the insert hits an existing ID or
// serial, looking both up tells the idempotent retry (same ID and serial)
// from a real clash, without parsing constraint names; the unique indexes
// are what make the outcome race-free across nodes.
func putCert(ctx context.Context, tx pgx.Tx, c *core.Certificate) error {
	names, err := jsonb(orEmpty(c.Names))
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, sqlInsertCert, c.ID, c.Serial, c.AccountID, c.OrderID,
		c.Provisioner, orEmpty(c.DER), orEmpty(c.ChainPEM), ts(c.NotBefore), ts(c.NotAfter), names,
		ts(c.RevokedAt), c.RevocationReason, c.PolicyRevision, c.DecisionID, ts(c.CreatedAt))
	if err != nil {
		return mapErr(ctx, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	rows, err := tx.Query(ctx, sqlFindCert, c.ID, c.Serial)
	if err != nil {
		return mapErr(ctx, err)
	}
	var sameID, sameSerial, identical bool
	for rows.Next() {
		var id, serial string
		if err := rows.Scan(&id, &serial); err != nil {
			rows.Close()
			return mapErr(ctx, err)
		}
		identical = identical || (id == c.ID && serial == c.Serial)
		sameID = sameID || id == c.ID
		sameSerial = sameSerial || serial == c.Serial
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return mapErr(ctx, err)
	}
	switch {
	case identical:
		return nil
	case sameSerial:
		return fmt.Errorf("%w: %s", store.ErrDuplicateSerial, c.Serial)
	case sameID:
		return fmt.Errorf("%w: certificate %q exists with another serial", store.ErrConflict, c.ID)
	}
	// The conflicting row vanished between the two statements: nothing
	// deletes certificates, so this is a bug, not a race to retry.
	return fmt.Errorf("postgres: certificate %q / serial %s conflicted with a row that is gone", c.ID, c.Serial)
}

// GetCertificate returns the certificate with the given ID.
func (s *Store) GetCertificate(ctx context.Context, id string) (*core.Certificate, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	c, err := scanCert(s.pool.QueryRow(ctx, sqlCertByID, id))
	return c, mapErr(ctx, err)
}

// GetCertificateBySerial returns the certificate with the given serial
// (lower-case hex, as stored; callers normalise).
func (s *Store) GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error) {
	if !validKey(serial) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	c, err := scanCert(s.pool.QueryRow(ctx, sqlCertBySerial, serial))
	return c, mapErr(ctx, err)
}

// RevokeCertificate marks the certificate revoked at the given time (now if
// zero). ErrNotFound, ErrAlreadyRevoked.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time) error {
	if !validKey(serial) {
		return fmt.Errorf("%w: serial %q", store.ErrNotFound, serial)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var revoked, exists bool
	err := s.pool.QueryRow(ctx, sqlRevoke, ts(nowOr(at)), reason, serial).Scan(&revoked, &exists)
	switch {
	case err != nil:
		return mapErr(ctx, err)
	case revoked:
		return nil
	case !exists:
		return fmt.Errorf("%w: serial %s", store.ErrNotFound, serial)
	}
	return store.ErrAlreadyRevoked
}

// ListRevoked returns the revoked certificates whose NotAfter is after
// notExpiredAt, ordered by serial.
func (s *Store) ListRevoked(ctx context.Context, notExpiredAt time.Time) ([]*core.Certificate, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlRevoked, ts(notExpiredAt))
	return collect(ctx, rows, err, scanCert)
}

// scanCert reads one certificate row; errors are left for the caller to map
// with its context.
func scanCert(row scanner) (*core.Certificate, error) {
	var (
		c                        core.Certificate
		names                    []byte
		nb, na, revoked, created *time.Time
	)
	err := row.Scan(&c.ID, &c.Serial, &c.AccountID, &c.OrderID, &c.Provisioner, &c.DER, &c.ChainPEM, &nb, &na,
		&names, &revoked, &c.RevocationReason, &c.PolicyRevision, &c.DecisionID, &created)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(names, &c.Names); err != nil {
		return nil, err
	}
	if len(c.Names) == 0 {
		c.Names = nil
	}
	c.NotBefore, c.NotAfter = fromTS(nb), fromTS(na)
	c.RevokedAt, c.CreatedAt = fromTS(revoked), fromTS(created)
	return &c, nil
}
