package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/policyca/policyca/core"
)

// editedBundle writes the default bundle with edit applied to the text of
// each .rego file, plus the extra files.
func editedBundle(t *testing.T, data map[string]any, edit func(name, text string) string, extra map[string]string) string {
	t.Helper()
	dir := writeBundle(t, data)
	files, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(edit(filepath.Base(f), string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var namesTestData = map[string]any{
	"authority": map[string]any{
		"allow": map[string]any{"dns": []any{".internal"}, "ip": []any{"10.0.0.0/8"}},
		"deny":  map[string]any{"dns": []any{".prod.internal"}},
	},
	"provisioners": map[string]any{"acme": map[string]any{}},
}

func decideNames(t *testing.T, e *Engine, ids ...core.Identifier) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), Input{Stage: StageOrder,
		Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"}, Identifiers: ids})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestNameRulesInGoOnlyForStockRules checks when the engine evaluates the
// name rules in Go: with the default rules however they are formatted,
// and never when a bundle edits or extends them, whose Rego must then
// decide as written.
func TestNameRulesInGoOnlyForStockRules(t *testing.T) {
	same := func(_, s string) string { return s }
	for _, tc := range []struct {
		name   string
		edit   func(name, text string) string
		extra  map[string]string
		inGo   bool
		reason string
	}{
		{name: "default", edit: same, inGo: true,
			reason: "x.prod.internal: denied by authority rule '.prod.internal'"},
		{name: "comments and blank lines", inGo: true,
			edit: func(_, s string) string {
				return strings.ReplaceAll(s, "\n\n", "\n\n# an operator's note\n\n")
			},
			reason: "x.prod.internal: denied by authority rule '.prod.internal'"},
		{name: "files renamed and joined", inGo: true,
			edit: func(name, s string) string {
				if name == "names.rego" {
					return ""
				}
				return s
			},
			extra:  map[string]string{"z_names.rego": mustRead(t, "../policies/rego/names.rego")},
			reason: "x.prod.internal: denied by authority rule '.prod.internal'"},
		{name: "reason edited",
			edit: func(name, s string) string {
				return strings.ReplaceAll(s, "%s: denied by %s rule '%s'", "%s: refused by %s pattern '%s'")
			},
			reason: "x.prod.internal: refused by authority pattern '.prod.internal'"},
		{name: "label edited",
			edit: func(name, s string) string {
				return strings.ReplaceAll(s, `layer_label("authority") := "authority"`, `layer_label("authority") := "the CA"`)
			},
			reason: "x.prod.internal: denied by the CA rule '.prod.internal'"},
		{name: "candidates extended", edit: same,
			extra:  map[string]string{"more.rego": "package policyca\n\ncandidates[n] := {\".prod.internal\"} if {\n\tsome n in names\n\tn.value == \"never\"\n}\n"},
			reason: "x.prod.internal: denied by authority rule '.prod.internal'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := editedBundle(t, namesTestData, tc.edit, tc.extra)
			if tc.name == "files renamed and joined" {
				os.Remove(filepath.Join(dir, "names.rego"))
			}
			e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.cur.Load().fast != nil; got != tc.inGo {
				t.Fatalf("name rules in Go: %v, want %v", got, tc.inGo)
			}
			d := decideNames(t, e, core.Identifier{Type: core.DNS, Value: "x.prod.internal"})
			if d.Allow || len(d.Violations) != 1 || d.Violations[0].Reason != tc.reason {
				t.Fatalf("decision %+v, want one violation %q", d, tc.reason)
			}
			if d := decideNames(t, e, core.Identifier{Type: core.DNS, Value: "a.b.internal"}); !d.Allow {
				t.Fatalf("a.b.internal refused: %+v", d)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNameRulesAddressWithoutCandidates: an address the engine cannot
// compute candidates for is decided by the Rego (which scans the rules),
// with the same result as the stock evaluation.
func TestNameRulesAddressWithoutCandidates(t *testing.T) {
	e, err := NewEngine(EngineConfig{Path: writeBundle(t, namesTestData), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
		Identifiers: []core.Identifier{{Type: core.IP, Value: "fe80::1%eth0"}, {Type: core.IP, Value: "10.1.2.3"}}}
	if _, complete, err := in.valueCandidates(time.Now(), &e.policies); err != nil || complete {
		t.Fatalf("complete %v, %v", complete, err)
	}
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Violations) != 1 || d.Violations[0].Reason != "fe80::1%eth0: not allowed by authority" {
		t.Fatalf("decision %+v", d)
	}
}

// FuzzNameViolations decides requests built from the fuzzer's bytes with
// the engine's queries (name rules in Go, indexed data, input.candidates)
// and as the stock opa CLI would (all in Rego, rules as lists), and
// requires the same decision. Both are prepared once; each input replaces
// the data in their stores, so that an execution costs two evaluations
// rather than three compilations.
func FuzzNameViolations(f *testing.F) {
	ctx := context.Background()
	b, err := readBundle(source{name: "../policies/rego"}, nil, DefaultMaxBundleBytes)
	if err != nil {
		f.Fatal(err)
	}
	engStore := newStore(indexData(b.Data))
	eng, err := compileWithStore(ctx, "fuzz", b, engStore)
	if err != nil {
		f.Fatal(err)
	}
	if eng.fast == nil {
		f.Fatal("the default bundle is not evaluated with the name rules in Go")
	}
	stockStore := inmem.NewFromObject(b.Data)
	stockOpts := []func(*rego.Rego){rego.Query(DecisionQuery), rego.Store(stockStore),
		rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true)}
	for _, m := range b.Modules {
		stockOpts = append(stockOpts, rego.ParsedModule(m.Parsed))
	}
	stock, err := rego.New(stockOpts...).PrepareForEval(ctx)
	if err != nil {
		f.Fatal(err)
	}
	setData := func(t *testing.T, store storage.Store, v any) {
		t.Helper()
		if err := storage.WriteOne(ctx, store, storage.AddOp, storage.Path{Root}, v); err != nil {
			t.Fatal(err)
		}
	}
	f.Add([]byte("a.b.internal"), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("*.x.prod.internal"), []byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12})
	f.Add([]byte("10.1.2.3"), []byte{3, 3, 3, 3, 200, 201, 202})
	f.Add([]byte("a.b.internal cn=Device u@x.internal https://svc.b.internal/p"), []byte{5, 12, 26, 33, 40, 47, 133, 140})
	labels := []string{"a", "b", "x", "prod", "internal", "svc", "*", "com", "b-c", "xn--bcher-kva"}
	// pattern turns a byte into a rule pattern over the same labels.
	pattern := func(b byte) string {
		l1, l2 := labels[int(b)%len(labels)], labels[int(b/10)%len(labels)]
		switch b % 4 {
		case 0:
			return "." + l1 + "." + l2
		case 1:
			return "*." + l1 + "." + l2
		case 2:
			return l1 + "." + l2
		}
		return "." + l2
	}
	lifetimes := []string{"24h", "1440m", "90m", "1h30m", "2160h", "5400s", "1h"}
	ipRule := func(b byte) string {
		return []string{"10.0.0.0/8", "10.1.2.3", "10.1.0.0/16", "fc00::/7", "::1", "192.168.0.0/16"}[int(b)%6]
	}
	f.Fuzz(func(t *testing.T, name []byte, rules []byte) {
		// The stock side reads the input as JSON, which has no invalid
		// UTF-8 (nor do CSRs: their names are IA5 strings).
		if len(rules) > 64 || len(name) > 80 || !utf8.Valid(name) {
			return
		}
		layers := [3]map[string]any{{}, {}, {}}
		for i, b := range rules {
			l := layers[i%3]
			side := "allow"
			if b&0x80 != 0 {
				side = "deny"
			}
			m, _ := l[side].(map[string]any)
			if m == nil {
				m = map[string]any{}
				l[side] = m
			}
			typ, p := "dns", pattern(b&0x7f)
			switch b % 7 {
			case 3:
				typ, p = "ip", ipRule(b)
			case 5:
				typ, p = "email", strings.TrimPrefix(pattern(b&0x7f), "*")
			case 6:
				typ, p = []string{"uri", "cn"}[b%2], pattern(b&0x7f)
			}
			list, _ := m[typ].([]any)
			m[typ] = append(list, p)
			if b%11 == 5 {
				l["allow_wildcard_names"] = b%2 == 0
			}
			// Lifetimes, some equally long in other units (the least
			// text wins a tie).
			if b%13 == 7 {
				l["max_lifetime"] = lifetimes[int(b/13)%len(lifetimes)]
			}
			if b%17 == 3 && i%3 == 1 {
				l["default_lifetime"] = lifetimes[int(b/17)%len(lifetimes)]
			}
		}
		data := map[string]any{"authority": layers[0], "provisioners": map[string]any{"acme": layers[1]}}
		// Identifiers, and at the sign stage the CSR's other names: a part
		// with "@" is an email SAN, with "://" a URI SAN, "cn=X" the
		// subject CN.
		var ids []core.Identifier
		var csr *CSRInfo
		sign := func() *CSRInfo {
			if csr == nil {
				csr = &CSRInfo{Key: KeyInfo{Type: "ecdsa", Curve: "P-256"}}
			}
			return csr
		}
		for _, part := range strings.Split(string(name), " ") {
			switch {
			case strings.HasPrefix(part, "cn="):
				sign().Subject.CommonName = part[3:]
				continue
			case strings.Contains(part, "://"):
				sign().SANs.URI = append(sign().SANs.URI, part)
				continue
			case strings.Contains(part, "@"):
				sign().SANs.Email = append(sign().SANs.Email, part)
				continue
			}
			id, err := core.NormalizeIdentifier(core.Identifier{Type: core.DNS, Value: part})
			if err != nil {
				id, err = core.NormalizeIdentifier(core.Identifier{Type: core.IP, Value: part})
			}
			if err == nil {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return
		}
		stage := StageOrder
		if csr != nil {
			stage = StageSign
			for _, id := range ids {
				if id.Type == core.IP {
					csr.SANs.IP = append(csr.SANs.IP, id.Value)
				} else {
					csr.SANs.DNS = append(csr.SANs.DNS, id.Value)
				}
			}
		}
		if err := validateData(map[string]any{Root: data}); err != nil {
			return
		}
		if err := validateLayer("account policy", layers[2], false); err != nil {
			return
		}
		setData(t, engStore, indexData(map[string]any{Root: data})[Root])
		// The engine reads the layers' data once per bundle (fastrules.go).
		ld, err := readLayerData(ctx, engStore)
		if err != nil {
			t.Fatal(err)
		}
		eng.layers.Store(ld)
		setData(t, stockStore, data)
		pol, _ := json.Marshal(layers[2])
		in := Input{Stage: stage, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
			Account: AccountInput{ID: "a", Policy: pol}, Identifiers: ids, CSR: csr,
			Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		v, complete, err := in.valueCandidates(in.Time, &policyCache{})
		if err != nil {
			t.Fatal(err)
		}
		if !complete {
			t.Fatalf("%v: the engine would not use the name rules in Go", ids)
		}
		got, err := eng.eval(ctx, eng.query(complete), v, in.Time, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want := stockDecision(t, stock, in)
		if got.Allow != want.Allow || !reflect.DeepEqual(got.Violations, want.Violations) || got.Lifetime != want.Lifetime {
			t.Fatalf("%v under %v:\nengine %v %+v %q\nstock  %v %+v %q", ids, data, got.Allow, got.Violations, got.Lifetime,
				want.Allow, want.Violations, want.Lifetime)
		}
	})
}

// A bundle that keeps the stock name rules but changes what their calls
// reach (a rule named like a builtin, an import into their module, a
// `with`) is evaluated in Rego, as written: the Go implementation would
// decide as the unchanged rules do.
func TestShadowedBuiltinsKeepTheRego(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		edit  func(name, text string) string
		extra map[string]string
	}{
		{name: "is_set redefined", extra: map[string]string{"helpers.rego": "package policyca\n\nis_set(x) := false\n"}},
		{name: "startswith redefined", extra: map[string]string{"helpers.rego": "package policyca\n\nstartswith(a, b) := false\n"}},
		{name: "an import into names.rego", edit: func(name, s string) string {
			if name != "names.rego" {
				return s
			}
			return strings.Replace(s, "package policyca\n", "package policyca\n\nimport data.lib.helpers\n", 1)
		}},
		{name: "the Go implementation's name taken",
			extra: map[string]string{"helpers.rego": "package policyca\n\npolicyca.name_violations(a, b) := set()\n"}},
		{name: "a with in a sub-package", extra: map[string]string{
			"lib.rego":  "package policyca.lib\n\nv := x if {\n\tx := data.policyca.name_violations with startswith as true\n}\n",
			"more.rego": "package policyca\n\nviolation contains x if {\n\tsome x in data.policyca.lib.v\n}\n",
		}},
		{name: "a with", extra: map[string]string{"helpers.rego": "package policyca\n\nprobe := x if {\n\tx := name_violations with input.provisioner.name as \"dev\"\n}\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := tc.edit
			if edit == nil {
				edit = func(_, s string) string { return s }
			}
			e, err := NewEngine(EngineConfig{Path: editedBundle(t, namesTestData, edit, tc.extra), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			c := e.cur.Load()
			if c.fast != nil {
				t.Fatal("the name rules run in Go")
			}
			// What the engine decides is what the Rego as written decides.
			for _, n := range []string{"a.b.internal", "x.prod.internal", "*.x.internal"} {
				in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
					Identifiers: []core.Identifier{{Type: core.DNS, Value: n}}}
				v, _, err := in.valueCandidates(in.Time, &e.policies)
				if err != nil {
					t.Fatal(err)
				}
				want, werr := c.eval(ctx, &c.pq, v, in.Time, 0)
				got, gerr := e.Decide(ctx, in)
				if (werr == nil) != (gerr == nil) || want.Allow != got.Allow || len(want.Violations) != len(got.Violations) {
					t.Errorf("%s: engine %+v %v, Rego as written %+v %v", n, got, gerr, want, werr)
				}
			}
		})
	}
}
