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

const eabCols = `id, provisioner, reference, hmac_key, created_at, expires_at, revoked_at, bound_account, bound_at, policy, version`

const (
	sqlInsertEAB = `INSERT INTO eab_keys (` + eabCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, 1)`
	sqlEABByID   = `SELECT ` + eabCols + ` FROM eab_keys WHERE id = $1`
	sqlEABAll    = `SELECT ` + eabCols + ` FROM eab_keys ORDER BY created_at, seq`
	sqlEABByProv = `SELECT ` + eabCols + ` FROM eab_keys WHERE provisioner = $1 ORDER BY created_at, seq`
	// See sqlUpdateAccount for the shape.
	sqlUpdateEAB = `WITH upd AS (
	UPDATE eab_keys SET reference = $1, expires_at = $2, revoked_at = $3, policy = $4, version = version + 1
	WHERE id = $5 AND version = $6 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM eab_keys WHERE id = $5)`
	// FOR UPDATE: concurrent binders of one key queue on its row, and each
	// later one reads the row as the previous one left it.
	sqlEABForBind = `SELECT provisioner, expires_at, revoked_at, bound_account FROM eab_keys WHERE id = $1 FOR UPDATE`
	sqlBindEAB    = `UPDATE eab_keys SET bound_account = $1, bound_at = $2, version = version + 1
	WHERE id = $3 AND provisioner = $4 AND bound_account IS NULL AND revoked_at IS NULL
	AND (expires_at IS NULL OR expires_at > $2)`
)

// CreateEABKey inserts k (Version 1). An empty ID and a zero CreatedAt are
// filled in. ErrConflict if the ID is taken. The binding fields of k are
// ignored: a key is always created unbound.
func (s *Store) CreateEABKey(ctx context.Context, k *core.EABKey) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	id := k.ID
	if id == "" {
		id = core.NewID()
	}
	created := nowOr(k.CreatedAt)
	_, err := s.pool.Exec(ctx, sqlInsertEAB, id, k.Provisioner, k.Reference, orEmpty(k.HMACKey), ts(created),
		ts(k.ExpiresAt), ts(k.RevokedAt), policyArg(k.Policy))
	if err != nil {
		return mapErr(ctx, err)
	}
	k.ID, k.CreatedAt, k.Version = id, created, 1
	k.BoundAccount, k.BoundAt = "", time.Time{}
	return nil
}

// GetEABKey returns the key with the given ID.
func (s *Store) GetEABKey(ctx context.Context, id string) (*core.EABKey, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	k, err := scanEAB(s.pool.QueryRow(ctx, sqlEABByID, id))
	return k, mapErr(ctx, err)
}

// ListEABKeys returns the keys of a provisioner ("" = all), oldest first.
func (s *Store) ListEABKeys(ctx context.Context, provisioner string) ([]*core.EABKey, error) {
	if !validKey(provisioner) {
		return nil, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var (
		rows pgx.Rows
		err  error
	)
	if provisioner == "" {
		rows, err = s.pool.Query(ctx, sqlEABAll)
	} else {
		rows, err = s.pool.Query(ctx, sqlEABByProv, provisioner)
	}
	return collect(ctx, rows, err, scanEAB)
}

// UpdateEABKey writes Reference, ExpiresAt, RevokedAt and Policy if
// k.Version is current, then increments k.Version. The binding fields are
// left alone: only CreateAccountBound writes them.
func (s *Store) UpdateEABKey(ctx context.Context, k *core.EABKey) error {
	if !validKey(k.ID) {
		return fmt.Errorf("%w: EAB key %q", store.ErrNotFound, k.ID)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var updated, exists bool
	err := s.pool.QueryRow(ctx, sqlUpdateEAB, k.Reference, ts(k.ExpiresAt), ts(k.RevokedAt), policyArg(k.Policy),
		k.ID, k.Version).Scan(&updated, &exists)
	if err != nil {
		return mapErr(ctx, err)
	}
	if !updated {
		return versionedMiss(exists, "EAB key", k.ID)
	}
	k.Version++
	return nil
}

// CreateAccountBound creates a and binds the EAB key kid to it in one
// transaction, so that the key is never bound to an account that does not
// exist, nor an account created with a key someone else bound first, on
// any number of nodes. Binding increments the key's Version.
func (s *Store) CreateAccountBound(ctx context.Context, a *core.Account, kid string, now time.Time) error {
	if !validKey(kid) {
		return fmt.Errorf("%w: EAB key", store.ErrNotFound)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	// A copy, so that a refused call leaves the caller's struct untouched.
	ac := *a
	if ac.ID == "" {
		ac.ID = core.NewID()
	}
	ac.CreatedAt = nowOr(ac.CreatedAt)
	ac.EABKeyID = kid
	now = nowOr(now)
	contact, err := jsonb(orEmpty(ac.Contact))
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// The row lock and the checks give the precise reason; the
		// conditional UPDATE below restates them so that the binding
		// does not depend on the lock alone.
		if err := checkBindable(ctx, tx.QueryRow(ctx, sqlEABForBind, kid), ac.Provisioner, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlInsertAccount, ac.ID, ac.Provisioner, ac.KeyThumbprint, orEmpty(ac.KeyJWK),
			contact, string(ac.Status), ac.TermsAgreed, ac.EABKeyID, ts(ac.CreatedAt)); err != nil {
			return mapErr(ctx, err)
		}
		tag, err := tx.Exec(ctx, sqlBindEAB, ac.ID, ts(now), kid, ac.Provisioner)
		if err != nil {
			return mapErr(ctx, err)
		}
		if tag.RowsAffected() != 1 {
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
func checkBindable(ctx context.Context, row pgx.Row, provisioner string, now time.Time) error {
	var (
		prov             string
		expires, revoked *time.Time
		bound            *string
	)
	if err := row.Scan(&prov, &expires, &revoked, &bound); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: EAB key", store.ErrNotFound)
		}
		return mapErr(ctx, err)
	}
	var why string
	switch {
	// First, so that nothing about another provisioner's key leaks.
	case prov != provisioner:
		why = "belongs to another provisioner"
	case revoked != nil:
		why = "revoked"
	case expires != nil && !now.Before(*expires):
		why = "expired"
	case bound != nil:
		why = "already bound"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", store.ErrEABUnusable, why)
}

// policyArg encodes the optional account policy for its jsonb column: nil
// stays NULL.
func policyArg(p []byte) any {
	if p == nil {
		return nil
	}
	return p
}

// scanEAB reads one key row; errors are left for the caller to map with its
// context.
func scanEAB(row scanner) (*core.EABKey, error) {
	var (
		k                                  core.EABKey
		created, expires, revoked, boundAt *time.Time
		bound                              *string
	)
	err := row.Scan(&k.ID, &k.Provisioner, &k.Reference, &k.HMACKey, &created, &expires, &revoked, &bound,
		&boundAt, &k.Policy, &k.Version)
	if err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromTS(created), fromTS(expires), fromTS(revoked)
	k.BoundAt = fromTS(boundAt)
	if bound != nil {
		k.BoundAccount = *bound
	}
	return &k, nil
}
