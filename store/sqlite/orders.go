package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// CreateOrder inserts o and authzs in one transaction (all Versions 1).
// Empty IDs and a zero CreatedAt are filled in; every authorization is tied
// to o (OrderID, and AccountID if empty); an empty o.AuthzIDs becomes the
// authorizations' IDs. A non-empty AuthzIDs is kept as given, since an order
// may reuse authorizations created by earlier orders. ErrNotFound if the
// account does not exist.
func (s *Store) CreateOrder(ctx context.Context, o *core.Order, authzs []*core.Authorization) error {
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
	authzArgs := make([][]any, len(ac))
	for i := range ac {
		if authzArgs[i], err = authzInsertArgs(&ac[i]); err != nil {
			return err
		}
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.insOrder).ExecContext(ctx,
			append([]any{oc.ID, oc.AccountID}, args...)...); err != nil {
			return mapErr(err)
		}
		ins := tx.StmtContext(ctx, s.insAuthz)
		for _, a := range authzArgs {
			if _, err := ins.ExecContext(ctx, a...); err != nil {
				return mapErr(err)
			}
		}
		return nil
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
	ids, err := jsonText(orEmpty(o.Identifiers))
	if err != nil {
		return nil, err
	}
	authzIDs, err := jsonText(orEmpty(o.AuthzIDs))
	if err != nil {
		return nil, err
	}
	problem, err := errorText(o.Error)
	if err != nil {
		return nil, err
	}
	return []any{o.Provisioner, string(o.Status), toMicros(o.Expires), ids, toMicros(o.NotBefore),
		toMicros(o.NotAfter), authzIDs, o.CertificateID, problem, toMicros(o.ProcessingSince),
		toMicros(o.CreatedAt)}, nil
}

func authzInsertArgs(a *core.Authorization) ([]any, error) {
	chs, err := challengesText(a.Challenges)
	if err != nil {
		return nil, err
	}
	return []any{a.ID, a.AccountID, a.OrderID, string(a.Identifier.Type), a.Identifier.Value, a.Wildcard,
		string(a.Status), toMicros(a.Expires), chs}, nil
}

// GetOrder returns the order with the given ID.
func (s *Store) GetOrder(ctx context.Context, id string) (*core.Order, error) {
	return scanOrder(s.orderByID.QueryRowContext(ctx, id))
}

// UpdateOrder writes every field but ID, AccountID and CreatedAt if
// o.Version is current, then increments o.Version.
func (s *Store) UpdateOrder(ctx context.Context, o *core.Order) error {
	args, err := orderUpdateArgs(o)
	if err != nil {
		return err
	}
	id := o.ID
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return versioned(ctx, tx, s.updOrder, "orders", id, args)
	})
	if err != nil {
		return err
	}
	o.Version++
	return nil
}

// orderUpdateArgs returns the arguments of the versioned UPDATE of o.
func orderUpdateArgs(o *core.Order) ([]any, error) {
	args, err := orderArgs(o)
	if err != nil {
		return nil, err
	}
	return append(args[:len(args)-1], o.ID, o.Version), nil // created_at is immutable
}

// listedOrder is the condition, on the orders table, of an order that
// ListOrderIDs lists at now (?2, unix microseconds): not invalid, and not
// pending or ready with an expiry at or before now. It mirrors the ACME
// layer's rule (expired when !now.Before(expires)); comparing now
// truncated to the microsecond with the stored (truncated) expiry gives
// the same answer as comparing the full times.
const listedOrder = `status <> 'invalid'
	AND (status NOT IN ('pending', 'ready') OR expires IS NULL OR expires > ?2)`

// ListOrderIDs pages through an account's orders in creation order,
// leaving out those that are invalid at now. The cursor is the last ID of
// the previous page; it need not be listed any more.
func (s *Store) ListOrderIDs(ctx context.Context, accountID, cursor string, limit int, now time.Time) ([]string, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("sqlite: ListOrderIDs: limit %d < 1", limit)
	}
	var (
		rows *sql.Rows
		err  error
	)
	// One extra row tells whether there is a next page.
	if cursor == "" {
		rows, err = s.ordersFirst.QueryContext(ctx, accountID, now.UnixMicro(), limit+1)
	} else {
		rows, err = s.ordersAfter.QueryContext(ctx, accountID, now.UnixMicro(), limit+1, cursor)
	}
	if err != nil {
		return nil, "", mapErr(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, "", mapErr(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err)
	}
	if len(ids) == 0 && cursor != "" {
		// Tell an exhausted listing from a bogus cursor.
		var one int
		if err := s.orderCursor.QueryRowContext(ctx, cursor, accountID).Scan(&one); err != nil {
			return nil, "", mapErr(err)
		}
	}
	if len(ids) > limit {
		return ids[:limit], ids[limit-1], nil
	}
	return ids, "", nil
}

// ListStaleProcessingOrders returns orders in "processing" since before the
// given time, oldest first. An order in "processing" without a
// ProcessingSince is always included: it can only come from a bug or an
// interrupted write, and recovery is where it must end up.
func (s *Store) ListStaleProcessingOrders(ctx context.Context, before time.Time) ([]*core.Order, error) {
	rows, err := s.staleOrders.QueryContext(ctx, before.UnixMicro())
	return collect(rows, err, scanOrder)
}

func scanOrder(row scanner) (*core.Order, error) {
	var (
		o                                  core.Order
		ids, authzIDs                      string
		problem                            sql.NullString
		expires, nb, na, processing, crtAt sql.NullInt64
	)
	err := row.Scan(&o.ID, &o.AccountID, &o.Provisioner, &o.Status, &expires, &ids, &nb, &na, &authzIDs,
		&o.CertificateID, &problem, &processing, &crtAt, &o.Version)
	if err != nil {
		return nil, mapErr(err)
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
	o.Expires, o.NotBefore, o.NotAfter = fromMicros(expires), fromMicros(nb), fromMicros(na)
	o.ProcessingSince, o.CreatedAt = fromMicros(processing), fromMicros(crtAt)
	return &o, nil
}

// GetAuthorization returns the authorization with the given ID.
func (s *Store) GetAuthorization(ctx context.Context, id string) (*core.Authorization, error) {
	return scanAuthz(s.authzByID.QueryRowContext(ctx, id))
}

// GetAuthorizations returns the given authorizations in the given order
// (repeating any repeated ID), in one query. ErrNotFound if any is missing.
func (s *Store) GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error) {
	if len(ids) == 0 {
		return []*core.Authorization{}, nil
	}
	list, err := jsonText(ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.authzByIDs.QueryContext(ctx, list)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	byID := make(map[string]*core.Authorization, len(ids))
	for rows.Next() {
		a, err := scanAuthz(rows)
		if err != nil {
			return nil, err
		}
		byID[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	out := make([]*core.Authorization, len(ids))
	for i, id := range ids {
		a, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("%w: authorization %q", store.ErrNotFound, id)
		}
		out[i] = a
	}
	return dedupe(out), nil
}

// dedupe gives each result slot its own struct, so that a caller changing
// one repeated authorization does not silently change the other.
func dedupe(as []*core.Authorization) []*core.Authorization {
	seen := make(map[*core.Authorization]bool, len(as))
	for i, a := range as {
		if seen[a] {
			c := *a
			c.Challenges = slices.Clone(a.Challenges)
			as[i] = &c
			continue
		}
		seen[a] = true
	}
	return as
}

// UpdateAuthorization writes status, identifier, expiry and challenges if
// a.Version is current, then increments a.Version.
func (s *Store) UpdateAuthorization(ctx context.Context, a *core.Authorization) error {
	chs, err := challengesText(a.Challenges)
	if err != nil {
		return err
	}
	args := []any{string(a.Identifier.Type), a.Identifier.Value, a.Wildcard, string(a.Status), toMicros(a.Expires),
		chs, a.ID, a.Version}
	id := a.ID
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return versioned(ctx, tx, s.updAuthz, "authorizations", id, args)
	})
	if err != nil {
		return err
	}
	a.Version++
	return nil
}

func scanAuthz(row scanner) (*core.Authorization, error) {
	var (
		a       core.Authorization
		chs     string
		expires sql.NullInt64
	)
	err := row.Scan(&a.ID, &a.AccountID, &a.OrderID, &a.Identifier.Type, &a.Identifier.Value, &a.Wildcard,
		&a.Status, &expires, &chs, &a.Version)
	if err != nil {
		return nil, mapErr(err)
	}
	if a.Challenges, err = challengesFrom(chs); err != nil {
		return nil, err
	}
	a.Expires = fromMicros(expires)
	return &a, nil
}

// sqlHoldsValidAuthz finds one valid authorization of an account for an
// identifier (index authorizations_account_identifier).
const sqlHoldsValidAuthz = `SELECT 1 FROM authorizations
WHERE account_id = ? AND identifier_type = ? AND identifier_value = ? AND wildcard = ? AND status = ? AND expires > ?
LIMIT 1`

// HoldsValidAuthorization reports whether the account has a valid,
// unexpired authorization for id with this wildcard flag.
func (s *Store) HoldsValidAuthorization(ctx context.Context, accountID string, id core.Identifier, wildcard bool, at time.Time) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, sqlHoldsValidAuthz, accountID, string(id.Type), id.Value, wildcard, string(core.StatusValid), at.UnixMicro()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, mapErr(err)
	}
	return true, nil
}
