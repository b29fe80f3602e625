package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/util"

	"github.com/policyca/policyca/core"
)

// Layer validation. The name-rule layers are configuration, and a typo in
// configuration must be an error naming the field rather than a silently
// ignored rule (which, for a deny rule, would widen what gets signed). The
// bundle's authority and provisioner layers are checked when the bundle
// loads, so a bad bundle is refused and the last good one stays; account
// policies are checked when they are evaluated, and a bad one denies.

var (
	layerFields = []string{"allow", "deny", "allow_wildcard_names", "max_lifetime", "default_lifetime", "keys"}
	ruleTypes   = []string{"dns", "ip", "email", "uri", "cn"}
	keyFields   = []string{"min_rsa_bits", "ecdsa_curves"}
)

// validateData checks data.policyca.authority and every
// data.policyca.provisioners entry. Other keys under data.policyca belong
// to custom rules and are not checked.
func validateData(data map[string]any) error {
	root, ok := data[Root].(map[string]any)
	if !ok {
		if _, present := data[Root]; present {
			return fmt.Errorf("data.%s is not an object", Root)
		}
		return nil
	}
	if a, ok := root["authority"]; ok {
		if err := validateLayer("data.policyca.authority", a, false); err != nil {
			return err
		}
	}
	if ps, ok := root["provisioners"]; ok {
		m, ok := ps.(map[string]any)
		if !ok {
			return fmt.Errorf("data.policyca.provisioners is not an object")
		}
		for _, name := range sortedKeys(m) {
			if err := validateLayer(fmt.Sprintf("data.policyca.provisioners[%q]", name), m[name], true); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateLayer checks one layer; field names the layer in errors.
// default_lifetime belongs to provisioners only.
func validateLayer(field string, v any, provisioner bool) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s is not an object", field)
	}
	for _, k := range sortedKeys(m) {
		f := field + "." + k
		if !slices.Contains(layerFields, k) || (k == "default_lifetime" && !provisioner) {
			return fmt.Errorf("%s: unknown field", f)
		}
		switch k {
		case "allow", "deny":
			if err := validateRules(f, m[k]); err != nil {
				return err
			}
		case "allow_wildcard_names":
			if _, ok := m[k].(bool); !ok {
				return fmt.Errorf("%s is not a boolean", f)
			}
		case "max_lifetime", "default_lifetime":
			s, ok := m[k].(string)
			if !ok {
				return fmt.Errorf("%s is not a duration string", f)
			}
			// As the Rego reads it: Go's syntax, and OPA's days ("7d").
			if d, err := regoDuration(s); err != nil || d <= 0 {
				return fmt.Errorf("%s: %q is not a positive duration (e.g. \"24h\" or \"7d\")", f, s)
			}
		case "keys":
			if err := validateKeys(f, m[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateRules(field string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s is not an object", field)
	}
	for _, t := range sortedKeys(m) {
		f := field + "." + t
		if !slices.Contains(ruleTypes, t) {
			return fmt.Errorf("%s: unknown identifier type (want one of %s)", f, strings.Join(ruleTypes, ", "))
		}
		var patterns []string
		switch rules := m[t].(type) {
		case []any:
			for i, r := range rules {
				s, ok := r.(string)
				if !ok {
					return fmt.Errorf("%s[%d] is not a string", f, i)
				}
				patterns = append(patterns, s)
			}
		case map[string]any:
			patterns = sortedKeys(rules)
		default:
			return fmt.Errorf("%s is not a list of patterns", f)
		}
		for _, p := range patterns {
			if err := validatePattern(t, p); err != nil {
				return fmt.Errorf("%s: %q: %w", f, p, err)
			}
		}
	}
	return nil
}

// ValidateAccountPolicy checks an account policy (JSON) as decisions will:
// a policy stored after passing it is never refused at decision time.
func ValidateAccountPolicy(raw []byte) error {
	_, err := parseAccountPolicy(raw)
	return err
}

// parseAccountPolicy decodes an account policy as OPA does and validates it.
func parseAccountPolicy(raw []byte) (any, error) {
	var x any
	if err := util.UnmarshalJSON(raw, &x); err != nil {
		return nil, fmt.Errorf("account policy: %w", err)
	}
	if err := validateLayer("account policy", x, false); err != nil {
		return nil, err
	}
	return x, nil
}

// validatePattern catches patterns that could never match what their
// author meant.
func validatePattern(typ, p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	switch typ {
	case "ip":
		if strings.Contains(p, "/") {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return fmt.Errorf("not a CIDR prefix")
			}
			if pfx != pfx.Masked() {
				return fmt.Errorf("has host bits set (did you mean %s?)", pfx.Masked())
			}
			if pfx.Addr().Is4In6() {
				return fmt.Errorf("IPv4-mapped addresses are matched as IPv4: write the IPv4 prefix%s", mappedHint(pfx))
			}
			return nil
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("not an IP address or CIDR prefix")
		}
		if a.Zone() != "" {
			// Names never carry a zone, so such a rule could never match.
			return fmt.Errorf("an IP rule cannot have a zone")
		}
		if a.Is4In6() {
			return fmt.Errorf("IPv4-mapped addresses are matched as IPv4: write %s", a.Unmap())
		}
	case "dns":
		if p != strings.ToLower(p) {
			return fmt.Errorf("patterns are matched against normalised (lower-case) names")
		}
		if strings.Contains(strings.TrimPrefix(p, "*."), "*") {
			return fmt.Errorf("a wildcard is only allowed as the whole first label (\"*.example.internal\")")
		}
		if strings.HasSuffix(p, ".") {
			return fmt.Errorf("names are matched without a trailing dot")
		}
		// Names are matched in the form identifiers are normalised to
		// (IDNA A-labels: bücher → xn--bcher-kva); a pattern in another
		// form would never match. A name the normaliser refuses is left
		// as it is: no identifier can have it either.
		name := strings.TrimPrefix(strings.TrimPrefix(p, "*"), ".")
		if n, err := core.NormalizeIdentifier(core.Identifier{Type: core.DNS, Value: name}); err == nil && n.Value != name {
			return fmt.Errorf("names are matched in normal form: write %q", strings.TrimSuffix(p, name)+n.Value)
		}
	}
	return nil
}

// mappedHint suggests the IPv4 prefix an IPv4-mapped one stands for.
func mappedHint(p netip.Prefix) string {
	if p.Bits() < 96 {
		return ""
	}
	return " " + netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).String()
}

func validateKeys(field string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s is not an object", field)
	}
	for _, k := range sortedKeys(m) {
		f := field + "." + k
		switch k {
		case "min_rsa_bits":
			if _, ok := asInt(m[k]); !ok {
				return fmt.Errorf("%s is not an integer", f)
			}
		case "ecdsa_curves":
			list, ok := m[k].([]any)
			if !ok {
				return fmt.Errorf("%s is not a list", f)
			}
			for i, c := range list {
				if _, ok := c.(string); !ok {
					return fmt.Errorf("%s[%d] is not a string", f, i)
				}
			}
		default:
			return fmt.Errorf("%s: unknown field (want one of %s)", f, strings.Join(keyFields, ", "))
		}
	}
	return nil
}

// asInt accepts the number types JSON decoders produce.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), n == float64(int64(n))
	case int:
		return int64(n), true
	case int64:
		return n, true
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
