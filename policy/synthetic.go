package policy

import (
	"fmt"

	"github.com/policyca/policyca/core"
)

// Synthetic rule sets, for measuring decisions at a given scale (the
// engine's benchmarks and `policyca bench policy --rules`).

// SyntheticLayer returns a layer with n DNS allow rules under zone, of
// the three pattern kinds in turn (".dept-<i>.<zone>", "*.svc-<i>.<zone>",
// "host-<i>.<zone>"), n/10 deny rules below the first kind
// ("bad-<j>.dept-<3j>.<zone>"), an allow rule for 10.0.0.0/8 and a
// max_lifetime of 720h.
func SyntheticLayer(n int, zone string) map[string]any {
	allow := make([]any, 0, n)
	deny := make([]any, 0, n/10)
	for i := range n {
		switch i % 3 {
		case 0:
			allow = append(allow, fmt.Sprintf(".dept-%d.%s", i, zone))
		case 1:
			allow = append(allow, fmt.Sprintf("*.svc-%d.%s", i, zone))
		default:
			allow = append(allow, fmt.Sprintf("host-%d.%s", i, zone))
		}
	}
	for i := range n / 10 {
		deny = append(deny, fmt.Sprintf("bad-%d.dept-%d.%s", i, i*3, zone))
	}
	return map[string]any{
		"allow":        map[string]any{"dns": allow, "ip": []any{"10.0.0.0/8"}},
		"deny":         map[string]any{"dns": deny},
		"max_lifetime": "720h",
	}
}

// SyntheticIdentifiers returns n DNS identifiers that SyntheticLayer(rules,
// zone) allows, spread over its rules and hitting each pattern kind in
// turn: three labels below a ".dept" rule, one label below a "*.svc"
// rule, a "host" rule exactly. rules must be at least 3.
func SyntheticIdentifiers(n, rules int, zone string) []core.Identifier {
	ids := make([]core.Identifier, 0, n)
	for i := range n {
		k := i % 3
		idx := (i*rules/max(n, 1))/3*3 + k
		if idx >= rules {
			idx = k
		}
		var v string
		switch k {
		case 0:
			v = fmt.Sprintf("a.b.c.dept-%d.%s", idx, zone)
		case 1:
			v = fmt.Sprintf("x.svc-%d.%s", idx, zone)
		default:
			v = fmt.Sprintf("host-%d.%s", idx, zone)
		}
		ids = append(ids, core.Identifier{Type: core.DNS, Value: v})
	}
	return ids
}
