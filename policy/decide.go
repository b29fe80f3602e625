package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/policyca/policyca/core"
)

// Decision is the answer to one Input.
type Decision struct {
	Allow      bool
	Violations []Violation
	// Lifetime caps the certificate's lifetime (0 = the policy sets none).
	Lifetime time.Duration
	// Revision is the bundle's manifest revision; ID identifies this
	// decision in the decision log and on the certificate.
	Revision string
	ID       string
	EvalTime time.Duration
}

// Violation is one reason a request is refused.
type Violation struct {
	// Type is the identifier type (dns, ip, email, uri, cn) or the kind of
	// check (key, provisioner, lifetime…) for violations not about a name.
	Type string `json:"type"`
	// Value is the refused name, or what the check refused.
	Value string `json:"value"`
	// Layer is authority, provisioner, account, or what a custom rule says.
	Layer string `json:"layer"`
	// Reason is shown to the client, e.g.
	// "x.prod.corp.com: not allowed by provisioner 'dev'".
	Reason string `json:"reason"`
}

// DecisionRecord is one entry of the decision log.
type DecisionRecord struct {
	Time        time.Time
	Stage       Stage
	Provisioner string
	AccountID   string
	Identifiers []core.Identifier
	Allow       bool
	Violations  []Violation
	Revision    string
	EvalTime    time.Duration
	DecisionID  string
	RA          string
	Node        string
	// Error is set when the evaluation failed (and so denied).
	Error string
}

// Core is r as the store keeps it.
func (r DecisionRecord) Core() *core.DecisionRecord {
	rec := &core.DecisionRecord{
		ID: r.DecisionID, Time: r.Time, Stage: string(r.Stage), Provisioner: r.Provisioner, AccountID: r.AccountID,
		Identifiers: r.Identifiers, Allow: r.Allow, Revision: r.Revision, EvalTime: r.EvalTime, Error: r.Error,
		RA: r.RA, Node: r.Node,
	}
	for _, v := range r.Violations {
		rec.Violations = append(rec.Violations, core.Violation{Type: v.Type, Value: v.Value, Layer: v.Layer, Reason: v.Reason})
	}
	return rec
}

// DecisionSink stores decision records. Decide fails closed on a sink
// error: a decision that would have allowed is turned into a denial with an
// error, because an issuance that cannot be accounted for must not happen.
// Denials are returned as they are (and the sink error logged): nothing is
// issued either way, and the client deserves the real reason.
type DecisionSink interface {
	RecordDecision(ctx context.Context, r DecisionRecord) error
}

// ErrNoBundle is returned by Decide before any bundle has loaded.
var ErrNoBundle = errors.New("policy: no bundle loaded")

// Decide evaluates the loaded bundle on in. It fails closed: on any error
// (evaluation error, timeout, an undefined or malformed decision, a
// decision-log failure on an allow) it returns the error and a Decision
// with Allow false, whose ID and Revision are still set for the logs.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	now := e.now()
	if in.Time.IsZero() {
		in.Time = now
	}
	d := Decision{ID: NewDecisionID()}
	c := e.cur.Load()
	if c == nil {
		return d, e.finish(ctx, in, d, ErrNoBundle)
	}
	d.Revision = c.revision
	v, complete, err := in.valueCandidates(now, &e.policies)
	if err != nil {
		return d, e.finish(ctx, in, d, err)
	}
	start := time.Now()
	d2, err := c.eval(ctx, c.query(complete), v, in.Time, e.evalTimeout)
	d.EvalTime = time.Since(start)
	if err != nil {
		return d, e.finish(ctx, in, d, err)
	}
	d.Allow, d.Violations, d.Lifetime = d2.Allow, d2.Violations, d2.Lifetime
	if err := e.finish(ctx, in, d, nil); err != nil {
		// The decision log failed on an allow: fail closed.
		d.Allow = false
		return d, err
	}
	return d, nil
}

// DecideDocument evaluates a raw input document (as `policyca policy eval`
// reads it from a file). The document is passed as is.
func (e *Engine) DecideDocument(ctx context.Context, doc []byte) (Decision, error) {
	d := Decision{ID: NewDecisionID()}
	c := e.cur.Load()
	if c == nil {
		return d, ErrNoBundle
	}
	d.Revision = c.revision
	v, err := ast.ValueFromReader(bytes.NewReader(doc))
	if err != nil {
		return d, fmt.Errorf("policy: input document: %w", err)
	}
	start := time.Now()
	d2, err := c.eval(ctx, &c.pq, v, e.now(), e.evalTimeout)
	d.EvalTime = time.Since(start)
	if err != nil {
		return d, err
	}
	d.Allow, d.Violations, d.Lifetime = d2.Allow, d2.Violations, d2.Lifetime
	return d, nil
}

// finish logs, records and reports a decision; it returns the error Decide
// returns.
func (e *Engine) finish(ctx context.Context, in Input, d Decision, evalErr error) error {
	err := evalErr
	if err != nil {
		err = fmt.Errorf("policy: %w", err)
	}
	if e.sink != nil {
		rec := DecisionRecord{
			Time: in.Time, Stage: in.Stage, Provisioner: in.Provisioner.Name, AccountID: in.Account.ID,
			Identifiers: in.Identifiers, Allow: d.Allow && err == nil, Violations: d.Violations,
			Revision: d.Revision, EvalTime: d.EvalTime, DecisionID: d.ID, RA: in.RA, Node: e.node,
		}
		if err != nil {
			rec.Error = err.Error()
		}
		if serr := e.sink.RecordDecision(ctx, rec); serr != nil {
			e.log.ErrorContext(ctx, "policy decision log failed", "decision_id", d.ID, "err", serr)
			if err == nil && d.Allow {
				err = fmt.Errorf("policy: decision log: %w", serr)
			}
		}
	}
	if e.onDecision != nil {
		e.onDecision(d, err)
	}
	if err != nil {
		e.log.WarnContext(ctx, "policy evaluation failed", "stage", in.Stage, "provisioner", in.Provisioner.Name,
			"account", in.Account.ID, "revision", d.Revision, "decision_id", d.ID, "err", err)
	}
	return err
}

// query is the prepared query for an input: the one with the name rules
// in Go when the bundle allows it and the input has the candidate
// patterns of every name (see names.go).
func (c *compiled) query(candidatesComplete bool) *rego.PreparedEvalQuery {
	if c.fast != nil && candidatesComplete {
		return c.fast
	}
	return &c.pq
}

// eval runs the prepared query pq of c and validates its result.
func (c *compiled) eval(ctx context.Context, pq *rego.PreparedEvalQuery, input ast.Value, now time.Time, timeout time.Duration) (Decision, error) {
	// OPA would otherwise start a goroutine per evaluation to watch ctx;
	// a callback on ctx and a timer do the same without one.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	var timedOut atomic.Bool
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			cancel.Cancel()
		})
		defer t.Stop()
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(now), rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(noMetrics), rego.EvalGenerateJSON(asTerm))
	if err != nil {
		if timedOut.Load() {
			return Decision{}, fmt.Errorf("evaluating %s: timed out after %v: %w", DecisionQuery, timeout, err)
		}
		return Decision{}, fmt.Errorf("evaluating %s: %w", DecisionQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, fmt.Errorf("%s is undefined", DecisionQuery)
	}
	if len(rs) > 1 {
		return Decision{}, fmt.Errorf("%s has %d results", DecisionQuery, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{}, fmt.Errorf("%s: result is a %T, not a term", DecisionQuery, rs[0].Expressions[0].Value)
	}
	return parseDecision(t.Value)
}

// noMetrics is given to every evaluation: OPA would otherwise allocate a
// set of timers per evaluation that nothing reads.
var noMetrics = metrics.NoOp()

// asTerm makes OPA hand back its results as AST terms, which
// parseDecision reads, instead of converting them to Go values first.
func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// parseDecision validates the decision document strictly: whatever is not
// exactly the documented shape is an error, and errors deny. It reads the
// AST value OPA computed (see asTerm), without a conversion to Go values.
func parseDecision(x ast.Value) (Decision, error) {
	var d Decision
	m, ok := x.(ast.Object)
	if !ok {
		return d, fmt.Errorf("%s is %s, not an object", DecisionQuery, ast.ValueName(x))
	}
	allow, ok := field(m, "allow").(ast.Boolean)
	if !ok {
		return d, fmt.Errorf("%s.allow is missing or not a boolean", DecisionQuery)
	}
	if raw := field(m, "violations"); raw != nil {
		// An array, or a set (a policy may return its violation set as is;
		// as JSON a set is an array, sorted).
		var list *ast.Array
		switch v := raw.(type) {
		case *ast.Array:
			list = v
		case ast.Set:
			list = v.Sorted()
		default:
			return d, fmt.Errorf("%s.violations is not an array", DecisionQuery)
		}
		for i := range list.Len() {
			o, ok := list.Elem(i).Value.(ast.Object)
			if !ok {
				return d, fmt.Errorf("%s.violations[%d] is not an object", DecisionQuery, i)
			}
			var v Violation
			for _, f := range []struct {
				name string
				dst  *string
			}{{"type", &v.Type}, {"value", &v.Value}, {"layer", &v.Layer}, {"reason", &v.Reason}} {
				s, ok := field(o, f.name).(ast.String)
				if !ok {
					return d, fmt.Errorf("%s.violations[%d].%s is missing or not a string", DecisionQuery, i, f.name)
				}
				*f.dst = string(s)
			}
			d.Violations = append(d.Violations, v)
		}
	}
	if raw := field(m, "lifetime"); raw != nil {
		s, ok := raw.(ast.String)
		if !ok {
			return d, fmt.Errorf("%s.lifetime is not a duration string", DecisionQuery)
		}
		lt, err := regoDuration(string(s))
		if err != nil || lt <= 0 {
			return d, fmt.Errorf("%s.lifetime %q is not a positive duration", DecisionQuery, string(s))
		}
		d.Lifetime = lt
	}
	// A policy that allows while reporting violations contradicts itself;
	// the violations win.
	d.Allow = bool(allow) && len(d.Violations) == 0
	return d, nil
}

// field is o[name], nil when absent.
func field(o ast.Object, name string) ast.Value {
	if t := o.Get(ast.InternedTerm(name)); t != nil {
		return t.Value
	}
	return nil
}

// NewDecisionID returns a UUIDv7 (RFC 9562): unique, and sortable by time,
// which keeps the decision log's index append-mostly.
func NewDecisionID() string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(time.Now().UnixMilli())<<16)
	if _, err := rand.Read(u[6:]); err != nil {
		panic("policy: crypto/rand failed: " + err.Error())
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// MarshalJSON writes the decision in the documented decision format plus
// its metadata (for `policyca policy eval`).
func (d Decision) MarshalJSON() ([]byte, error) {
	out := struct {
		Allow      bool        `json:"allow"`
		Violations []Violation `json:"violations"`
		Lifetime   string      `json:"lifetime,omitempty"`
		Revision   string      `json:"revision"`
		ID         string      `json:"decision_id"`
		EvalTime   string      `json:"eval_time"`
	}{Allow: d.Allow, Violations: d.Violations, Revision: d.Revision, ID: d.ID, EvalTime: d.EvalTime.String()}
	if out.Violations == nil {
		out.Violations = []Violation{}
	}
	if d.Lifetime > 0 {
		out.Lifetime = d.Lifetime.String()
	}
	return json.Marshal(out)
}
