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
// already is. It goes through the group-commit writer like every other
// write, so that it joins the batch instead of committing on its own; a
// replay fails only its own savepoint, and two redemptions of one nonce in
// the same batch still conflict (the second sees the first's row).
func (s *Store) RedeemNonce(ctx context.Context, nonce string, expires time.Time) error {
	exp := expires.UnixMicro()
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO used_nonces (nonce, expires) VALUES (?, ?)`, nonce, exp)
		return mapErr(err)
	})
}

const sqlPruneNonces = `DELETE FROM used_nonces WHERE expires < ?`

// PruneNonces deletes the records that expired before the given time.
func (s *Store) PruneNonces(ctx context.Context, before time.Time) (int64, error) {
	cutoff := before.UnixMicro()
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlPruneNonces, cutoff)
		if err != nil {
			return mapErr(err)
		}
		n, err = affected(res)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
