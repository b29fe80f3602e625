package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// PutCertificate stores c. An empty ID and a zero CreatedAt are filled in.
// Storing the same ID and serial again is a no-op (so a caller unsure
// whether a commit went through can retry); ErrDuplicateSerial if the serial
// belongs to another certificate, ErrConflict if the ID does.
func (s *Store) PutCertificate(ctx context.Context, c *core.Certificate) error {
	cc, err := prepareCert(c)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.putCert(ctx, tx, cc) })
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
	cc, err := prepareCert(c)
	if err != nil {
		return err
	}
	args, err := orderUpdateArgs(o)
	if err != nil {
		return err
	}
	id := o.ID
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.putCert(ctx, tx, cc); err != nil {
			return err
		}
		return versioned(ctx, tx, s.updOrder, "orders", id, args)
	})
	if err != nil {
		return err
	}
	o.Version++
	*c = *cc
	return nil
}

// prepareCert returns a copy of c with defaults filled in.
func prepareCert(c *core.Certificate) (*core.Certificate, error) {
	if c.Serial == "" {
		return nil, errors.New("sqlite: certificate without a serial")
	}
	cc := *c
	if cc.ID == "" {
		cc.ID = core.NewID()
	}
	cc.CreatedAt = nowOr(cc.CreatedAt)
	return &cc, nil
}

// putCert inserts c inside tx. Looking the ID and serial up first (the
// transaction holds the write lock, so nothing can slip in between) gives
// exact errors and the idempotent case without relying on the text of
// constraint errors; the UNIQUE constraints stay as the last line of defence.
func (s *Store) putCert(ctx context.Context, tx *sql.Tx, c *core.Certificate) error {
	rows, err := tx.StmtContext(ctx, s.findCert).QueryContext(ctx, c.ID, c.Serial)
	if err != nil {
		return mapErr(err)
	}
	var sameID, sameSerial, identical bool
	for rows.Next() {
		var id, serial string
		if err := rows.Scan(&id, &serial); err != nil {
			rows.Close()
			return mapErr(err)
		}
		identical = identical || (id == c.ID && serial == c.Serial)
		sameID = sameID || id == c.ID
		sameSerial = sameSerial || serial == c.Serial
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return mapErr(err)
	}
	switch {
	case identical:
		return nil
	case sameSerial:
		return fmt.Errorf("%w: %s", store.ErrDuplicateSerial, c.Serial)
	case sameID:
		return fmt.Errorf("%w: certificate %q exists with another serial", store.ErrConflict, c.ID)
	}
	names, err := jsonText(orEmpty(c.Names))
	if err != nil {
		return err
	}
	_, err = tx.StmtContext(ctx, s.insCert).ExecContext(ctx, c.ID, c.Serial, c.AccountID, c.OrderID,
		c.Provisioner, orEmpty(c.DER), orEmpty(c.ChainPEM), toMicros(c.NotBefore), toMicros(c.NotAfter), names,
		toMicros(c.RevokedAt), c.RevocationReason, c.PolicyRevision, c.DecisionID, toMicros(c.CreatedAt))
	return mapErr(err)
}

// GetCertificate returns the certificate with the given ID.
func (s *Store) GetCertificate(ctx context.Context, id string) (*core.Certificate, error) {
	return scanCert(s.certByID.QueryRowContext(ctx, id))
}

// GetCertificateBySerial returns the certificate with the given serial
// (lower-case hex, as stored; callers normalise).
func (s *Store) GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error) {
	return scanCert(s.certBySerial.QueryRowContext(ctx, serial))
}

// RevokeCertificate marks the certificate revoked at the given time (now if
// zero). ErrNotFound, ErrAlreadyRevoked.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time) error {
	at = nowOr(at)
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.revoke).ExecContext(ctx, at.UnixMicro(), reason, serial)
		if err != nil {
			return mapErr(err)
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		// Through tx, not a reader: the certificate may have been stored
		// by an earlier operation of the same batch.
		var revokedAt sql.NullInt64
		if err := tx.StmtContext(ctx, s.certRevokedAt).QueryRowContext(ctx, serial).Scan(&revokedAt); err != nil {
			return mapErr(err)
		}
		return store.ErrAlreadyRevoked
	})
}

// ListRevoked returns the revoked certificates whose NotAfter is after
// notExpiredAt, ordered by serial.
func (s *Store) ListRevoked(ctx context.Context, notExpiredAt time.Time) ([]*core.Certificate, error) {
	rows, err := s.revoked.QueryContext(ctx, notExpiredAt.UnixMicro())
	return collect(rows, err, scanCert)
}

func scanCert(row scanner) (*core.Certificate, error) {
	var (
		c                        core.Certificate
		names                    string
		nb, na, revoked, created sql.NullInt64
	)
	err := row.Scan(&c.ID, &c.Serial, &c.AccountID, &c.OrderID, &c.Provisioner, &c.DER, &c.ChainPEM, &nb, &na,
		&names, &revoked, &c.RevocationReason, &c.PolicyRevision, &c.DecisionID, &created)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := fromJSON(names, &c.Names); err != nil {
		return nil, err
	}
	if len(c.Names) == 0 {
		c.Names = nil
	}
	c.NotBefore, c.NotAfter = fromMicros(nb), fromMicros(na)
	c.RevokedAt, c.CreatedAt = fromMicros(revoked), fromMicros(created)
	return &c, nil
}
