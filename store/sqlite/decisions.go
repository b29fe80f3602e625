package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/policyca/policyca/core"
)

// Limits of ListDecisions: the default keeps a CLI listing readable, the
// maximum keeps one call from loading an unbounded log into memory.
const (
	defaultDecisionLimit = 100
	maxDecisionLimit     = 10000
)

// RecordDecisions appends recs to the decision log in one transaction.
// Empty IDs and zero Times are filled in and written back on success.
func (s *Store) RecordDecisions(ctx context.Context, recs []*core.DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	ids := make([]string, len(recs))
	times := make([]time.Time, len(recs))
	args := make([][]any, len(recs))
	for i, r := range recs {
		ids[i], times[i] = r.ID, nowOr(r.Time)
		if ids[i] == "" {
			ids[i] = core.NewID()
		}
		idents, err := jsonText(orEmpty(r.Identifiers))
		if err != nil {
			return err
		}
		viols, err := jsonText(orEmpty(r.Violations))
		if err != nil {
			return err
		}
		args[i] = []any{ids[i], times[i].UnixMicro(), r.Stage, r.Provisioner, r.AccountID, r.EABKeyID, idents,
			r.Allow, viols, int64(r.Lifetime), r.Revision, int64(r.EvalTime), r.Error, r.RA, r.Node}
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, s.insDec)
		for _, a := range args {
			if _, err := ins.ExecContext(ctx, a...); err != nil {
				return mapErr(err)
			}
		}
		return nil
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
// below 1 means the default (100); above 10000 it is capped.
func (s *Store) ListDecisions(ctx context.Context, f core.DecisionFilter) ([]*core.DecisionRecord, error) {
	var (
		which int
		args  []any
	)
	if f.DeniedOnly {
		which |= decDenied
	}
	if !f.Since.IsZero() {
		which |= decSince
		// Rounded up: entries are stored to the microsecond, and one
		// before a sub-microsecond Since must not be listed.
		since := f.Since.Truncate(time.Microsecond)
		if since.Before(f.Since) {
			since = since.Add(time.Microsecond)
		}
		args = append(args, since.UnixMicro())
	}
	if f.AccountID != "" {
		which |= decAccount
		args = append(args, f.AccountID)
	}
	rows, err := s.decisions[which].QueryContext(ctx, append(args, decisionLimit(f.Limit))...)
	return collect(rows, err, scanDecision)
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

func scanDecision(row scanner) (*core.DecisionRecord, error) {
	var (
		r                  core.DecisionRecord
		at                 sql.NullInt64
		idents, viols      string
		lifetime, evalTime int64
	)
	err := row.Scan(&r.ID, &at, &r.Stage, &r.Provisioner, &r.AccountID, &r.EABKeyID, &idents, &r.Allow, &viols,
		&lifetime, &r.Revision, &evalTime, &r.Error, &r.RA, &r.Node)
	if err != nil {
		return nil, mapErr(err)
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
	r.Time = fromMicros(at)
	r.Lifetime, r.EvalTime = time.Duration(lifetime), time.Duration(evalTime)
	return &r, nil
}
