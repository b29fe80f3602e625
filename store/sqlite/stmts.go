package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Column lists, shared by the SELECTs and the scan functions so that they
// cannot drift apart.
const (
	accountCols = `id, provisioner, key_thumbprint, key_jwk, contact, status, terms_agreed, eab_key_id, created_at, version`
	orderCols   = `id, account_id, provisioner, status, expires, identifiers, not_before, not_after, authz_ids, certificate_id, error, processing_since, created_at, version`
	authzCols   = `id, account_id, order_id, identifier_type, identifier_value, wildcard, status, expires, challenges, version`
	certCols    = `id, serial, account_id, order_id, provisioner, der, chain_pem, not_before, not_after, names, revoked_at, revocation_reason, policy_revision, decision_id, created_at`
	eabCols     = `id, provisioner, reference, hmac_key, created_at, expires_at, revoked_at, bound_account, bound_at, policy, version`
	decCols     = `id, time, stage, provisioner, account_id, eab_key_id, identifiers, allow, violations, lifetime, revision, eval_time, error, ra, node`
)

// Decision filter bits: ListDecisions has one prepared statement per
// combination of filters, so that each gets a plan that uses its index
// (a single statement with "? IS NULL OR …" terms would scan the log).
const (
	decDenied = 1 << iota
	decSince
	decAccount
	decFilters = 1 << iota
)

// stmts are prepared once at Open: the hot paths of an issuance then skip
// SQL parsing and planning. Writer statements are prepared on the single
// write connection and re-bound to transactions with tx.StmtContext, which
// reuses the prepared statement on that same connection.
type stmts struct {
	// writer
	insAccount *sql.Stmt
	updAccount *sql.Stmt
	insOrder   *sql.Stmt
	updOrder   *sql.Stmt
	insAuthz   *sql.Stmt
	updAuthz   *sql.Stmt
	insCert    *sql.Stmt
	findCert   *sql.Stmt
	revoke     *sql.Stmt
	insEAB     *sql.Stmt
	updEAB     *sql.Stmt
	eabForBind *sql.Stmt
	bindEAB    *sql.Stmt
	insDec     *sql.Stmt

	// readers
	accountByID    *sql.Stmt
	accountByThumb *sql.Stmt
	orderByID      *sql.Stmt
	ordersFirst    *sql.Stmt
	ordersAfter    *sql.Stmt
	orderCursor    *sql.Stmt
	staleOrders    *sql.Stmt
	authzByID      *sql.Stmt
	authzByIDs     *sql.Stmt
	certByID       *sql.Stmt
	certBySerial   *sql.Stmt
	certRevokedAt  *sql.Stmt
	revoked        *sql.Stmt
	eabByID        *sql.Stmt
	eabAll         *sql.Stmt
	eabByProv      *sql.Stmt
	decisions      [decFilters]*sql.Stmt // indexed by a combination of dec* bits
}

// stmtDef is a statement to prepare: where it goes, on which connection
// pool, and its SQL.
type stmtDef struct {
	dst   **sql.Stmt
	db    *sql.DB
	query string
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range s.statements() {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return nil
}

// statements lists every prepared statement (TestQueryPlans checks the
// plan of each).
func (s *Store) statements() []stmtDef {
	list := []stmtDef{
		{&s.insAccount, s.w, `INSERT INTO accounts (` + accountCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`},
		{&s.updAccount, s.w, `UPDATE accounts SET provisioner = ?, key_thumbprint = ?, key_jwk = ?, contact = ?, status = ?,
			terms_agreed = ?, eab_key_id = ?, version = version + 1 WHERE id = ? AND version = ?`},
		{&s.insOrder, s.w, `INSERT INTO orders (` + orderCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`},
		{&s.updOrder, s.w, `UPDATE orders SET provisioner = ?, status = ?, expires = ?, identifiers = ?, not_before = ?,
			not_after = ?, authz_ids = ?, certificate_id = ?, error = ?, processing_since = ?, version = version + 1
			WHERE id = ? AND version = ?`},
		{&s.insAuthz, s.w, `INSERT INTO authorizations (` + authzCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`},
		{&s.updAuthz, s.w, `UPDATE authorizations SET identifier_type = ?, identifier_value = ?, wildcard = ?, status = ?,
			expires = ?, challenges = ?, version = version + 1 WHERE id = ? AND version = ?`},
		{&s.insCert, s.w, `INSERT INTO certificates (` + certCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.findCert, s.w, `SELECT id, serial FROM certificates WHERE id = ? OR serial = ?`},
		{&s.revoke, s.w, `UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ? AND revoked_at IS NULL`},

		{&s.accountByID, s.r, `SELECT ` + accountCols + ` FROM accounts WHERE id = ?`},
		{&s.accountByThumb, s.r, `SELECT ` + accountCols + ` FROM accounts WHERE key_thumbprint = ?`},
		{&s.orderByID, s.r, `SELECT ` + orderCols + ` FROM orders WHERE id = ?`},
		// ?2 is now in unix microseconds: invalid orders, and pending or
		// ready ones expired at now, are left out (store.ListOrderIDs).
		{&s.ordersFirst, s.r, `SELECT id FROM orders WHERE account_id = ?1 AND ` + listedOrder + `
			ORDER BY seq LIMIT ?3`},
		{&s.ordersAfter, s.r, `SELECT id FROM orders WHERE account_id = ?1 AND ` + listedOrder + `
			AND seq > (SELECT seq FROM orders WHERE id = ?4 AND account_id = ?1) ORDER BY seq LIMIT ?3`},
		{&s.orderCursor, s.r, `SELECT 1 FROM orders WHERE id = ? AND account_id = ?`},
		{&s.staleOrders, s.r, `SELECT ` + orderCols + ` FROM orders WHERE status = 'processing'
			AND (processing_since IS NULL OR processing_since < ?) ORDER BY processing_since, seq`},
		{&s.authzByID, s.r, `SELECT ` + authzCols + ` FROM authorizations WHERE id = ?`},
		// json_each lets one prepared statement take any number of IDs.
		{&s.authzByIDs, s.r, `SELECT ` + authzCols + ` FROM authorizations WHERE id IN (SELECT value FROM json_each(?))`},
		{&s.certByID, s.r, `SELECT ` + certCols + ` FROM certificates WHERE id = ?`},
		{&s.certBySerial, s.r, `SELECT ` + certCols + ` FROM certificates WHERE serial = ?`},
		// On the writer: RevokeCertificate reads it inside its transaction.
		{&s.certRevokedAt, s.w, `SELECT revoked_at FROM certificates WHERE serial = ?`},
		{&s.revoked, s.r, `SELECT ` + certCols + ` FROM certificates WHERE revoked_at IS NOT NULL AND not_after > ?
			ORDER BY serial`},

		{&s.insEAB, s.w, `INSERT INTO eab_keys (` + eabCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 1)`},
		{&s.updEAB, s.w, `UPDATE eab_keys SET reference = ?, expires_at = ?, revoked_at = ?, policy = ?,
			version = version + 1 WHERE id = ? AND version = ?`},
		{&s.eabForBind, s.w, `SELECT provisioner, expires_at, revoked_at, bound_account FROM eab_keys WHERE id = ?`},
		// Every condition of the checks is repeated here: the row count,
		// not the SELECT before it, is what decides who binds the key.
		{&s.bindEAB, s.w, `UPDATE eab_keys SET bound_account = ?1, bound_at = ?2, version = version + 1
			WHERE id = ?3 AND provisioner = ?4 AND bound_account IS NULL AND revoked_at IS NULL
			AND (expires_at IS NULL OR expires_at > ?2)`},
		{&s.insDec, s.w, `INSERT INTO decisions (` + decCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},

		{&s.eabByID, s.r, `SELECT ` + eabCols + ` FROM eab_keys WHERE id = ?`},
		{&s.eabAll, s.r, `SELECT ` + eabCols + ` FROM eab_keys ORDER BY created_at, seq`},
		{&s.eabByProv, s.r, `SELECT ` + eabCols + ` FROM eab_keys WHERE provisioner = ? ORDER BY created_at, seq`},
	}
	for f := range decFilters {
		list = append(list, stmtDef{&s.decisions[f], s.r, decisionQuery(f)})
	}
	return list
}

// closeStmts closes every statement prepare made (those it got to, if it
// failed halfway).
func (s *Store) closeStmts() {
	for _, d := range s.statements() {
		if *d.dst != nil {
			(*d.dst).Close()
		}
	}
}

// decisionQuery is the ListDecisions query for a combination f of dec*
// filters. Its parameters are, in order: since (if decSince), account (if
// decAccount), limit.
func decisionQuery(f int) string {
	q := `SELECT ` + decCols + ` FROM decisions WHERE 1`
	if f&decDenied != 0 {
		q += ` AND allow = 0`
	}
	if f&decSince != 0 {
		q += ` AND time >= ?`
	}
	if f&decAccount != 0 {
		q += ` AND account_id = ?`
	}
	return q + ` ORDER BY time DESC, seq DESC LIMIT ?`
}
