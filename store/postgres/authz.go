package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

const authzCols = `id, account_id, order_id, identifier_type, identifier_value, wildcard, status, expires, challenges, version`

const (
	sqlInsertAuthz = `INSERT INTO authorizations (` + authzCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)`
	sqlAuthzByID   = `SELECT ` + authzCols + ` FROM authorizations WHERE id = $1`
	// An array parameter lets one prepared statement take any number of IDs.
	sqlAuthzByIDs = `SELECT ` + authzCols + ` FROM authorizations WHERE id = ANY ($1)`
	// See sqlUpdateAccount for the shape.
	sqlUpdateAuthz = `WITH upd AS (
	UPDATE authorizations SET identifier_type = $1, identifier_value = $2, wildcard = $3, status = $4,
		expires = $5, challenges = $6, version = version + 1
	WHERE id = $7 AND version = $8 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM authorizations WHERE id = $7)`
)

func authzInsertArgs(a *core.Authorization) ([]any, error) {
	chs, err := challengesJSON(a.Challenges)
	if err != nil {
		return nil, err
	}
	return []any{a.ID, a.AccountID, a.OrderID, string(a.Identifier.Type), a.Identifier.Value, a.Wildcard,
		string(a.Status), ts(a.Expires), chs}, nil
}

// GetAuthorization returns the authorization with the given ID.
func (s *Store) GetAuthorization(ctx context.Context, id string) (*core.Authorization, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	a, err := scanAuthz(s.pool.QueryRow(ctx, sqlAuthzByID, id))
	return a, mapErr(ctx, err)
}

// GetAuthorizations returns the given authorizations in the given order
// (repeating any repeated ID), in one query. ErrNotFound if any is missing.
func (s *Store) GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error) {
	if len(ids) == 0 {
		return []*core.Authorization{}, nil
	}
	for _, id := range ids {
		if !validKey(id) {
			return nil, fmt.Errorf("%w: authorization %q", store.ErrNotFound, id)
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlAuthzByIDs, ids)
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	defer rows.Close()
	byID := make(map[string]*core.Authorization, len(ids))
	for rows.Next() {
		a, err := scanAuthz(rows)
		if err != nil {
			return nil, mapErr(ctx, err)
		}
		byID[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(ctx, err)
	}
	out := make([]*core.Authorization, len(ids))
	for i, id := range ids {
		a, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("%w: authorization %q", store.ErrNotFound, id)
		}
		out[i] = a
	}
	return dedupe(out), nil
}

// dedupe gives each result slot its own struct, so that a caller changing
// one repeated authorization does not silently change the other.
func dedupe(as []*core.Authorization) []*core.Authorization {
	seen := make(map[*core.Authorization]bool, len(as))
	for i, a := range as {
		if seen[a] {
			c := *a
			c.Challenges = slices.Clone(a.Challenges)
			as[i] = &c
			continue
		}
		seen[a] = true
	}
	return as
}

// UpdateAuthorization writes status, identifier, expiry and challenges if
// a.Version is current, then increments a.Version.
func (s *Store) UpdateAuthorization(ctx context.Context, a *core.Authorization) error {
	if !validKey(a.ID) {
		return fmt.Errorf("%w: authorization %q", store.ErrNotFound, a.ID)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	chs, err := challengesJSON(a.Challenges)
	if err != nil {
		return err
	}
	var updated, exists bool
	err = s.pool.QueryRow(ctx, sqlUpdateAuthz, string(a.Identifier.Type), a.Identifier.Value, a.Wildcard,
		string(a.Status), ts(a.Expires), chs, a.ID, a.Version).Scan(&updated, &exists)
	if err != nil {
		return mapErr(ctx, err)
	}
	if !updated {
		return versionedMiss(exists, "authorization", a.ID)
	}
	a.Version++
	return nil
}

// scanAuthz reads one authorization row; errors are left for the caller to
// map with its context.
func scanAuthz(row scanner) (*core.Authorization, error) {
	var (
		a       core.Authorization
		chs     []byte
		expires *time.Time
	)
	err := row.Scan(&a.ID, &a.AccountID, &a.OrderID, &a.Identifier.Type, &a.Identifier.Value, &a.Wildcard,
		&a.Status, &expires, &chs, &a.Version)
	if err != nil {
		return nil, err
	}
	if a.Challenges, err = challengesFrom(chs); err != nil {
		return nil, err
	}
	a.Expires = fromTS(expires)
	return &a, nil
}

// HoldsValidAuthorization reports whether the account has a valid,
// unexpired authorization for id with this wildcard flag. It reads through
// authorizations_account (revocations by a holder of authorizations are
// rare): an index built by a migration would lock the table against
// writes for every node during a rolling upgrade.
func (s *Store) HoldsValidAuthorization(ctx context.Context, accountID string, id core.Identifier, wildcard bool, at time.Time) (bool, error) {
	if !validKey(accountID) || !validKey(id.Value) || !validKey(string(id.Type)) {
		return false, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM authorizations
WHERE account_id = $1 AND identifier_type = $2 AND identifier_value = $3 AND wildcard = $4 AND status = $5 AND expires > $6
LIMIT 1`, accountID, string(id.Type), id.Value, wildcard, string(core.StatusValid), ts(at)).Scan(&one)
	if err != nil {
		if err = mapErr(ctx, err); errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
