package policy

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/policyca/policyca/core"
)

// goLifetime decides as lifetime.rego does, for any layer value: errors
// where the Rego's duration parse fails (strict builtin errors), the
// same text where it is defined, undefined where it is.
func TestFastLifetimeAgrees(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile("../policies/rego/lifetime.rego")
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query("data.policyca.lifetime"),
		rego.Module("lifetime.rego", string(src)),
		rego.Module("layer.rego", "package policyca\n\nlayer := input.layer\n"),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range []string{
		`{}`,
		`{"authority": {}}`,
		`{"authority": {"max_lifetime": "2160h"}}`,
		`{"authority": {"max_lifetime": "2160h"}, "provisioner": {"default_lifetime": "24h"}}`,
		// Equally long: the least text.
		`{"authority": {"max_lifetime": "24h"}, "provisioner": {"max_lifetime": "1440m"}}`,
		`{"authority": {"max_lifetime": "1d"}, "provisioner": {"default_lifetime": "24h"}}`,
		`{"authority": {"max_lifetime": "1w"}, "account": {"max_lifetime": "90m"}}`,
		`{"authority": {"max_lifetime": "1h"}, "provisioner": {"default_lifetime": "2h"}, "account": {"max_lifetime": "3600s"}}`,
		// default_lifetime counts for the provisioner only.
		`{"authority": {"default_lifetime": "1m"}, "account": {"default_lifetime": "1m"}}`,
		// Not durations: errors.
		`{"authority": {"max_lifetime": "7x"}}`,
		`{"authority": {"max_lifetime": ""}}`,
		`{"authority": {"max_lifetime": 5}}`,
		`{"authority": {"max_lifetime": null}}`,
		`{"provisioner": {"default_lifetime": ["24h"]}}`,
		`{"authority": {"max_lifetime": "-1h"}, "provisioner": {"default_lifetime": "1h"}}`,
		// Layers that are not objects hold no limits.
		`{"authority": ["max_lifetime"], "provisioner": "max_lifetime", "account": null}`,
		`{"authority": {"max_lifetime": "2h"}, "provisioner": ["default_lifetime"]}`,
		`{"authority": {"keys": {"max_lifetime": "1h"}}}`,
		`[]`, `"layer"`, `null`,
		// A set holding the key's name reads as that name in Rego.
		`{"provisioner": {"default_lifetime"}}`,
		`{"authority": {"max_lifetime"}, "provisioner": {"default_lifetime": "1h"}}`,
		`{"authority": {"other"}, "provisioner": {"default_lifetime": "1h"}}`,
	} {
		lv := ast.MustParseTerm(layer)
		rs, rerr := pq.Eval(ctx, rego.EvalParsedInput(ast.NewObject(ast.Item(ast.StringTerm("layer"), lv))))
		want, wantOK := "", false
		if rerr == nil && len(rs) == 1 {
			want, wantOK = rs[0].Expressions[0].Value.(string)
			if !wantOK {
				t.Fatalf("%s: Rego lifetime %v", layer, rs[0].Expressions[0].Value)
			}
		}
		got, ok, err := goLifetime(lv.Value)
		if (err != nil) != (rerr != nil) || ok != wantOK || got != want {
			t.Errorf("%s: Go %q %v %v, Rego %q %v %v", layer, got, ok, err, want, wantOK, rerr)
		}
	}
}

// layer and lifetime run in Go only when the Rego would decide the same:
// otherwise the engine decides as the bundle's Rego, as written.
func TestFastRulesOnlyWhenSafe(t *testing.T) {
	ctx := context.Background()
	same := func(_, s string) string { return s }
	data := map[string]any{
		"authority":    map[string]any{"allow": map[string]any{"dns": []any{".internal"}}, "max_lifetime": "2160h"},
		"provisioners": map[string]any{"acme": map[string]any{"default_lifetime": "24h"}},
	}
	for _, tc := range []struct {
		name     string
		edit     func(name, text string) string
		extra    map[string]string
		goRules  []string
		lifetime string
		allow    bool
	}{
		{name: "default", edit: same, goRules: []string{"layer", "lifetime", "name_violations"},
			lifetime: "24h0m0s", allow: true},
		{name: "lifetime edited", goRules: []string{"layer", "name_violations"}, lifetime: "2160h0m0s", allow: true,
			edit: func(name, s string) string {
				return strings.Replace(s, "lifetime := min(lifetime_limits)[1]", "lifetime := max(lifetime_limits)[1]", 1)
			}},
		{name: "lifetime_limits extended", edit: same, goRules: []string{"layer", "name_violations"}, lifetime: "1h0m0s", allow: true,
			extra: map[string]string{"more.rego": "package policyca\n\nlifetime_limits contains [3600000000000, \"1h\"]\n"}},
		{name: "a custom rule reads lifetime_limits", edit: same, goRules: []string{"layer", "lifetime", "name_violations"},
			lifetime: "24h0m0s",
			extra:    map[string]string{"more.rego": "package policyca\n\nviolation contains {\"type\": \"x\", \"value\": \"x\", \"layer\": \"authority\", \"reason\": \"two limits\"} if count(lifetime_limits) != 2\n"},
			allow:    true},
		// A layer a rule defines could hold what no validation has seen:
		// the whole bundle is evaluated in Rego.
		{name: "authority in Rego", lifetime: "1h0m0s",
			edit: same, extra: map[string]string{"auth.rego": "package policyca\n\nauthority := {\"allow\": {\"dns\": [\".other\"]}, \"max_lifetime\": \"1h\", \"allow_wildcard_names\": false}\n"},
			allow: false},
		{name: "a rule below the provisioners", lifetime: "2h0m0s",
			edit: same, extra: map[string]string{"prov.rego": "package policyca.provisioners.acme\n\nmax_lifetime := \"2h\"\n"},
			allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := data
			if tc.name == "authority in Rego" {
				d = map[string]any{"provisioners": data["provisioners"]}
			}
			e, err := NewEngine(EngineConfig{Path: editedBundle(t, d, tc.edit, tc.extra), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			c := e.cur.Load()
			if (c.fast != nil) != (len(tc.goRules) > 0) || !slices.Equal(c.goRules, tc.goRules) {
				t.Fatalf("rules in Go %v, want %v", c.goRules, tc.goRules)
			}
			in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
				Identifiers: []core.Identifier{{Type: core.DNS, Value: "a.b.internal"}}}
			got, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := in.valueCandidates(in.Time, &e.policies)
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.eval(ctx, &c.pq, v, in.Time, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.Allow != want.Allow || got.Lifetime != want.Lifetime || len(got.Violations) != len(want.Violations) {
				t.Fatalf("engine %+v, Rego as written %+v", got, want)
			}
			if got.Allow != tc.allow || got.Lifetime.String() != tc.lifetime {
				t.Fatalf("decision %+v, want allow %v lifetime %s", got, tc.allow, tc.lifetime)
			}
		})
	}
}

// A request with more names than the collector scans (a large CSR, with
// repeats) decides as the Rego does.
func TestManyNamesAgree(t *testing.T) {
	data := map[string]any{
		"authority": map[string]any{"allow": map[string]any{"dns": []any{".internal"}},
			"deny": map[string]any{"dns": []any{".prod.internal"}}, "max_lifetime": "24h"},
		"provisioners": map[string]any{"acme": map[string]any{}},
	}
	e, err := NewEngine(EngineConfig{Path: writeBundle(t, data), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stock := stockQuery(t, DecisionQuery, data)
	var ids []core.Identifier
	csr := &CSRInfo{Key: KeyInfo{Type: "ecdsa", Curve: "P-256"}, Subject: Subject{CommonName: "h7.prod.internal"}}
	for i := range 45 {
		zone := []string{"internal", "prod.internal", "example.com"}[i%3]
		n := fmt.Sprintf("h%d.%s", i%40, zone)
		csr.SANs.DNS = append(csr.SANs.DNS, n)
		if i < 10 {
			ids = append(ids, core.Identifier{Type: core.DNS, Value: n})
		}
	}
	in := Input{Stage: StageSign, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"}, Identifiers: ids, CSR: csr,
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := stockDecision(t, stock, in)
	if got.Allow || !reflect.DeepEqual(got.Violations, want.Violations) || got.Lifetime != want.Lifetime {
		t.Fatalf("engine %v %d violations, stock %v %d violations", got.Allow, len(got.Violations), want.Allow, len(want.Violations))
	}
	if len(got.Violations) < 20 {
		t.Fatalf("only %d violations", len(got.Violations))
	}
}

// Durations in days (OPA reads "7d"; policyca stored account policies so
// before 2026-11-29) are accepted in bundle data and account policies and
// cap the lifetime; what is not a positive duration is refused.
func TestLifetimesInDays(t *testing.T) {
	data := map[string]any{
		"authority":    map[string]any{"allow": map[string]any{"dns": []any{".internal"}}, "max_lifetime": "90d"},
		"provisioners": map[string]any{"acme": map[string]any{"default_lifetime": "30d"}},
	}
	e, err := NewEngine(EngineConfig{Path: writeBundle(t, data), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
		Identifiers: []core.Identifier{{Type: core.DNS, Value: "a.internal"}}}
	for policy, want := range map[string]time.Duration{
		``:                         30 * 24 * time.Hour,
		`{"max_lifetime": "7d"}`:   7 * 24 * time.Hour,
		`{"max_lifetime": "1.5d"}`: 36 * time.Hour,
		`{"max_lifetime": "1w"}`:   7 * 24 * time.Hour,
	} {
		in.Account.Policy = []byte(policy)
		d, err := e.Decide(context.Background(), in)
		if err != nil || !d.Allow || d.Lifetime != want {
			t.Errorf("%s: %+v %v, want lifetime %v", policy, d, err, want)
		}
	}
	for _, policy := range []string{`{"max_lifetime": "-1d"}`, `{"max_lifetime": "0d"}`, `{"max_lifetime": "7days"}`} {
		in.Account.Policy = []byte(policy)
		if d, err := e.Decide(context.Background(), in); err == nil || d.Allow {
			t.Errorf("%s: %+v %v, want an error", policy, d, err)
		}
	}
}

// Every layer's allow values are counted before any name is checked, as
// the Rego evaluates its restricting set whole: a value that cannot be
// counted is an error even when a name is denied first, or there is none.
func TestNameRulesCountEveryAllowValue(t *testing.T) {
	in := ast.MustParseTerm(`{"provisioner": {"name": "acme"}, "identifiers": [{"type": "dns", "value": "a.internal"}],
		"candidates": {"dns": {"a.internal": {"a.internal", ".internal", "*.internal"}}}}`).Value
	for _, layer := range []string{
		`{"authority": {"allow": {"dns": {".internal"}, "ip": 5}}}`,
		`{"authority": {"allow": {"dns": {".internal"}}}, "provisioner": {"allow": {"dns": 5}, "deny": {"dns": {".internal"}}}}`,
		`{"authority": {"allow": [".internal", 5]}}`,
	} {
		if _, err := nameViolations(in, ast.MustParseTerm(layer).Value); err == nil {
			t.Errorf("%s: no error", layer)
		}
	}
	none := ast.MustParseTerm(`{"provisioner": {"name": "acme"}, "identifiers": []}`).Value
	if _, err := nameViolations(none, ast.MustParseTerm(`{"authority": {"allow": {"dns": 5}}}`).Value); err == nil {
		t.Error("no names: no error")
	}
	if v, err := nameViolations(in, ast.MustParseTerm(`{"authority": {"allow": {"dns": {".internal"}, "ip": {}}}}`).Value); err != nil || v.Len() != 0 {
		t.Errorf("countable values: %v %v", v, err)
	}
}
