package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/policyca/policyca/core"
)

// ts encodes t for a timestamptz column: UTC, truncated to the microsecond
// (PostgreSQL's precision; truncating here rather than leaving the driver
// to do it makes the rounding rule ours and the same as SQLite's), and the
// zero time as NULL so that "absent" never collides with a real instant.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// fromTS decodes a nullable timestamptz. pgx returns times in the local
// zone; the store contract says UTC.
func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
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

// validKey reports whether s can be stored in a text column. PostgreSQL
// refuses NUL bytes and invalid UTF-8 with an error; a lookup by such a key
// (an ID taken from a URL, say) can only be "not found", and reporting it as
// a database error would turn a client's garbage into a serverInternal.
func validKey(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// jsonb marshals v for a jsonb column. nil slices become "[]" so that
// columns stay JSON arrays for ad-hoc queries.
func jsonb(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode: %w", err)
	}
	return replaceNULEscapes(b), nil
}

// replaceNULEscapes replaces every \u0000 escape in the JSON text b with
// \ufffd. jsonb cannot hold U+0000 and refuses the whole value; a NUL can
// reach us inside an error detail quoting what a client's server sent, and
// losing that one character is better than failing to record the error.
// (encoding/json already turns invalid UTF-8 into U+FFFD, so this is the
// only JSON string jsonb refuses.) Escapes are walked in sequence so that
// an escaped backslash followed by "u0000" is left alone.
func replaceNULEscapes(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return b
	}
	out := bytes.Clone(b)
	for i := 0; i < len(out)-1; i++ {
		if out[i] != '\\' {
			continue
		}
		if out[i+1] == 'u' && i+6 <= len(out) && string(out[i+2:i+6]) == "0000" {
			copy(out[i+2:i+6], "fffd")
			i += 5
			continue
		}
		i++ // skip the escaped character, which may be a backslash
	}
	return out
}

func fromJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("postgres: decode stored JSON: %w", err)
	}
	return nil
}

// errorJSON encodes an optional problem; nil stays NULL.
func errorJSON(e *core.Error) (any, error) {
	if e == nil {
		return nil, nil
	}
	return jsonb(e)
}

func errorFrom(b []byte) (*core.Error, error) {
	if b == nil {
		return nil, nil
	}
	var e core.Error
	if err := fromJSON(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// challengeRow is the stored form of a challenge. It is separate from
// core.Challenge so that renaming a Go field cannot silently change (and
// break reading of) data already stored. Validated is RFC 3339 text with
// microseconds, readable in ad-hoc queries.
type challengeRow struct {
	ID        string      `json:"id"`
	Type      string      `json:"type"`
	Token     string      `json:"token"`
	Status    core.Status `json:"status"`
	Validated string      `json:"validated,omitempty"` // absent = never
	Started   string      `json:"started,omitempty"`   // RFC 3339; absent = never started (or by an older version)
	Error     *core.Error `json:"error,omitempty"`
}

func challengesJSON(chs []core.Challenge) ([]byte, error) {
	rows := make([]challengeRow, len(chs))
	for i, c := range chs {
		rows[i] = challengeRow{ID: c.ID, Type: c.Type, Token: c.Token, Status: c.Status, Error: c.Error}
		rows[i].Validated, rows[i].Started = rfc3339Micro(c.Validated), rfc3339Micro(c.Started)
	}
	return jsonb(rows)
}

func challengesFrom(b []byte) ([]core.Challenge, error) {
	var rows []challengeRow
	if err := fromJSON(b, &rows); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	chs := make([]core.Challenge, len(rows))
	for i, r := range rows {
		chs[i] = core.Challenge{ID: r.ID, Type: r.Type, Token: r.Token, Status: r.Status, Error: r.Error}
		var err error
		if chs[i].Validated, err = fromRFC3339Micro(r.Validated); err != nil {
			return nil, err
		}
		if chs[i].Started, err = fromRFC3339Micro(r.Started); err != nil {
			return nil, err
		}
	}
	return chs, nil
}

// rfc3339Micro is t as stored in JSON columns, "" for the zero time.
func rfc3339Micro(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// fromRFC3339Micro is the inverse of rfc3339Micro.
func fromRFC3339Micro(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres: decode stored challenge time: %w", err)
	}
	return t.UTC(), nil
}

// scanner is satisfied by pgx.Row and pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect returns every row of a query's result, read with scan
// (pgx.AppendRows, which closes rows); nil when there is none. err is the
// query's error; errors are mapped with ctx.
func collect[T any](ctx context.Context, rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	out, err := pgx.AppendRows([]T(nil), rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	return out, nil
}
