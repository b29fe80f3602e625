package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

const accountCols = `id, provisioner, key_thumbprint, key_jwk, contact, status, terms_agreed, eab_key_id, created_at, version`

const (
	sqlInsertAccount = `INSERT INTO accounts (` + accountCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)`
	sqlAccountByID   = `SELECT ` + accountCols + ` FROM accounts WHERE id = $1`
	sqlAccountByKey  = `SELECT ` + accountCols + ` FROM accounts WHERE key_thumbprint = $1`
	// Versioned updates answer "updated?" and "exists?" in one round trip:
	// the outer SELECT reads the snapshot taken before the UPDATE, in which
	// the row exists whenever it existed before.
	sqlUpdateAccount = `WITH upd AS (
	UPDATE accounts SET provisioner = $1, key_thumbprint = $2, key_jwk = $3, contact = $4, status = $5,
		terms_agreed = $6, eab_key_id = $7, version = version + 1
	WHERE id = $8 AND version = $9 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM accounts WHERE id = $8)`
)

// CreateAccount inserts a (Version 1). An empty ID and a zero CreatedAt are
// filled in. ErrConflict if the ID or the key thumbprint is taken.
func (s *Store) CreateAccount(ctx context.Context, a *core.Account) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	id := a.ID
	if id == "" {
		id = core.NewID()
	}
	created := nowOr(a.CreatedAt)
	contact, err := jsonb(orEmpty(a.Contact))
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, sqlInsertAccount, id, a.Provisioner, a.KeyThumbprint, orEmpty(a.KeyJWK), contact,
		string(a.Status), a.TermsAgreed, a.EABKeyID, ts(created))
	if err != nil {
		return mapErr(ctx, err)
	}
	a.ID, a.CreatedAt, a.Version = id, created, 1
	return nil
}

// GetAccount returns the account with the given ID.
func (s *Store) GetAccount(ctx context.Context, id string) (*core.Account, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	a, err := scanAccount(s.pool.QueryRow(ctx, sqlAccountByID, id))
	return a, mapErr(ctx, err)
}

// GetAccountByThumbprint returns the account whose key has the given RFC
// 7638 thumbprint.
func (s *Store) GetAccountByThumbprint(ctx context.Context, thumbprint string) (*core.Account, error) {
	if !validKey(thumbprint) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	a, err := scanAccount(s.pool.QueryRow(ctx, sqlAccountByKey, thumbprint))
	return a, mapErr(ctx, err)
}

// UpdateAccount writes every field but ID and CreatedAt if a.Version is
// current, then increments a.Version.
func (s *Store) UpdateAccount(ctx context.Context, a *core.Account) error {
	if !validKey(a.ID) {
		return fmt.Errorf("%w: account %q", store.ErrNotFound, a.ID)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	contact, err := jsonb(orEmpty(a.Contact))
	if err != nil {
		return err
	}
	var updated, exists bool
	err = s.pool.QueryRow(ctx, sqlUpdateAccount, a.Provisioner, a.KeyThumbprint, orEmpty(a.KeyJWK), contact,
		string(a.Status), a.TermsAgreed, a.EABKeyID, a.ID, a.Version).Scan(&updated, &exists)
	if err != nil {
		return mapErr(ctx, err)
	}
	if !updated {
		return versionedMiss(exists, "account", a.ID)
	}
	a.Version++
	return nil
}

// scanAccount reads one account row; errors are left for the caller to map
// with its context.
func scanAccount(row scanner) (*core.Account, error) {
	var (
		a       core.Account
		contact []byte
		created *time.Time
	)
	err := row.Scan(&a.ID, &a.Provisioner, &a.KeyThumbprint, &a.KeyJWK, &contact, &a.Status, &a.TermsAgreed,
		&a.EABKeyID, &created, &a.Version)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(contact, &a.Contact); err != nil {
		return nil, err
	}
	if len(a.Contact) == 0 {
		a.Contact = nil
	}
	a.CreatedAt = fromTS(created)
	return &a, nil
}
