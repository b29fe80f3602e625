package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/policyca/policyca/store"
)

const (
	sqlSecret = `SELECT secret FROM cluster_secrets WHERE name = $1`
	// DO NOTHING waits for a concurrent insert of the same name to commit,
	// so the SELECT that follows sees the winner.
	sqlInsertSecret = `INSERT INTO cluster_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`
	sqlRedeemNonce  = `INSERT INTO used_nonces (nonce, expires) VALUES ($1, $2)`
	sqlPruneNonces  = `DELETE FROM used_nonces WHERE expires < $1`
)

// ClusterSecret returns the secret called name, storing gen's result if
// there is none yet; of nodes racing to create it, the first insert wins
// and everyone reads that one.
func (s *Store) ClusterSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var secret []byte
	err := s.pool.QueryRow(ctx, sqlSecret, name).Scan(&secret)
	if err == nil {
		return secret, nil
	}
	if err = mapErr(ctx, err); !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("postgres: generate cluster secret %q: %w", name, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("postgres: generated cluster secret %q is empty", name)
	}
	if _, err := s.pool.Exec(ctx, sqlInsertSecret, name, fresh, time.Now().UTC()); err != nil {
		return nil, mapErr(ctx, err)
	}
	if err := s.pool.QueryRow(ctx, sqlSecret, name).Scan(&secret); err != nil {
		return nil, mapErr(ctx, err)
	}
	return secret, nil
}

// RedeemNonce records nonce as used: one INSERT, whose primary key turns a
// replay (on this node or any other) into ErrConflict.
func (s *Store) RedeemNonce(ctx context.Context, nonce string, expires time.Time) error {
	if !validKey(nonce) {
		return fmt.Errorf("%w: nonce is not valid text", store.ErrConflict)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, sqlRedeemNonce, nonce, ts(expires))
	return mapErr(ctx, err)
}

// PruneNonces deletes the records that expired before the given time.
func (s *Store) PruneNonces(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, sqlPruneNonces, ts(before))
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	return tag.RowsAffected(), nil
}
