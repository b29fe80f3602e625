package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
)

const decisionCols = `id, time, stage, provisioner, account_id, eab_key_id, identifiers, allow, violations, lifetime, revision, eval_time, error, ra, node`

const sqlInsertDecision = `INSERT INTO decisions (` + decisionCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// Limits of ListDecisions: the default keeps a CLI listing readable, the
// maximum keeps one call from loading an unbounded log into memory.
const (
	defaultDecisionLimit = 100
	maxDecisionLimit     = 10000
)

// RecordDecisions appends recs to the decision log in one transaction (one
// round trip for all of them). Empty IDs and zero Times are filled in and
// written back on success.
func (s *Store) RecordDecisions(ctx context.Context, recs []*core.DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	ids := make([]string, len(recs))
	times := make([]time.Time, len(recs))
	var batch pgx.Batch
	for i, r := range recs {
		ids[i], times[i] = r.ID, nowOr(r.Time)
		if ids[i] == "" {
			ids[i] = core.NewID()
		}
		idents, err := jsonb(orEmpty(r.Identifiers))
		if err != nil {
			return err
		}
		viols, err := jsonb(orEmpty(r.Violations))
		if err != nil {
			return err
		}
		batch.Queue(sqlInsertDecision, ids[i], ts(times[i]), r.Stage, r.Provisioner, r.AccountID, r.EABKeyID,
			idents, r.Allow, viols, int64(r.Lifetime), r.Revision, int64(r.EvalTime), r.Error, r.RA, r.Node)
	}
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return mapErr(ctx, tx.SendBatch(ctx, &batch).Close())
	})
	if err != nil {
		return err
	}
	for i, r := range recs {
		r.ID, r.Time = ids[i], times[i]
	}
	return nil
}

// ListDecisions returns the entries matching f, newest first. A Limit
// below 1 means the default (100); above 10000 it is capped. Each
// combination of filters is its own statement text, so each gets its own
// cached prepared statement and a plan that uses the matching index.
func (s *Store) ListDecisions(ctx context.Context, f core.DecisionFilter) ([]*core.DecisionRecord, error) {
	if !validKey(f.AccountID) {
		return nil, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	q := `SELECT ` + decisionCols + ` FROM decisions WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.DeniedOnly {
		q += ` AND NOT allow`
	}
	if !f.Since.IsZero() {
		// Rounded up: entries are stored to the microsecond, and one
		// before a sub-microsecond Since must not be listed.
		since := f.Since.Truncate(time.Microsecond)
		if since.Before(f.Since) {
			since = since.Add(time.Microsecond)
		}
		q += ` AND time >= ` + arg(ts(since))
	}
	if f.AccountID != "" {
		q += ` AND account_id = ` + arg(f.AccountID)
	}
	q += ` ORDER BY time DESC, seq DESC LIMIT ` + arg(decisionLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, args...)
	return collect(ctx, rows, err, scanDecision)
}

// decisionLimit applies the default and the cap to a requested limit.
func decisionLimit(n int) int {
	switch {
	case n < 1:
		return defaultDecisionLimit
	case n > maxDecisionLimit:
		return maxDecisionLimit
	}
	return n
}

// scanDecision reads one log entry; errors are left for the caller to map
// with its context.
func scanDecision(row scanner) (*core.DecisionRecord, error) {
	var (
		r                  core.DecisionRecord
		at                 *time.Time
		idents, viols      []byte
		lifetime, evalTime int64
	)
	err := row.Scan(&r.ID, &at, &r.Stage, &r.Provisioner, &r.AccountID, &r.EABKeyID, &idents, &r.Allow, &viols,
		&lifetime, &r.Revision, &evalTime, &r.Error, &r.RA, &r.Node)
	if err != nil {
		return nil, err
	}
	if err := fromJSON(idents, &r.Identifiers); err != nil {
		return nil, err
	}
	if err := fromJSON(viols, &r.Violations); err != nil {
		return nil, err
	}
	if len(r.Identifiers) == 0 {
		r.Identifiers = nil
	}
	if len(r.Violations) == 0 {
		r.Violations = nil
	}
	r.Time = fromTS(at)
	r.Lifetime, r.EvalTime = time.Duration(lifetime), time.Duration(evalTime)
	return &r, nil
}
