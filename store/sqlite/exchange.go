package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/policyca/policyca/core"
)

// Bulk export and import of whole tables, for `policyca db migrate` (the
// interfaces and the row types are documented in store/migrate). Rows are
// the core types, so that two backends with different column encodings
// exchange and compare them.

// exportQueries list each table in its canonical order: insertion order
// (seq) where it is part of the contract (ListOrderIDs, ListEABKeys,
// ListDecisions), else the ID (an RA's name) in byte order (SQLite's BINARY
// collation).
var exportQueries = map[string]string{
	"accounts":       `SELECT ` + accountCols + ` FROM accounts ORDER BY id`,
	"orders":         `SELECT ` + orderCols + ` FROM orders ORDER BY seq`,
	"authorizations": `SELECT ` + authzCols + ` FROM authorizations ORDER BY id`,
	"certificates":   `SELECT ` + certCols + ` FROM certificates ORDER BY id`,
	"eab_keys":       `SELECT ` + eabCols + ` FROM eab_keys ORDER BY seq`,
	"decisions":      `SELECT ` + decCols + ` FROM decisions ORDER BY seq`,
	"ras":            `SELECT ` + raCols + ` FROM ras ORDER BY name`,
	"ra_tokens":      `SELECT ` + raTokenCols + ` FROM ra_tokens ORDER BY id`,
}

// ExportRows calls fn with every row of table, in its canonical order, from
// one read transaction (a consistent snapshot of the table).
func (s *Store) ExportRows(ctx context.Context, table string, fn func(row any) error) error {
	q, ok := exportQueries[table]
	if !ok {
		return fmt.Errorf("sqlite: export: unknown table %q", table)
	}
	rows, err := s.r.QueryContext(ctx, q)
	if err != nil {
		return mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v   any
			err error
		)
		switch table {
		case "accounts":
			v, err = scanAccount(rows)
		case "orders":
			v, err = scanOrder(rows)
		case "authorizations":
			v, err = scanAuthz(rows)
		case "certificates":
			v, err = scanCert(rows)
		case "eab_keys":
			v, err = scanEAB(rows)
		case "decisions":
			v, err = scanDecision(rows)
		case "ras":
			v, err = scanRA(rows)
		case "ra_tokens":
			v, err = scanRAToken(rows)
		}
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return mapErr(rows.Err())
}

// CountRows returns the number of rows of table.
func (s *Store) CountRows(ctx context.Context, table string) (int64, error) {
	if _, ok := exportQueries[table]; !ok {
		return 0, fmt.Errorf("sqlite: count: unknown table %q", table)
	}
	var n int64
	// table is one of the fixed names above, never input.
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		return 0, mapErr(err)
	}
	return n, nil
}

// Inserts that keep every stored field, the version included.
var importQueries = map[string]string{
	"accounts":       `INSERT INTO accounts (` + accountCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"orders":         `INSERT INTO orders (` + orderCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"authorizations": `INSERT INTO authorizations (` + authzCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"certificates":   `INSERT INTO certificates (` + certCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"eab_keys":       `INSERT INTO eab_keys (` + eabCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"decisions":      `INSERT INTO decisions (` + decCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	"ras":            `INSERT INTO ras (` + raCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	"ra_tokens":      `INSERT INTO ra_tokens (` + raTokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`,
}

// ImportRows runs fill in one write transaction on the writer connection;
// each row it puts is inserted exactly as given (IDs, versions, times,
// bindings). Rows must come in an order that satisfies the references and,
// for tables kept in insertion order, in that order. Any error rolls
// everything back. Other writers wait for the whole import.
func (s *Store) ImportRows(ctx context.Context, fill func(put func(table string, row any) error) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback()
	stmts := map[string]*sql.Stmt{}
	put := func(table string, row any) error {
		args, err := importArgs(table, row)
		if err != nil {
			return err
		}
		st, ok := stmts[table]
		if !ok {
			if st, err = tx.PrepareContext(ctx, importQueries[table]); err != nil {
				return mapErr(err)
			}
			stmts[table] = st
		}
		_, err = st.ExecContext(ctx, args...)
		return mapErr(err)
	}
	if err := fill(put); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}

func importArgs(table string, row any) ([]any, error) {
	switch r := row.(type) {
	case *core.Account:
		if table == "accounts" {
			contact, err := jsonText(orEmpty(r.Contact))
			if err != nil {
				return nil, err
			}
			return []any{r.ID, r.Provisioner, r.KeyThumbprint, orEmpty(r.KeyJWK), contact, string(r.Status),
				r.TermsAgreed, r.EABKeyID, toMicros(r.CreatedAt), r.Version}, nil
		}
	case *core.Order:
		if table == "orders" {
			args, err := orderArgs(r)
			if err != nil {
				return nil, err
			}
			return append(append([]any{r.ID, r.AccountID}, args...), r.Version), nil
		}
	case *core.Authorization:
		if table == "authorizations" {
			args, err := authzInsertArgs(r)
			if err != nil {
				return nil, err
			}
			return append(args, r.Version), nil
		}
	case *core.Certificate:
		if table == "certificates" {
			names, err := jsonText(orEmpty(r.Names))
			if err != nil {
				return nil, err
			}
			return []any{r.ID, r.Serial, r.AccountID, r.OrderID, r.Provisioner, orEmpty(r.DER), orEmpty(r.ChainPEM),
				toMicros(r.NotBefore), toMicros(r.NotAfter), names, toMicros(r.RevokedAt), r.RevocationReason,
				r.PolicyRevision, r.DecisionID, toMicros(r.CreatedAt)}, nil
		}
	case *core.EABKey:
		if table == "eab_keys" {
			var bound any
			if r.BoundAccount != "" {
				bound = r.BoundAccount
			}
			return []any{r.ID, r.Provisioner, r.Reference, orEmpty(r.HMACKey), toMicros(r.CreatedAt),
				toMicros(r.ExpiresAt), toMicros(r.RevokedAt), bound, toMicros(r.BoundAt), policyText(r.Policy),
				r.Version}, nil
		}
	case *core.DecisionRecord:
		if table == "decisions" {
			idents, err := jsonText(orEmpty(r.Identifiers))
			if err != nil {
				return nil, err
			}
			viols, err := jsonText(orEmpty(r.Violations))
			if err != nil {
				return nil, err
			}
			return []any{r.ID, r.Time.UnixMicro(), r.Stage, r.Provisioner, r.AccountID, r.EABKeyID, idents,
				r.Allow, viols, int64(r.Lifetime), r.Revision, int64(r.EvalTime), r.Error, r.RA, r.Node}, nil
		}
	case *core.RA:
		if table == "ras" {
			provs, err := jsonText(orEmpty(r.Provisioners))
			if err != nil {
				return nil, err
			}
			return []any{r.Name, provs, toMicros(r.DisabledAt), toMicros(r.EnrolledAt), r.CertSerial,
				toMicros(r.CertNotAfter), toMicros(r.CreatedAt), r.Version}, nil
		}
	case *core.RAToken:
		if table == "ra_tokens" {
			provs, err := jsonText(orEmpty(r.Provisioners))
			if err != nil {
				return nil, err
			}
			return []any{r.ID, r.RAName, provs, orEmpty(r.SecretHash), toMicros(r.CreatedAt),
				toMicros(r.ExpiresAt), toMicros(r.UsedAt)}, nil
		}
	}
	return nil, fmt.Errorf("sqlite: import: a %T is not a row of table %q", row, table)
}
