package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/policyca/policyca/core"
)

// stockQuery prepares query over the default policy with data as written
// (lists, not indexed), as the stock opa CLI would evaluate it.
func stockQuery(t *testing.T, query string, data map[string]any) rego.PreparedEvalQuery {
	t.Helper()
	b, err := readBundle(source{name: writeBundle(t, data)}, nil, DefaultMaxBundleBytes)
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){
		rego.Query(query),
		rego.Store(inmem.NewFromObject(b.Data)),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range b.Modules {
		opts = append(opts, rego.ParsedModule(m.Parsed))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

// TestCandidatesAgreeWithRego checks that the candidates the engine puts
// in the input are exactly those the Rego computes without them.
func TestCandidatesAgreeWithRego(t *testing.T) {
	pq := stockQuery(t, "x := data.policyca.computed_candidates({\"type\": input.type, \"value\": input.value})",
		map[string]any{"authority": map[string]any{}})
	names := map[string][]string{
		"dns": {"localhost", "a.b", "www.example.internal", "a.b.c.d.e.f.example.com", "*.x.example.com", "*.com",
			"xn--bcher-kva.example", "bücher.example", ".leading", "trailing.", "a..b", "", "*", "-x.y"},
		"email": {"user@example.com", "User@Example.COM", "u@sub.host.internal", "@host", "nohost", "a@b@c.d",
			"x@", "ü@bücher.example", "u@h"},
		"uri": {"https://example.com/path", "spiffe://trust.internal/ns/x", "https://user@Host.Example.:8443/x",
			"https://[::1]:443/", "urn:isbn:123", "http://", "http://:80/", "HTTP://A.B?q", "ftp://a.b#f",
			"x://a/b", "1http://a.b"},
		"cn":    {"My Device", "web.internal", ""},
		"other": {"anything.at.all"},
	}
	for typ, values := range names {
		for _, v := range values {
			goCands, ok := candidates(typ, v)
			if !ok {
				t.Fatalf("%s %q: no Go candidates", typ, v)
			}
			rs, err := pq.Eval(context.Background(), rego.EvalInput(map[string]any{"type": typ, "value": v}))
			if err != nil || len(rs) != 1 {
				t.Fatalf("%s %q: %v %v", typ, v, rs, err)
			}
			var regoCands []string
			for _, c := range rs[0].Bindings["x"].([]any) {
				regoCands = append(regoCands, c.(string))
			}
			sort.Strings(regoCands)
			g := slices.Clone(goCands)
			sort.Strings(g)
			g = slices.Compact(g)
			if !reflect.DeepEqual(g, regoCands) && !(len(g) == 0 && len(regoCands) == 0) {
				t.Errorf("%s %q: Go %q, Rego %q", typ, v, g, regoCands)
			}
		}
	}
}

func TestIPCandidates(t *testing.T) {
	cs, ok := ipCandidates("10.1.2.3")
	if !ok || len(cs) != 34 || cs[0] != "10.1.2.3" || cs[1] != "10.1.2.3/32" || cs[2] != "10.1.2.2/31" || cs[33] != "0.0.0.0/0" {
		t.Errorf("v4: %v %q", ok, cs)
	}
	cs, ok = ipCandidates("fd00::1")
	if !ok || len(cs) != 130 || cs[0] != "fd00::1" || !slices.Contains(cs, "fc00::/7") || cs[129] != "::/0" {
		t.Errorf("v6: %v %d", ok, len(cs))
	}
	for _, bad := range []string{"fe80::1%eth0", "::ffff:10.0.0.1", "10.0.0", "host"} {
		if _, ok := ipCandidates(bad); ok {
			t.Errorf("%q has candidates", bad)
		}
	}
	for in, want := range map[string]string{"fc00:0::/7": "fc00::/7", "10.0.0.1": "10.0.0.1", "FD00::1": "fd00::1", "10.0.0.0/8": "10.0.0.0/8"} {
		if got := canonicalIPRule(in); got != want {
			t.Errorf("canonicalIPRule(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEngineAgreesWithStockEvaluation decides many requests twice: with the
// engine (indexed rule sets, input.candidates, the name rules in Go) and as
// the stock opa CLI would (rules as lists, candidates computed in Rego, IP
// rules scanned, everything in Rego).
func TestEngineAgreesWithStockEvaluation(t *testing.T) {
	layer := func(allow, deny map[string]any) map[string]any {
		l := map[string]any{}
		if allow != nil {
			l["allow"] = allow
		}
		if deny != nil {
			l["deny"] = deny
		}
		return l
	}
	data := map[string]any{
		"authority": map[string]any{
			"allow": map[string]any{
				"dns":   []any{".internal", "*.svc.example.com", "host.example.com", "localhost"},
				"ip":    []any{"10.0.0.0/8", "fc00:0::/7", "192.168.1.7", "::1", "172.16.0.0/12"},
				"email": []any{"ops@example.com", "corp.internal", ".mail.internal"},
				"uri":   []any{".spiffe.internal"},
				"cn":    []any{"Device 1"},
			},
			"deny": map[string]any{
				"dns": []any{".prod.internal", "db.internal", "*.x.internal"},
				"ip":  []any{"10.9.0.0/16", "10.1.2.3"},
			},
			"allow_wildcard_names": true,
			"max_lifetime":         "2160h",
		},
		"provisioners": map[string]any{
			"acme": map[string]any{},
			"dev":  layer(map[string]any{"dns": []any{".dev.internal", ".svc.example.com"}, "ip": []any{"10.0.0.0/9"}}, nil),
		},
	}
	// Lifetimes: a default and a cap of equal length (the least text
	// wins), and an account cap below both (accounts[1]).
	data["provisioners"].(map[string]any)["dev"].(map[string]any)["default_lifetime"] = "24h"
	data["provisioners"].(map[string]any)["dev"].(map[string]any)["max_lifetime"] = "1440m"
	e, err := NewEngine(EngineConfig{Path: writeBundle(t, data), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if e.cur.Load().fast == nil {
		t.Fatal("the default bundle is not evaluated with the name rules in Go (names.go)")
	}
	stock := stockQuery(t, DecisionQuery, data)
	accounts := []any{nil,
		func() map[string]any {
			l := layer(map[string]any{"dns": []any{".team.dev.internal"}}, map[string]any{"ip": []any{"10.0.0.0/24"}})
			l["max_lifetime"] = "12h"
			return l
		}(),
		layer(nil, map[string]any{"dns": []any{"a.dev.internal"}, "email": []any{"corp.internal"}}),
	}
	ids := []core.Identifier{
		{Type: core.DNS, Value: "a.dev.internal"}, {Type: core.DNS, Value: "b.team.dev.internal"},
		{Type: core.DNS, Value: "x.prod.internal"}, {Type: core.DNS, Value: "db.internal"},
		{Type: core.DNS, Value: "*.x.internal"}, {Type: core.DNS, Value: "*.dev.internal"},
		{Type: core.DNS, Value: "a.svc.example.com"}, {Type: core.DNS, Value: "a.b.svc.example.com"},
		{Type: core.DNS, Value: "host.example.com"}, {Type: core.DNS, Value: "www.example.com"},
		{Type: core.DNS, Value: "localhost"}, {Type: core.DNS, Value: "internal"},
		{Type: core.IP, Value: "10.0.0.5"}, {Type: core.IP, Value: "10.200.0.1"}, {Type: core.IP, Value: "10.9.3.4"},
		{Type: core.IP, Value: "10.1.2.3"}, {Type: core.IP, Value: "192.168.1.7"}, {Type: core.IP, Value: "192.168.1.8"},
		{Type: core.IP, Value: "fd12::1"}, {Type: core.IP, Value: "::1"}, {Type: core.IP, Value: "8.8.8.8"},
		{Type: core.IP, Value: "172.31.255.255"},
		// No candidates: the engine leaves this one to the Rego.
		{Type: core.IP, Value: "::ffff:10.0.0.1"},
	}
	csrs := []*CSRInfo{nil, {
		Subject: Subject{CommonName: "Device 1"},
		SANs: SANs{
			DNS:   []string{"a.dev.internal", "other.example.org"},
			IP:    []string{"10.0.0.9", "fd00::9"},
			Email: []string{"ops@example.com", "x@corp.internal", "y@a.mail.internal", "z@Mail.Internal", "w@evil.com"},
			URI:   []string{"spiffe://a.spiffe.internal/w", "https://example.org/", "urn:x"},
		},
		Key: KeyInfo{Type: "ecdsa", Curve: "P-256"},
	}, {Subject: Subject{CommonName: "Other CN"}, SANs: SANs{DNS: []string{"a.dev.internal"}}, Key: KeyInfo{Type: "ed25519"}}}
	ctx := context.Background()
	n := 0
	for _, prov := range []string{"acme", "dev", "missing"} {
		for ai, acct := range accounts {
			var pol json.RawMessage
			if acct != nil {
				pol, _ = json.Marshal(acct)
			}
			for ci, csr := range csrs {
				for i := range ids {
					// Each identifier alone, and with its neighbours.
					for _, set := range [][]core.Identifier{ids[i : i+1], ids[i:min(i+3, len(ids))]} {
						in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: prov, Type: "acme"},
							Account: AccountInput{ID: "a", Policy: pol}, Identifiers: set, CSR: csr,
							Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
						if csr != nil {
							in.Stage = StageSign
						}
						name := fmt.Sprintf("%s/acct%d/csr%d/%v", prov, ai, ci, set)
						got, err := e.Decide(ctx, in)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						want := stockDecision(t, stock, in)
						if got.Allow != want.Allow || !reflect.DeepEqual(got.Violations, want.Violations) || got.Lifetime != want.Lifetime {
							t.Errorf("%s:\nengine %v %+v %q\nstock  %v %+v %q", name, got.Allow, got.Violations, got.Lifetime, want.Allow, want.Violations, want.Lifetime)
						}
						n++
					}
				}
			}
		}
	}
	if n < 300 {
		t.Fatalf("only %d requests compared", n)
	}
}

// stockDecision evaluates in's JSON document (no candidates, as `opa eval
// --input` would read it) with stock, a query from stockQuery.
func stockDecision(t *testing.T, stock rego.PreparedEvalQuery, in Input) Decision {
	t.Helper()
	doc, err := in.Document()
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := stock.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil || len(rs) != 1 {
		t.Fatalf("%v: stock evaluation: %v %v", in.Identifiers, rs, err)
	}
	res, err := ast.InterfaceToValue(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDecision(res)
	if err != nil {
		t.Fatalf("%v: %v", in.Identifiers, err)
	}
	return d
}
