// Package migrate copies a CA's data from one store backend to another
// (`policyca db migrate`, e.g. from the single-node SQLite file to the
// PostgreSQL database of a cluster) and proves the copy complete: for each
// table, equal row counts and equal checksums computed on both sides.
//
// The backends implement Source and Target beside store.Store rather than
// inside it: bulk export and import are for this one offline tool, not for
// the CA. Rows are exchanged as the core types, so that backends with
// different column encodings (integers and TEXT JSON in SQLite, timestamptz
// and jsonb in PostgreSQL) compare equal when their contents do.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// Tables lists what is copied, in an order that satisfies the references
// between them (orders and authorizations need their account, an
// authorization its order, a bound EAB key its account, an enrolment token
// names its RA, which comes first although a token may also name an RA
// not enrolled yet). Each table's rows are, as the row passed to Source
// and Target:
//
//	accounts        *core.Account
//	orders          *core.Order
//	authorizations  *core.Authorization
//	certificates    *core.Certificate
//	eab_keys        *core.EABKey
//	decisions       *core.DecisionRecord
//	ras             *core.RA
//	ra_tokens       *core.RAToken
//
// Used nonces and cluster secrets are not copied: nonces of the old node
// are worthless on the new one, and the new database makes its own key.
var Tables = []string{"accounts", "orders", "authorizations", "certificates", "eab_keys", "decisions", "ras", "ra_tokens"}

// Source lists tables.
type Source interface {
	// ExportRows calls fn with every row of table in the table's canonical
	// order: insertion order for orders, EAB keys and decisions (their
	// listings depend on it), else the ID in byte order. An error from fn
	// stops the export and is returned.
	ExportRows(ctx context.Context, table string, fn func(row any) error) error
	// CountRows returns the number of rows of table.
	CountRows(ctx context.Context, table string) (int64, error)
}

// Target receives tables.
type Target interface {
	Source
	// ImportRows runs fill in one transaction: every row fill puts is
	// inserted exactly as given (IDs, versions, times, bindings), and any
	// error rolls all of them back.
	ImportRows(ctx context.Context, fill func(put func(table string, row any) error) error) error
}

// ErrTargetNotEmpty: the target already holds data. Copying into it could
// mix two CAs' records; migrate into a fresh database instead.
var ErrTargetNotEmpty = errors.New("migrate: the target database is not empty")

// ErrMismatch: after the copy, a table's count or checksum differs between
// source and target. The import was committed; drop the target database
// and investigate before using it.
var ErrMismatch = errors.New("migrate: verification failed")

// TableResult is the outcome for one table.
type TableResult struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	// SHA256 is the checksum of the table's rows, equal on both sides.
	SHA256 string `json:"sha256"`
}

// Copy copies every table of src into dst, which must be empty, in one
// target transaction, then verifies counts and checksums table by table by
// reading dst back. The source must not change meanwhile: stop the CA.
func Copy(ctx context.Context, src Source, dst Target) ([]TableResult, error) {
	for _, t := range Tables {
		n, err := dst.CountRows(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("migrate: target: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: table %s has %d rows", ErrTargetNotEmpty, t, n)
		}
	}
	results := make([]TableResult, 0, len(Tables))
	err := dst.ImportRows(ctx, func(put func(string, any) error) error {
		results = results[:0]
		for _, t := range Tables {
			h := newTableHash(t)
			var n int64
			err := src.ExportRows(ctx, t, func(row any) error {
				if err := h.add(row); err != nil {
					return err
				}
				n++
				if err := put(t, row); err != nil {
					return fmt.Errorf("migrate: target: table %s: %w", t, err)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("migrate: copying %s: %w", t, err)
			}
			results = append(results, TableResult{Table: t, Rows: n, SHA256: h.sum()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if n, err := src.CountRows(ctx, r.Table); err != nil {
			return nil, fmt.Errorf("migrate: source: %w", err)
		} else if n != r.Rows {
			return nil, fmt.Errorf("%w: table %s: the source has %d rows but %d were exported (was the CA still running?)", ErrMismatch, r.Table, n, r.Rows)
		}
		got, err := Checksum(ctx, dst, r.Table)
		if err != nil {
			return nil, fmt.Errorf("migrate: verifying the target: %w", err)
		}
		if got.Rows != r.Rows || got.SHA256 != r.SHA256 {
			return nil, fmt.Errorf("%w: table %s: source %d rows, sha256 %s; target %d rows, sha256 %s",
				ErrMismatch, r.Table, r.Rows, r.SHA256, got.Rows, got.SHA256)
		}
	}
	return results, nil
}

// Checksum reads a whole table and returns its row count and checksum:
// SHA-256 over the table name and the canonical serialization of every row
// (see canonical), each prefixed by its length, in the canonical order.
func Checksum(ctx context.Context, s Source, table string) (TableResult, error) {
	h := newTableHash(table)
	var n int64
	err := s.ExportRows(ctx, table, func(row any) error {
		n++
		return h.add(row)
	})
	if err != nil {
		return TableResult{}, err
	}
	return TableResult{Table: table, Rows: n, SHA256: h.sum()}, nil
}

type tableHash struct{ h hash.Hash }

func newTableHash(table string) *tableHash {
	h := sha256.New()
	h.Write([]byte(table))
	h.Write([]byte{0})
	return &tableHash{h: h}
}

func (t *tableHash) add(row any) error {
	b, err := canonical(row)
	if err != nil {
		return err
	}
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(b)))
	t.h.Write(l[:])
	t.h.Write(b)
	return nil
}

func (t *tableHash) sum() string { return hex.EncodeToString(t.h.Sum(nil)) }
