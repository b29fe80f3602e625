package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/policyca/policyca/core"
)

// toMicros encodes t as unix microseconds UTC; the zero time is NULL so that
// "absent" never collides with a real instant.
func toMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nowOr returns t, or the current time if t is zero.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// jsonText marshals v for a JSON column. nil slices become "[]" so that
// columns stay valid JSON arrays for ad-hoc queries.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sqlite: encode: %w", err)
	}
	return string(b), nil
}

func fromJSON(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("sqlite: decode stored JSON: %w", err)
	}
	return nil
}

// errorText encodes an optional problem; nil stays NULL.
func errorText(e *core.Error) (any, error) {
	if e == nil {
		return nil, nil
	}
	return jsonText(e)
}

func errorFrom(s sql.NullString) (*core.Error, error) {
	if !s.Valid {
		return nil, nil
	}
	var e core.Error
	if err := fromJSON(s.String, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// challengeRow is the stored form of a challenge. It is separate from
// core.Challenge so that renaming a Go field cannot silently change (and
// break reading of) data already on disk.
type challengeRow struct {
	ID        string      `json:"id"`
	Type      string      `json:"type"`
	Token     string      `json:"token"`
	Status    core.Status `json:"status"`
	Validated *int64      `json:"validated,omitempty"` // unix microseconds; absent = never
	Started   *int64      `json:"started,omitempty"`   // unix microseconds; absent = never started (or by an older version)
	Error     *core.Error `json:"error,omitempty"`
}

func challengesText(chs []core.Challenge) (string, error) {
	rows := make([]challengeRow, len(chs))
	for i, c := range chs {
		rows[i] = challengeRow{ID: c.ID, Type: c.Type, Token: c.Token, Status: c.Status, Error: c.Error}
		rows[i].Validated, rows[i].Started = micros(c.Validated), micros(c.Started)
	}
	return jsonText(rows)
}

func challengesFrom(s string) ([]core.Challenge, error) {
	var rows []challengeRow
	if err := fromJSON(s, &rows); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	chs := make([]core.Challenge, len(rows))
	for i, r := range rows {
		chs[i] = core.Challenge{ID: r.ID, Type: r.Type, Token: r.Token, Status: r.Status, Error: r.Error}
		chs[i].Validated, chs[i].Started = fromMicrosPtr(r.Validated), fromMicrosPtr(r.Started)
	}
	return chs, nil
}

// micros is t in unix microseconds, nil for the zero time.
func micros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	us := t.UnixMicro()
	return &us
}

// fromMicrosPtr is the inverse of micros.
func fromMicrosPtr(us *int64) time.Time {
	if us == nil {
		return time.Time{}
	}
	return time.UnixMicro(*us).UTC()
}

// scanner is satisfied by *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect returns every row of a query's result, read with scan; nil when
// there is none. err is the query's error; rows are closed.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}
