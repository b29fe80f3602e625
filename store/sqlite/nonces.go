package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClusterSecret returns the secret called name, storing gen's result if
// there is none yet. INSERT OR IGNORE on the single writer makes the first
// stored value win against other processes on the same file.
func (s *Store) ClusterSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	var secret []byte
	err := s.r.QueryRowContext(ctx, `SELECT secret FROM cluster_secrets WHERE name = ?`, name).Scan(&secret)
	if err == nil {
		return secret, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, mapErr(err)
	}
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("sqlite: generate cluster secret %q: %w", name, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("sqlite: generated cluster secret %q is empty", name)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO cluster_secrets (name, secret, created_at) VALUES (?, ?, ?)`,
		name, fresh, time.Now().UnixMicro()); err != nil {
		return nil, mapErr(err)
	}
	// Read through the writer: a reader connection could still hold an
	// older snapshot than the insert (ours or another process's) it lost to.
	if err := s.w.QueryRowContext(ctx, `SELECT secret FROM cluster_secrets WHERE name = ?`, name).Scan(&secret); err != nil {
		return nil, mapErr(err)
	}
	return secret, nil
}

// RedeemNonce records nonce as used; ErrConflict (the primary key) if it
// already is.
func (s *Store) RedeemNonce(ctx context.Context, nonce string, expires time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO used_nonces (nonce, expires) VALUES (?, ?)`, nonce, expires.UnixMicro())
	return mapErr(err)
}

// PruneNonces deletes the records that expired before the given time.
func (s *Store) PruneNonces(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM used_nonces WHERE expires < ?`, before.UnixMicro())
	if err != nil {
		return 0, mapErr(err)
	}
	return affected(res)
}
