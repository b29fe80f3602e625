package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

func TestDecideFailsClosed(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		timeout  time.Duration
		want     string
	}{
		{"undefined for this input", `{"allow": true} if input.identifiers[0].value == "smoke-test.policyca.internal"`, 0, "undefined"},
		{"not an object", `[true] if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "not an object"},
		{"allow not a boolean", `{"allow": "yes"} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "allow"},
		{"allow missing", `{"allowed": true} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "allow is missing"},
		{"violations not a list", `{"allow": false, "violations": "no"} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "violations is not an array"},
		{"violation without reason", `{"allow": false, "violations": [{"type": "dns", "value": "x", "layer": "l"}]} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "violations[0].reason"},
		{"bad lifetime", `{"allow": true, "lifetime": "forever"} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "lifetime"},
		{"builtin error", `{"allow": to_number(input.identifiers[0].value) > 0} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 0, "to_number"},
		{"conflicting values", `{"allow": true}
decision := {"allow": false} if input.identifiers[0].value != "smoke-test.policyca.internal"`, 0, "conflict"},
		{"timeout", `{"allow": count([x | some x in numbers.range(1, 50000000)]) > 0} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`, 50 * time.Millisecond, "eval_cancel_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{}
			e, err := NewEngine(EngineConfig{Path: policyBundle(t, "r", tt.decision), Logger: quietLogger(), EvalTimeout: tt.timeout, Sink: sink})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(context.Background(), orderInput("acme", "a.internal"))
			if err == nil || d.Allow {
				t.Fatalf("decision %+v, error %v: want a denial with an error", d, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if d.ID == "" || d.Revision != "r" {
				t.Errorf("decision %+v lacks its id or revision", d)
			}
			recs := sink.all()
			if len(recs) != 1 || recs[0].Allow || recs[0].Error == "" || recs[0].DecisionID != d.ID {
				t.Errorf("records %+v", recs)
			}
		})
	}
}

func TestAllowWithViolationsDenies(t *testing.T) {
	e, err := NewEngine(EngineConfig{Path: policyBundle(t, "r", `{"allow": true, "violations": [{"type": "dns", "value": "a", "layer": "custom", "reason": "r"}]}`), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), orderInput("acme", "a.internal"))
	if err != nil || d.Allow || len(d.Violations) != 1 {
		t.Fatalf("%+v, %v", d, err)
	}
}

// TestViolationsAsASet: a decision may give its violations as a set (what
// the violation rules build); they are read in the set's order, as when
// the decision went through JSON.
func TestViolationsAsASet(t *testing.T) {
	e, err := NewEngine(EngineConfig{Path: policyBundle(t, "r", `{"allow": false, "violations": {
		{"type": "dns", "value": "b", "layer": "custom", "reason": "r2"},
		{"type": "dns", "value": "a", "layer": "custom", "reason": "r1"}}} if input.identifiers[0].value != "smoke-test.policyca.internal"
else := {"allow": true}`), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), orderInput("acme", "a.internal"))
	if err != nil || d.Allow || len(d.Violations) != 2 || d.Violations[0].Value != "a" || d.Violations[1].Reason != "r2" {
		t.Fatalf("%+v, %v", d, err)
	}
}

type memSink struct {
	mu   sync.Mutex
	recs []DecisionRecord
	err  error
}

func (s *memSink) RecordDecision(_ context.Context, r DecisionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
	return s.err
}

func (s *memSink) all() []DecisionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DecisionRecord(nil), s.recs...)
}

func TestDecisionLog(t *testing.T) {
	tests := []struct {
		name      string
		sinkErr   error
		ids       []string
		wantAllow bool
		wantErr   bool
	}{
		{"allow recorded", nil, []string{"a.internal"}, true, false},
		{"deny recorded", nil, []string{"www.example.com"}, false, false},
		{"allow fails closed when the log fails", errors.New("disk full"), []string{"a.internal"}, false, true},
		{"deny stays a plain deny when the log fails", errors.New("disk full"), []string{"www.example.com"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{err: tt.sinkErr}
			var hooked int
			e, err := NewEngine(EngineConfig{Path: "../policies/rego", Logger: quietLogger(), Sink: sink, Node: "node-1",
				OnDecision: func(Decision, error) { hooked++ }})
			if err != nil {
				t.Fatal(err)
			}
			in := orderInput("acme", tt.ids...)
			in.RA = "ra-1"
			d, err := e.Decide(context.Background(), in)
			if d.Allow != tt.wantAllow || (err != nil) != tt.wantErr {
				t.Fatalf("decision %+v, %v", d, err)
			}
			recs := sink.all()
			if len(recs) != 1 || hooked != 1 {
				t.Fatalf("%d records, %d hook calls", len(recs), hooked)
			}
			r := recs[0]
			if r.DecisionID != d.ID || r.Revision != "default-1" || r.Stage != StageOrder || r.Provisioner != "acme" ||
				r.AccountID != "acct-1" || r.RA != "ra-1" || r.Node != "node-1" || len(r.Identifiers) != 1 ||
				r.Allow != tt.wantAllow && !tt.wantErr || r.Time.IsZero() || r.EvalTime <= 0 {
				t.Fatalf("record %+v for decision %+v", r, d)
			}
			if !tt.wantAllow && len(r.Violations) == 0 && !tt.wantErr {
				t.Fatalf("denial recorded without violations: %+v", r)
			}
		})
	}
}

func TestDecisionIDs(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewDecisionID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestNoBundle(t *testing.T) {
	e := &Engine{log: quietLogger(), now: time.Now}
	d, err := e.Decide(context.Background(), orderInput("acme", "a.internal"))
	if !errors.Is(err, ErrNoBundle) || d.Allow {
		t.Fatalf("%+v, %v", d, err)
	}
}

func TestCheckOrder(t *testing.T) {
	accounts := AccountInfoFunc(func(_ context.Context, id string) (*EABInfo, json.RawMessage, error) {
		switch id {
		case "team":
			return &EABInfo{KeyID: "kid-1", Reference: "team"}, json.RawMessage(`{"allow": {"dns": [".team.internal"]}}`), nil
		case "broken":
			return nil, nil, errors.New("store down")
		case "bad-policy":
			return nil, json.RawMessage(`{"allow": {"dns": ".team.internal"}}`), nil
		}
		return nil, nil, nil
	})
	// The same accounts behind EABKeyInfo: at newOrder the engine then
	// looks up the key that bound the account, never the account again.
	byKey := keyedAccounts{t: t, keys: func(ctx context.Context, kid string) (*EABInfo, json.RawMessage, error) {
		return accounts(ctx, strings.TrimPrefix(kid, "kid-"))
	}}
	for _, ai := range []AccountInfo{accounts, byKey} {
		e, err := NewEngine(EngineConfig{Path: "../policies/rego", Logger: quietLogger(), Accounts: ai})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("%T", ai), func(t *testing.T) { checkOrderCases(t, e) })
	}
}

// keyedAccounts is an AccountInfo with EABKeyInfo whose LookupAccount
// must not be called.
type keyedAccounts struct {
	t    *testing.T
	keys AccountInfoFunc
}

func (k keyedAccounts) LookupAccount(context.Context, string) (*EABInfo, json.RawMessage, error) {
	k.t.Error("LookupAccount called at newOrder although EABKeyInfo is there")
	return nil, nil, errors.New("unexpected")
}

func (k keyedAccounts) LookupEABKey(ctx context.Context, kid string) (*EABInfo, json.RawMessage, error) {
	return k.keys(ctx, kid)
}

func checkOrderCases(t *testing.T, e *Engine) {
	dns := func(v string) core.Identifier { return core.Identifier{Type: core.DNS, Value: v} }
	tests := []struct {
		name     string
		prov     string
		acct     string
		ids      []core.Identifier
		wantKind core.ErrorKind
		wantSubs map[string]string // value → detail
		detail   string
	}{
		{name: "allowed", prov: "acme", acct: "plain", ids: []core.Identifier{dns("a.internal"), {Type: core.IP, Value: "10.0.0.1"}}},
		{name: "one refused", prov: "acme", acct: "plain", ids: []core.Identifier{dns("a.internal"), dns("www.example.com")},
			wantKind: core.KindRejectedIdentifier, wantSubs: map[string]string{"www.example.com": "www.example.com: not allowed by authority"},
			detail: "www.example.com: not allowed by authority"},
		{name: "account layer", prov: "acme", acct: "team", ids: []core.Identifier{dns("a.team.internal"), dns("b.lab.internal"), dns("www.example.com")},
			wantKind: core.KindRejectedIdentifier, wantSubs: map[string]string{
				"b.lab.internal":  "b.lab.internal: not allowed by account policy",
				"www.example.com": "www.example.com: not allowed by account policy; www.example.com: not allowed by authority",
			}, detail: "the policy refused 2 identifiers; see subproblems"},
		{name: "unknown provisioner", prov: "nope", acct: "plain", ids: []core.Identifier{dns("a.internal")},
			wantKind: core.KindRejectedIdentifier, detail: "provisioner 'nope' is not configured in the policy"},
		{name: "account lookup fails closed", prov: "acme", acct: "broken", ids: []core.Identifier{dns("a.internal")}, wantKind: core.KindServerInternal},
		{name: "malformed account policy fails closed", prov: "acme", acct: "bad-policy", ids: []core.Identifier{dns("a.internal")}, wantKind: core.KindServerInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct := &core.Account{ID: tt.acct}
			if tt.acct != "plain" {
				acct.EABKeyID = "kid-" + tt.acct
			}
			err := e.OrderPolicy().CheckOrder(context.Background(), tt.prov, acct, tt.ids)
			if tt.wantKind == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != tt.wantKind {
				t.Fatalf("error %v, want kind %s", err, tt.wantKind)
			}
			if tt.detail != "" && ce.Detail != tt.detail {
				t.Errorf("detail %q, want %q", ce.Detail, tt.detail)
			}
			if len(ce.Subproblems) != len(tt.wantSubs) {
				t.Fatalf("subproblems %+v", ce.Subproblems)
			}
			for _, sp := range ce.Subproblems {
				if sp.Kind != core.KindRejectedIdentifier || sp.Identifier == nil || tt.wantSubs[sp.Identifier.Value] != sp.Detail {
					t.Errorf("subproblem %+v (%+v)", sp, sp.Identifier)
				}
			}
		})
	}
}

func csrFor(t *testing.T, key any, names ...string) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestSignCheck(t *testing.T) {
	dir := writeBundle(t, map[string]any{
		"authority": map[string]any{
			"allow":        map[string]any{"dns": []string{".internal"}},
			"max_lifetime": "720h",
			"keys":         map[string]any{"min_rsa_bits": 3072, "ecdsa_curves": []string{"P-256"}},
		},
		"provisioners": map[string]any{"acme": map[string]any{"default_lifetime": "48h"}},
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name   string
		csr    *x509.CertificateRequest
		ids    []string
		allow  bool
		reason string
	}{
		{"allowed", csrFor(t, p256, "a.internal"), []string{"a.internal"}, true, ""},
		{"curve refused", csrFor(t, p384, "a.internal"), []string{"a.internal"}, false, "ecdsa P-384 key: curve not allowed by authority"},
		{"small rsa refused", csrFor(t, rsa2048, "a.internal"), []string{"a.internal"}, false, "rsa 2048 key: authority requires at least 3072 bits"},
		{"csr name refused", csrFor(t, p256, "A.Example.COM"), []string{"a.example.com"}, false, "a.example.com: not allowed by authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := core.SignRequest{Provisioner: "acme", AccountID: "acct-1", NotAfter: now.Add(24 * time.Hour)}
			for _, n := range tt.ids {
				req.Identifiers = append(req.Identifiers, core.Identifier{Type: core.DNS, Value: n})
			}
			v, err := e.SignPolicy().Check(context.Background(), req, tt.csr)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allow != tt.allow || (tt.reason != "" && !strings.Contains(v.Reason, tt.reason)) {
				t.Fatalf("verdict %+v", v)
			}
			if v.Lifetime != 48*time.Hour || v.Revision != "default-1" || v.DecisionID == "" {
				t.Fatalf("verdict %+v", v)
			}
		})
	}
	if _, err := e.SignPolicy().Check(context.Background(), core.SignRequest{Provisioner: "acme"}, nil); !core.IsKind(err, core.KindServerInternal) {
		t.Fatalf("nil CSR: %v", err)
	}
}

func TestCSRDescription(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "Web", Organization: []string{"O"}},
		DNSNames:       []string{"WWW.Lab.Internal."},
		EmailAddresses: []string{"ops@lab.internal"},
		IPAddresses:    []net.IP{net.ParseIP("::ffff:10.0.0.1")},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	got := CSRDescription(csr)
	if got.Subject.CommonName != "Web" || got.SANs.DNS[0] != "www.lab.internal" || got.SANs.IP[0] != "10.0.0.1" ||
		got.SANs.Email[0] != "ops@lab.internal" || got.Key != (KeyInfo{Type: "ecdsa", Curve: "P-256"}) {
		t.Fatalf("%+v", got)
	}
}

// TestBundleWithoutAuthorityLayer: the authority layer is optional; a
// bundle whose data has only provisioners still applies them (and their
// lifetimes) to every request, with the name rules in Go and in Rego.
func TestBundleWithoutAuthorityLayer(t *testing.T) {
	dir := writeBundle(t, map[string]any{
		"provisioners": map[string]any{"dev": map[string]any{
			"allow":            map[string]any{"dns": []string{".internal"}},
			"default_lifetime": "24h",
		}},
	})
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if e.cur.Load().fast == nil {
		t.Fatal("the default bundle is not evaluated with the name rules in Go")
	}
	for _, inRego := range []bool{false, true} {
		if inRego {
			e.cur.Load().fast = nil
		}
		d, err := e.Decide(context.Background(), orderInput("dev", "a.internal"))
		if err != nil || !d.Allow || d.Lifetime != 24*time.Hour {
			t.Fatalf("rego %v: a.internal: %+v, %v", inRego, d, err)
		}
		d, err = e.Decide(context.Background(), orderInput("dev", "a.example.com"))
		if err != nil || d.Allow || len(d.Violations) != 1 || d.Violations[0].Layer != "provisioner" {
			t.Fatalf("rego %v: a.example.com: %+v, %v", inRego, d, err)
		}
	}
}
