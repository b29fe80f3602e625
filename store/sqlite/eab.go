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

// EAB keys. The HMAC key is a BLOB in the clear: the CA needs the secret
// itself to verify a client's MAC, so hashing it is not an option, and
// encrypting it with a key kept next to the database would add nothing.
// The database file (with its -wal and -shm files and any backup) is
// protected by the permissions of the state directory, which `policyca
// init` creates with mode 0700, so that only the CA's user can read it.

// CreateEABKey inserts k (Version 1). An empty ID and a zero CreatedAt are
// filled in. ErrConflict if the ID is taken. The binding fields of k are
// ignored: a key is always created unbound.
func (s *Store) CreateEABKey(ctx context.Context, k *core.EABKey) error {
	id := k.ID
	if id == "" {
		id = core.NewID()
	}
	created := nowOr(k.CreatedAt)
	args := []any{id, k.Provisioner, k.Reference, orEmpty(k.HMACKey), toMicros(created), toMicros(k.ExpiresAt),
		toMicros(k.RevokedAt), policyText(k.Policy)}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.insEAB).ExecContext(ctx, args...)
		return mapErr(err)
	})
	if err != nil {
		return err
	}
	k.ID, k.CreatedAt, k.Version = id, created, 1
	k.BoundAccount, k.BoundAt = "", time.Time{}
	return nil
}

// GetEABKey returns the key with the given ID.
func (s *Store) GetEABKey(ctx context.Context, id string) (*core.EABKey, error) {
	return scanEAB(s.eabByID.QueryRowContext(ctx, id))
}

// ListEABKeys returns the keys of a provisioner ("" = all), oldest first.
func (s *Store) ListEABKeys(ctx context.Context, provisioner string) ([]*core.EABKey, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if provisioner == "" {
		rows, err = s.eabAll.QueryContext(ctx)
	} else {
		rows, err = s.eabByProv.QueryContext(ctx, provisioner)
	}
	return collect(rows, err, scanEAB)
}

// UpdateEABKey writes Reference, ExpiresAt, RevokedAt and Policy if
// k.Version is current, then increments k.Version. The binding fields are
// left alone: only CreateAccountBound writes them.
func (s *Store) UpdateEABKey(ctx context.Context, k *core.EABKey) error {
	args := []any{k.Reference, toMicros(k.ExpiresAt), toMicros(k.RevokedAt), policyText(k.Policy), k.ID, k.Version}
	id := k.ID
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return versioned(ctx, tx, s.updEAB, "eab_keys", id, args)
	})
	if err != nil {
		return err
	}
	k.Version++
	return nil
}

// CreateAccountBound creates a and binds the EAB key kid to it in one
// transaction, so that the key is never bound to an account that does not
// exist, nor an account created with a key someone else bound first.
// Binding increments the key's Version.
func (s *Store) CreateAccountBound(ctx context.Context, a *core.Account, kid string, now time.Time) error {
	// A copy, so that a refused call leaves the caller's struct untouched.
	ac := *a
	if ac.ID == "" {
		ac.ID = core.NewID()
	}
	ac.CreatedAt = nowOr(ac.CreatedAt)
	ac.EABKeyID = kid
	now = nowOr(now)
	contact, err := jsonText(orEmpty(ac.Contact))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The checks give the precise reason; the conditional UPDATE
		// below is what makes the binding race-free on any backend.
		if err := checkBindable(tx.StmtContext(ctx, s.eabForBind).QueryRowContext(ctx, kid), ac.Provisioner, now); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.insAccount).ExecContext(ctx, ac.ID, ac.Provisioner, ac.KeyThumbprint,
			orEmpty(ac.KeyJWK), contact, string(ac.Status), ac.TermsAgreed, ac.EABKeyID,
			toMicros(ac.CreatedAt)); err != nil {
			return mapErr(err)
		}
		res, err := tx.StmtContext(ctx, s.bindEAB).ExecContext(ctx, ac.ID, now.UnixMicro(), kid, ac.Provisioner)
		if err != nil {
			return mapErr(err)
		}
		n, err := affected(res)
		if err != nil {
			return err
		}
		if n != 1 {
			// Returning an error rolls back the account's INSERT.
			return fmt.Errorf("%w: already bound", store.ErrEABUnusable)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ac.Version = 1
	*a = ac
	return nil
}

// checkBindable explains why the key read by row cannot bind an account of
// provisioner at now, or returns nil if it can.
func checkBindable(row *sql.Row, provisioner string, now time.Time) error {
	var (
		prov             string
		expires, revoked sql.NullInt64
		bound            sql.NullString
	)
	if err := row.Scan(&prov, &expires, &revoked, &bound); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: EAB key", store.ErrNotFound)
		}
		return mapErr(err)
	}
	var why string
	switch {
	// First, so that nothing about another provisioner's key leaks.
	case prov != provisioner:
		why = "belongs to another provisioner"
	case revoked.Valid:
		why = "revoked"
	case expires.Valid && !now.Before(fromMicros(expires)):
		why = "expired"
	case bound.Valid:
		why = "already bound"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", store.ErrEABUnusable, why)
}

// policyText encodes the optional account policy: nil stays NULL.
func policyText(p []byte) any {
	if p == nil {
		return nil
	}
	return string(p)
}

func scanEAB(row scanner) (*core.EABKey, error) {
	var (
		k                                  core.EABKey
		created, expires, revoked, boundAt sql.NullInt64
		bound, policy                      sql.NullString
	)
	err := row.Scan(&k.ID, &k.Provisioner, &k.Reference, &k.HMACKey, &created, &expires, &revoked, &bound,
		&boundAt, &policy, &k.Version)
	if err != nil {
		return nil, mapErr(err)
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
	k.BoundAccount, k.BoundAt = bound.String, fromMicros(boundAt)
	if policy.Valid {
		k.Policy = []byte(policy.String)
	}
	return &k, nil
}
