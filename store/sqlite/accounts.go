package sqlite

import (
	"context"
	"database/sql"

	"github.com/policyca/policyca/core"
)

// CreateAccount inserts a (Version 1). An empty ID and a zero CreatedAt are
// filled in. ErrConflict if the ID or the key thumbprint is taken.
func (s *Store) CreateAccount(ctx context.Context, a *core.Account) error {
	id := a.ID
	if id == "" {
		id = core.NewID()
	}
	created := nowOr(a.CreatedAt)
	contact, err := jsonText(orEmpty(a.Contact))
	if err != nil {
		return err
	}
	args := []any{id, a.Provisioner, a.KeyThumbprint, orEmpty(a.KeyJWK), contact, string(a.Status), a.TermsAgreed,
		a.EABKeyID, toMicros(created)}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.insAccount).ExecContext(ctx, args...)
		return mapErr(err)
	})
	if err != nil {
		return err
	}
	a.ID, a.CreatedAt, a.Version = id, created, 1
	return nil
}

// GetAccount returns the account with the given ID.
func (s *Store) GetAccount(ctx context.Context, id string) (*core.Account, error) {
	return scanAccount(s.accountByID.QueryRowContext(ctx, id))
}

// GetAccountByThumbprint returns the account whose key has the given RFC
// 7638 thumbprint.
func (s *Store) GetAccountByThumbprint(ctx context.Context, thumbprint string) (*core.Account, error) {
	return scanAccount(s.accountByThumb.QueryRowContext(ctx, thumbprint))
}

// UpdateAccount writes every field but ID and CreatedAt if a.Version is
// current, then increments a.Version.
func (s *Store) UpdateAccount(ctx context.Context, a *core.Account) error {
	contact, err := jsonText(orEmpty(a.Contact))
	if err != nil {
		return err
	}
	args := []any{a.Provisioner, a.KeyThumbprint, orEmpty(a.KeyJWK), contact, string(a.Status), a.TermsAgreed,
		a.EABKeyID, a.ID, a.Version}
	id := a.ID
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return versioned(ctx, tx, s.updAccount, "accounts", id, args)
	})
	if err != nil {
		return err
	}
	a.Version++
	return nil
}

func scanAccount(row scanner) (*core.Account, error) {
	var (
		a       core.Account
		contact string
		created sql.NullInt64
	)
	err := row.Scan(&a.ID, &a.Provisioner, &a.KeyThumbprint, &a.KeyJWK, &contact, &a.Status, &a.TermsAgreed,
		&a.EABKeyID, &created, &a.Version)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := fromJSON(contact, &a.Contact); err != nil {
		return nil, err
	}
	if len(a.Contact) == 0 {
		a.Contact = nil
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}
