package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

const orderCols = `id, account_id, provisioner, status, expires, identifiers, not_before, not_after, authz_ids, certificate_id, error, processing_since, created_at, version`

const (
	sqlInsertOrder = `INSERT INTO orders (` + orderCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)`
	sqlOrderByID   = `SELECT ` + orderCols + ` FROM orders WHERE id = $1`
	// See sqlUpdateAccount for the shape.
	sqlUpdateOrder = `WITH upd AS (
	UPDATE orders SET provisioner = $1, status = $2, expires = $3, identifiers = $4, not_before = $5,
		not_after = $6, authz_ids = $7, certificate_id = $8, error = $9, processing_since = $10,
		version = version + 1
	WHERE id = $11 AND version = $12 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM orders WHERE id = $11)`
	// $2 is now: see listedOrder.
	sqlOrdersFirst = `SELECT id FROM orders WHERE account_id = $1 AND ` + listedOrder + `
	ORDER BY seq LIMIT $3`
	sqlOrdersAfter = `SELECT id FROM orders WHERE account_id = $1 AND ` + listedOrder + `
	AND seq > (SELECT seq FROM orders WHERE id = $4 AND account_id = $1) ORDER BY seq LIMIT $3`
	sqlOrderCursor = `SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1 AND account_id = $2)`
	// NULLS FIRST: an order in "processing" without a start time is the
	// most suspicious, and SQLite sorts NULL first too.
	sqlStaleOrders = `SELECT ` + orderCols + ` FROM orders WHERE status = 'processing'
	AND (processing_since IS NULL OR processing_since < $1) ORDER BY processing_since NULLS FIRST, seq`
)

// CreateOrder inserts o and authzs in one transaction (all Versions 1).
// Empty IDs and a zero CreatedAt are filled in; every authorization is tied
// to o (OrderID, and AccountID if empty); an empty o.AuthzIDs becomes the
// authorizations' IDs. A non-empty AuthzIDs is kept as given, since an order
// may reuse authorizations created by earlier orders. ErrNotFound if the
// account does not exist.
func (s *Store) CreateOrder(ctx context.Context, o *core.Order, authzs []*core.Authorization) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	// Work on copies so that a failed transaction leaves the caller's
	// structs untouched.
	oc := *o
	if oc.ID == "" {
		oc.ID = core.NewID()
	}
	oc.CreatedAt = nowOr(oc.CreatedAt)
	ac := make([]core.Authorization, len(authzs))
	fillIDs := len(oc.AuthzIDs) == 0
	for i, a := range authzs {
		ac[i] = *a
		if ac[i].ID == "" {
			ac[i].ID = core.NewID()
		}
		if ac[i].AccountID == "" {
			ac[i].AccountID = oc.AccountID
		}
		ac[i].OrderID = oc.ID
		if fillIDs {
			oc.AuthzIDs = append(oc.AuthzIDs, ac[i].ID)
		}
	}
	args, err := orderArgs(&oc)
	if err != nil {
		return err
	}
	// One batch: the order and all its authorizations reach the server in
	// a single round trip inside the transaction.
	var batch pgx.Batch
	batch.Queue(sqlInsertOrder, append([]any{oc.ID, oc.AccountID}, args...)...)
	for i := range ac {
		a, err := authzInsertArgs(&ac[i])
		if err != nil {
			return err
		}
		batch.Queue(sqlInsertAuthz, a...)
	}
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return mapErr(ctx, tx.SendBatch(ctx, &batch).Close())
	})
	if err != nil {
		return err
	}
	oc.Version = 1
	*o = oc
	for i, a := range authzs {
		ac[i].Version = 1
		*a = ac[i]
	}
	return nil
}

// orderArgs returns the mutable columns of o, in the order shared by the
// INSERT (after id and account_id) and the UPDATE.
func orderArgs(o *core.Order) ([]any, error) {
	ids, err := jsonb(orEmpty(o.Identifiers))
	if err != nil {
		return nil, err
	}
	authzIDs, err := jsonb(orEmpty(o.AuthzIDs))
	if err != nil {
		return nil, err
	}
	problem, err := errorJSON(o.Error)
	if err != nil {
		return nil, err
	}
	return []any{o.Provisioner, string(o.Status), ts(o.Expires), ids, ts(o.NotBefore),
		ts(o.NotAfter), authzIDs, o.CertificateID, problem, ts(o.ProcessingSince),
		ts(o.CreatedAt)}, nil
}

// GetOrder returns the order with the given ID.
func (s *Store) GetOrder(ctx context.Context, id string) (*core.Order, error) {
	if !validKey(id) {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	o, err := scanOrder(s.pool.QueryRow(ctx, sqlOrderByID, id))
	return o, mapErr(ctx, err)
}

// UpdateOrder writes every field but ID, AccountID and CreatedAt if
// o.Version is current, then increments o.Version.
func (s *Store) UpdateOrder(ctx context.Context, o *core.Order) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return updateOrder(ctx, s.pool, o)
}

// querier is what updateOrder needs from a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func updateOrder(ctx context.Context, q querier, o *core.Order) error {
	if !validKey(o.ID) {
		return fmt.Errorf("%w: order %q", store.ErrNotFound, o.ID)
	}
	args, err := orderArgs(o)
	if err != nil {
		return err
	}
	args = append(args[:len(args)-1], o.ID, o.Version) // created_at is immutable
	var updated, exists bool
	if err := q.QueryRow(ctx, sqlUpdateOrder, args...).Scan(&updated, &exists); err != nil {
		return mapErr(ctx, err)
	}
	if !updated {
		return versionedMiss(exists, "order", o.ID)
	}
	o.Version++
	return nil
}

// listedOrder is the condition, on the orders table, of an order that
// ListOrderIDs lists at now ($2): not invalid, and not pending or ready
// with an expiry at or before now. It mirrors the ACME layer's rule
// (expired when !now.Before(expires)); comparing now truncated to the
// microsecond with the stored (truncated) expiry gives the same answer as
// comparing the full times. It is a filter on the rows of the
// (account_id, seq) index scan, which keeps its order and its LIMIT.
const listedOrder = `status <> 'invalid'
	AND (status NOT IN ('pending', 'ready') OR expires IS NULL OR expires > $2)`

// ListOrderIDs pages through an account's orders in creation order,
// leaving out those that are invalid at now. The cursor is the last ID of
// the previous page; it need not be listed any more. Orders created
// concurrently on several nodes are listed in the order their sequence
// numbers were drawn, which may differ from the order in which they were
// committed.
func (s *Store) ListOrderIDs(ctx context.Context, accountID, cursor string, limit int, now time.Time) ([]string, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("postgres: ListOrderIDs: limit %d < 1", limit)
	}
	if !validKey(accountID) {
		return nil, "", nil // no such account, so no orders
	}
	if !validKey(cursor) {
		return nil, "", fmt.Errorf("%w: cursor", store.ErrNotFound)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var (
		rows pgx.Rows
		err  error
	)
	// One extra row tells whether there is a next page.
	if cursor == "" {
		rows, err = s.pool.Query(ctx, sqlOrdersFirst, accountID, listNow(now), limit+1)
	} else {
		rows, err = s.pool.Query(ctx, sqlOrdersAfter, accountID, listNow(now), limit+1, cursor)
	}
	if err != nil {
		return nil, "", mapErr(ctx, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, "", mapErr(ctx, err)
	}
	if len(ids) == 0 && cursor != "" {
		// Tell an exhausted listing from a bogus cursor.
		var known bool
		if err := s.pool.QueryRow(ctx, sqlOrderCursor, cursor, accountID).Scan(&known); err != nil {
			return nil, "", mapErr(ctx, err)
		}
		if !known {
			return nil, "", fmt.Errorf("%w: cursor %q", store.ErrNotFound, cursor)
		}
	}
	if len(ids) > limit {
		return ids[:limit], ids[limit-1], nil
	}
	return ids, "", nil
}

// listNow encodes ListOrderIDs' now like ts does an expiry (UTC,
// truncated to the microsecond), but never as NULL: the zero time is a
// real instant here (before every expiry), and NULL would leave out every
// pending order with an expiry.
func listNow(now time.Time) time.Time {
	return now.UTC().Truncate(time.Microsecond)
}

// ListStaleProcessingOrders returns orders in "processing" since before the
// given time, oldest first. An order in "processing" without a
// ProcessingSince is always included: it can only come from a bug or an
// interrupted write, and recovery is where it must end up.
func (s *Store) ListStaleProcessingOrders(ctx context.Context, before time.Time) ([]*core.Order, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlStaleOrders, ts(before))
	return collect(ctx, rows, err, scanOrder)
}

// scanOrder reads one order row; errors are left for the caller to map with
// its context.
func scanOrder(row scanner) (*core.Order, error) {
	var (
		o                                  core.Order
		ids, authzIDs, problem             []byte
		expires, nb, na, processing, crtAt *time.Time
	)
	err := row.Scan(&o.ID, &o.AccountID, &o.Provisioner, &o.Status, &expires, &ids, &nb, &na, &authzIDs,
		&o.CertificateID, &problem, &processing, &crtAt, &o.Version)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(ids, &o.Identifiers); err != nil {
		return nil, err
	}
	if err := fromJSON(authzIDs, &o.AuthzIDs); err != nil {
		return nil, err
	}
	if len(o.Identifiers) == 0 {
		o.Identifiers = nil
	}
	if len(o.AuthzIDs) == 0 {
		o.AuthzIDs = nil
	}
	if o.Error, err = errorFrom(problem); err != nil {
		return nil, err
	}
	o.Expires, o.NotBefore, o.NotAfter = fromTS(expires), fromTS(nb), fromTS(na)
	o.ProcessingSince, o.CreatedAt = fromTS(processing), fromTS(crtAt)
	return &o, nil
}
