package policy

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

// FuzzBundle loads bundles made of the default policy, one more module and
// a data.json from the fuzzer (a bundle comes from disk or an HTTPS URL).
// Loading must fail cleanly or compile; and when the engine prepares its
// query with rules in Go for the bundle, that query must decide every
// request exactly as the bundle's Rego as written: same allow, violations,
// lifetime, and error or not. It is what the conditions in names.go and
// fastrules.go (stock rules, shadowed builtins, `with`, imports, rules
// under the layer data) are for.
func FuzzBundle(f *testing.F) {
	stock := stockPolicyFiles(f)
	defaultData, err := os.ReadFile("../policies/rego/data.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("package policyca\n", string(defaultData))
	f.Add("package policyca\n\nviolation contains {\"type\": \"x\", \"value\": \"x\", \"layer\": \"authority\", \"reason\": \"r\"} if input.stage == \"sign\"\n", string(defaultData))
	f.Add("package policyca\n\nlifetime_limits contains [1, \"1ns\"]\n", string(defaultData))
	f.Add("package policyca\n\nauthority := {\"allow\": {\"dns\": [\".x\"]}, \"allow_wildcard_names\": false}\n", `{"policyca": {"provisioners": {"acme": {}}}}`)
	f.Add("package policyca.provisioners.acme\n\nmax_lifetime := \"1h\"\n", string(defaultData))
	f.Add("package policyca\n\nis_set(x) := false\n", string(defaultData))
	f.Add("package policyca\n\nprobe := x if {\n\tx := layer with input.provisioner.name as \"dev\"\n}\n", string(defaultData))
	f.Add("package policyca\n", `{"policyca": {"authority": {"allow": {"dns": [".internal"]}, "max_lifetime": "2d"}, "provisioners": {"acme": {"default_lifetime": "36h"}, "dev": {"allow": {"dns": [".dev.internal"]}}}}}`)
	ids := []core.Identifier{{Type: core.DNS, Value: "a.internal"}, {Type: core.DNS, Value: "*.b.internal"},
		{Type: core.IP, Value: "10.1.2.3"}, {Type: core.DNS, Value: "www.example.com"}}
	csr := &CSRInfo{Subject: Subject{CommonName: "a.internal"}, SANs: SANs{DNS: []string{"a.internal", "x.dev.internal"}},
		Key: KeyInfo{Type: "rsa", Bits: 2048}}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, module, data string) {
		if len(module) > 4096 || len(data) > 4096 {
			return
		}
		fs := map[string][]byte{"extra.rego": []byte(module), "data.json": []byte(data)}
		for k, v := range stock {
			fs[k] = v
		}
		b, err := readBundle(source{name: "fuzz.tar.gz", data: writeTarGz(t, fs)}, nil, DefaultMaxBundleBytes)
		if err != nil {
			return
		}
		c, err := compile(ctx, "fuzz", b)
		if err != nil || c.fast == nil {
			return
		}
		// The dev provisioner's layer, if any, also serves as an account
		// policy.
		var pol json.RawMessage
		root, _ := b.Data[Root].(map[string]any)
		provs, _ := root["provisioners"].(map[string]any)
		if acct, ok := provs["dev"]; ok {
			pol, _ = json.Marshal(acct)
		}
		for _, prov := range []string{"acme", "dev", "none"} {
			for _, p := range []json.RawMessage{nil, pol} {
				for i := range ids {
					for _, sign := range []*CSRInfo{nil, csr} {
						in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: prov, Type: "acme"},
							Account: AccountInput{ID: "a", Policy: p}, Identifiers: ids[i : i+1], CSR: sign,
							Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
						if sign != nil {
							in.Stage = StageSign
						}
						v, complete, err := in.valueCandidates(in.Time, &policyCache{})
						if err != nil {
							continue // an account policy the engine refuses: no evaluation at all
						}
						got, gerr := c.eval(ctx, c.query(complete), v, in.Time, 10*time.Second)
						want, werr := c.eval(ctx, &c.pq, v, in.Time, 10*time.Second)
						if timedOut(gerr) || timedOut(werr) {
							return // a slow module on a loaded machine, not a disagreement
						}
						if (gerr == nil) != (werr == nil) || got.Allow != want.Allow || got.Lifetime != want.Lifetime ||
							!reflect.DeepEqual(got.Violations, want.Violations) {
							t.Fatalf("%s %v %v policy %s:\nwith rules in Go %+v %v\nas written       %+v %v\nmodule:\n%s\ndata: %s",
								prov, in.Stage, ids[i], p, got, gerr, want, werr, module, data)
						}
					}
				}
			}
		}
	})
}

func timedOut(err error) bool { return err != nil && strings.Contains(err.Error(), "timed out after") }
