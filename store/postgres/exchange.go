package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
)

// Bulk export and import of whole tables, for `policyca db migrate` (the
// interfaces and the row types are documented in store/migrate). Rows are
// the core types, so that two backends with different column encodings
// exchange and compare them.

// exportQueries list each table in its canonical order: insertion order (seq) where
// it is part of the contract (ListOrderIDs, ListEABKeys, ListDecisions),
// else the ID (an RA's name) in byte order. COLLATE "C" makes it byte order whatever the
// database's collation, so that both backends list rows alike.
var exportQueries = map[string]string{
	"accounts":       `SELECT ` + accountCols + ` FROM accounts ORDER BY id COLLATE "C"`,
	"orders":         `SELECT ` + orderCols + ` FROM orders ORDER BY seq`,
	"authorizations": `SELECT ` + authzCols + ` FROM authorizations ORDER BY id COLLATE "C"`,
	"certificates":   `SELECT ` + certCols + ` FROM certificates ORDER BY id COLLATE "C"`,
	"eab_keys":       `SELECT ` + eabCols + ` FROM eab_keys ORDER BY seq`,
	"decisions":      `SELECT ` + decisionCols + ` FROM decisions ORDER BY seq`,
	"ras":            `SELECT ` + raCols + ` FROM ras ORDER BY name COLLATE "C"`,
	"ra_tokens":      `SELECT ` + raTokenCols + ` FROM ra_tokens ORDER BY id COLLATE "C"`,
}

// ExportRows calls fn with every row of table, in its canonical order.
// It is not bounded by the store's per-call timeout: a large table takes
// as long as it takes, and ctx bounds it.
func (s *Store) ExportRows(ctx context.Context, table string, fn func(row any) error) error {
	q, ok := exportQueries[table]
	if !ok {
		return fmt.Errorf("postgres: export: unknown table %q", table)
	}
	rows, err := s.pool.Query(ctx, q)
	if err != nil {
		return mapErr(ctx, err)
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
			return mapErr(ctx, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return mapErr(ctx, rows.Err())
}

// CountRows returns the number of rows of table.
func (s *Store) CountRows(ctx context.Context, table string) (int64, error) {
	if _, ok := exportQueries[table]; !ok {
		return 0, fmt.Errorf("postgres: count: unknown table %q", table)
	}
	var n int64
	// table is one of the fixed names above, never input.
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		return 0, mapErr(ctx, err)
	}
	return n, nil
}

// importBatch is how many rows go to the server in one round trip.
const importBatch = 500

// Inserts that keep every stored field, the version included.
const (
	sqlImportAccount  = `INSERT INTO accounts (` + accountCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	sqlImportOrder    = `INSERT INTO orders (` + orderCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`
	sqlImportAuthz    = `INSERT INTO authorizations (` + authzCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	sqlImportCert     = `INSERT INTO certificates (` + certCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	sqlImportEAB      = `INSERT INTO eab_keys (` + eabCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	sqlImportDecision = sqlInsertDecision
	sqlImportRA       = `INSERT INTO ras (` + raCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	sqlImportRAToken  = `INSERT INTO ra_tokens (` + raTokenCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
)

// ImportRows runs fill in one transaction; each row it puts is inserted
// exactly as given (IDs, versions, times, bindings). Rows must come in
// an order that satisfies the references (accounts, orders,
// authorizations, certificates, EAB keys, decisions, RAs, RA tokens) and,
// for tables kept in insertion order, in that order. Any error rolls
// everything back.
func (s *Store) ImportRows(ctx context.Context, fill func(put func(table string, row any) error) error) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		flush := func() error {
			if b.Len() == 0 {
				return nil
			}
			err := tx.SendBatch(ctx, b).Close()
			b = &pgx.Batch{}
			return mapErr(ctx, err)
		}
		put := func(table string, row any) error {
			q, args, err := importArgs(table, row)
			if err != nil {
				return err
			}
			b.Queue(q, args...)
			if b.Len() >= importBatch {
				return flush()
			}
			return nil
		}
		if err := fill(put); err != nil {
			return err
		}
		return flush()
	})
}

func importArgs(table string, row any) (string, []any, error) {
	switch r := row.(type) {
	case *core.Account:
		if table == "accounts" {
			contact, err := jsonb(orEmpty(r.Contact))
			if err != nil {
				return "", nil, err
			}
			return sqlImportAccount, []any{r.ID, r.Provisioner, r.KeyThumbprint, orEmpty(r.KeyJWK), contact,
				string(r.Status), r.TermsAgreed, r.EABKeyID, ts(r.CreatedAt), r.Version}, nil
		}
	case *core.Order:
		if table == "orders" {
			args, err := orderArgs(r)
			if err != nil {
				return "", nil, err
			}
			return sqlImportOrder, append(append([]any{r.ID, r.AccountID}, args...), r.Version), nil
		}
	case *core.Authorization:
		if table == "authorizations" {
			args, err := authzInsertArgs(r)
			if err != nil {
				return "", nil, err
			}
			return sqlImportAuthz, append(args, r.Version), nil
		}
	case *core.Certificate:
		if table == "certificates" {
			names, err := jsonb(orEmpty(r.Names))
			if err != nil {
				return "", nil, err
			}
			return sqlImportCert, []any{r.ID, r.Serial, r.AccountID, r.OrderID, r.Provisioner, orEmpty(r.DER),
				orEmpty(r.ChainPEM), ts(r.NotBefore), ts(r.NotAfter), names, ts(r.RevokedAt), r.RevocationReason,
				r.PolicyRevision, r.DecisionID, ts(r.CreatedAt)}, nil
		}
	case *core.EABKey:
		if table == "eab_keys" {
			var bound any
			if r.BoundAccount != "" {
				bound = r.BoundAccount
			}
			return sqlImportEAB, []any{r.ID, r.Provisioner, r.Reference, orEmpty(r.HMACKey), ts(r.CreatedAt),
				ts(r.ExpiresAt), ts(r.RevokedAt), bound, ts(r.BoundAt), policyArg(r.Policy), r.Version}, nil
		}
	case *core.DecisionRecord:
		if table == "decisions" {
			idents, err := jsonb(orEmpty(r.Identifiers))
			if err != nil {
				return "", nil, err
			}
			viols, err := jsonb(orEmpty(r.Violations))
			if err != nil {
				return "", nil, err
			}
			return sqlImportDecision, []any{r.ID, ts(r.Time), r.Stage, r.Provisioner, r.AccountID, r.EABKeyID,
				idents, r.Allow, viols, int64(r.Lifetime), r.Revision, int64(r.EvalTime), r.Error, r.RA, r.Node}, nil
		}
	case *core.RA:
		if table == "ras" {
			provs, err := jsonb(orEmpty(r.Provisioners))
			if err != nil {
				return "", nil, err
			}
			return sqlImportRA, []any{r.Name, provs, ts(r.DisabledAt), ts(r.EnrolledAt), r.CertSerial,
				ts(r.CertNotAfter), ts(r.CreatedAt), r.Version}, nil
		}
	case *core.RAToken:
		if table == "ra_tokens" {
			provs, err := jsonb(orEmpty(r.Provisioners))
			if err != nil {
				return "", nil, err
			}
			return sqlImportRAToken, []any{r.ID, r.RAName, provs, orEmpty(r.SecretHash), ts(r.CreatedAt),
				ts(r.ExpiresAt), ts(r.UsedAt)}, nil
		}
	}
	return "", nil, fmt.Errorf("postgres: import: a %T is not a row of table %q", row, table)
}
