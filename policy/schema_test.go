package policy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/policyca/policyca/core"
)

// matchSchema validates doc against InputSchema with OPA's own JSON Schema
// implementation (the json.match_schema builtin).
func matchSchema(t *testing.T, doc []byte) []any {
	t.Helper()
	var in, schema any
	if err := json.Unmarshal(doc, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(InputSchema, &schema); err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("x := json.match_schema(input.doc, input.schema)"),
		rego.Input(map[string]any{"doc": in, "schema": schema})).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("match_schema: %v %v", rs, err)
	}
	res := rs[0].Bindings["x"].([]any)
	if res[0] == true {
		return nil
	}
	return res[1].([]any)
}

func TestInputDocumentsMatchSchema(t *testing.T) {
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name  string
		in    Input
		valid bool
	}{
		{"order, no account data", orderInput("acme", "a.internal", "10.0.0.1"), true},
		{"order with EAB and account policy", Input{
			Stage: StageOrder, Provisioner: ProvisionerInfo{Name: "dev", Type: "acme"}, Time: when,
			Account:     AccountInput{ID: "a1", EAB: &EABInfo{KeyID: "k", Reference: "web-17"}, Policy: json.RawMessage(`{"allow": {"dns": [".web.internal"]}, "max_lifetime": "48h"}`)},
			Identifiers: []core.Identifier{{Type: core.DNS, Value: "*.web.internal"}},
			RA:          "ra-lab",
		}, true},
		{"sign", Input{
			Stage: StageSign, Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"}, Time: when,
			Account:     AccountInput{ID: "a1"},
			Identifiers: []core.Identifier{{Type: core.DNS, Value: "a.internal"}},
			CSR: &CSRInfo{
				Subject:           Subject{CommonName: "a.internal", Organization: []string{"Org"}},
				SANs:              SANs{DNS: []string{"a.internal"}, IP: []string{"10.0.0.1"}, Email: []string{"x@a.internal"}, URI: []string{"spiffe://a.internal/x"}},
				Key:               KeyInfo{Type: "rsa", Bits: 2048},
				RequestedLifetime: 36 * time.Hour,
			},
		}, true},
		{"smoke input", smokeInput(), true},
		{"no stage", Input{Provisioner: ProvisionerInfo{Name: "acme"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := tt.in.Document()
			if err != nil {
				t.Fatal(err)
			}
			errs := matchSchema(t, doc)
			if (len(errs) == 0) != tt.valid {
				t.Fatalf("valid=%v, errors %v\n%s", len(errs) == 0, errs, doc)
			}
		})
	}
}

// The input the engine evaluates (an AST built directly, with the account
// policy indexed) decides like the JSON document it documents.
func TestDocumentDecidesLikeInput(t *testing.T) {
	e, err := NewEngine(EngineConfig{Path: "../policies/rego", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in := orderInput("acme", "a.team.internal", "b.other.internal", "www.example.com", "10.1.1.1")
	in.Account.Policy = json.RawMessage(`{"allow": {"dns": [".team.internal"], "ip": ["10.1.0.0/16"]}, "deny": {"dns": ["x.team.internal"]}}`)
	in.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	doc, err := in.Document()
	if err != nil {
		t.Fatal(err)
	}
	a, errA := e.Decide(context.Background(), in)
	b, errB := e.DecideDocument(context.Background(), doc)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.Allow != b.Allow || len(a.Violations) != 3 || len(a.Violations) != len(b.Violations) || a.Lifetime != b.Lifetime {
		t.Fatalf("Decide %+v\nDecideDocument %+v", a, b)
	}
	for i := range a.Violations {
		if a.Violations[i] != b.Violations[i] {
			t.Errorf("violation %d: %+v vs %+v", i, a.Violations[i], b.Violations[i])
		}
	}
}
