package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/policyca/policyca/policies"
)

// The name rules in Go. The default bundle gathers the violations of its
// name rules in one set, name_violations (policies/rego/names.rego).
// Evaluated by OPA's interpreter, those rules are most of the cost of a
// decision (about a hundred evaluation steps for one name, six hundred for
// ten), so the engine prepares a second query in which they are replaced
// by one rule that calls nameViolations below, a Go implementation of the
// same rules:
//
//	name_violations := policyca.name_violations(input, layer)
//
// That query is used only when it cannot change a decision:
//   - the bundle's rules of every name that names.rego defines (but
//     violation, which every rule extends), and of layer and layer_label,
//     are exactly the default bundle's (compared rule by rule, so
//     comments, formatting and file names do not matter), so an operator
//     who edits or extends them gets their Rego evaluated as written; and
//   - every name of the request has candidate patterns in the input (the
//     engine computes them; an address it cannot parse is left to the
//     Rego, which scans the IP rules).
//
// Everything else in the bundle (custom violation rules, keys, lifetimes,
// the decision itself) is evaluated in Rego as always.
// TestEngineAgreesWithStockEvaluation and FuzzNameViolations decide
// requests both ways and compare.

// nameBuiltinName is the Go implementation's name.
const nameBuiltinName = "policyca.name_violations"

// fastNameRule replaces the name_violations rules in the fast query.
var fastNameRule = ast.MustParseModuleWithOpts("package "+Root+"\n\nname_violations := "+
	nameBuiltinName+"(input, layer)\n", ast.ParserOptions{RegoVersion: ast.RegoV1}).Rules[0]

var (
	emptySet     = ast.NewSet()
	emptySetTerm = ast.NewTerm(emptySet)
)

// nameBuiltin declares the Go implementation to OPA.
var nameBuiltin = rego.Function2(&rego.Function{
	Name: nameBuiltinName,
	Decl: types.NewFunction(types.Args(types.A, types.A), types.NewSet(types.A)),
}, func(_ rego.BuiltinContext, in, layers *ast.Term) (*ast.Term, error) {
	s, err := nameViolations(in.Value, layers.Value)
	if err != nil {
		return nil, err
	}
	if s == emptySet {
		return emptySetTerm, nil
	}
	return ast.NewTerm(s), nil
})

// stockRules are the rules nameViolations stands for: every rule of
// names.rego but violation, and layer and layer_label of decision.rego.
type stockRules struct {
	// names are their names; rules their text, sorted (namedRules).
	names map[string]bool
	rules []string
}

// loadStockRules reads the default bundle's name rules, once.
var loadStockRules = sync.OnceValues(func() (stockRules, error) {
	var mods []*ast.Module // names.rego, then decision.rego
	for _, f := range []string{"names.rego", "decision.rego"} {
		b, err := fs.ReadFile(policies.Default(), f)
		if err != nil {
			return stockRules{}, err
		}
		m, err := ast.ParseModuleWithOpts(f, string(b), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return stockRules{}, err
		}
		mods = append(mods, m)
	}
	names := map[string]bool{"layer": true, "layer_label": true}
	for _, r := range mods[0].Rules {
		names[ruleName(r)] = true
	}
	// violation is what every rule extends, custom ones included; the rule
	// of names.rego that adds name_violations to it is evaluated in Rego
	// either way.
	delete(names, "violation")
	return stockRules{names: names, rules: namedRules(mods, names)}, nil
})

// ruleName is the first element of a rule's head reference ("layer" for
// layer["authority"] := …).
func ruleName(r *ast.Rule) string {
	ref := r.Head.Ref()
	if len(ref) == 0 {
		return ""
	}
	if v, ok := ref[0].Value.(ast.Var); ok {
		return string(v)
	}
	return ref[0].String()
}

// namedRules returns, sorted, the text of every rule of package policyca
// in mods whose name is in names (locations and comments left out).
func namedRules(mods []*ast.Module, names map[string]bool) []string {
	var out []string
	for _, m := range mods {
		if m.Package.Path.String() != "data."+Root {
			continue
		}
		for _, r := range m.Rules {
			if names[ruleName(r)] {
				out = append(out, r.String())
			}
		}
	}
	sort.Strings(out)
	return out
}

// stockNameRules reports whether the name rules of mods are exactly the
// default bundle's, so that nameViolations decides as they would: the same
// rules, and the same meaning for the names they call. A rule of package
// policyca named like a builtin (is_set, startswith…) or like the first
// part of one (net, time…), or an import in a module that holds stock
// rules, would make their calls reach something else than the builtins
// the Go implementation stands for.
func stockNameRules(mods []*ast.Module) bool {
	stock, err := loadStockRules()
	if err != nil {
		return false
	}
	return slices.Equal(namedRules(mods, stock.names), stock.rules) && !shadowsBuiltins(mods, stock.names)
}

// builtinNames holds every enabled builtin's name and the first part of
// each dotted one.
var builtinNames = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, b := range capabilities().Builtins {
		m[b.Name] = true
		if first, _, ok := strings.Cut(b.Name, "."); ok {
			m[first] = true
		}
	}
	// And the Go implementations' own names, which a rule could take over.
	for _, n := range []string{nameBuiltinName, layerBuiltinName, lifetimeBuiltinName} {
		first, _, _ := strings.Cut(n, ".")
		m[first], m[n] = true, true
	}
	return m
})

// shadowsBuiltins reports whether mods define, in package policyca, a rule
// named like a builtin (or like the Go implementation), use `with` in any
// module (which can replace a builtin or a stock rule for one evaluation),
// or import anything (but the rego.v1 and future keywords) into a module
// that holds one of the stock rules, names.
func shadowsBuiltins(mods []*ast.Module, names map[string]bool) bool {
	builtins := builtinNames()
	for _, m := range mods {
		// A with anywhere (a sub-package can evaluate the stock rules
		// with a builtin replaced, and feed the result back).
		with := false
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			with = with || len(e.With) > 0
			return with
		})
		if with {
			return true
		}
		if m.Package.Path.String() != "data."+Root {
			continue
		}
		stockModule := false
		for _, r := range m.Rules {
			n := ruleName(r)
			if builtins[n] {
				return true
			}
			stockModule = stockModule || names[n]
		}
		if !stockModule {
			continue
		}
		for _, imp := range m.Imports {
			if p := imp.Path.String(); p != "rego.v1" && !strings.HasPrefix(p, "future.keywords") {
				return true
			}
		}
	}
	return false
}

// name is one name a certificate would carry.
type name struct{ typ, value string }

// nameViolations is name_violations of names.rego, given input and layer: for every
// name of the request (identifiers, CSR SANs, a CN that is not one of
// them) and every layer, the deny rule that matches it (the first in sort
// order), or, in a layer with allow rules, the absence of a matching allow
// rule; and the wildcard names the layers refuse.
func nameViolations(in, layers ast.Value) (ast.Set, error) {
	input, ok := in.(ast.Object)
	if !ok {
		return nil, errors.New("name_violations: input is not an object")
	}
	var buf [3]ruleLayer
	ls, err := ruleLayers(input, layers, buf[:0])
	if err != nil {
		return nil, err
	}
	names, err := requestNames(input)
	if err != nil {
		return nil, err
	}
	var out ast.Set
	add := func(n name, layer, reason string) {
		if out == nil {
			out = ast.NewSet()
		}
		out.Add(ast.ObjectTerm(
			ast.Item(termType, ast.StringTerm(n.typ)),
			ast.Item(termValue, ast.StringTerm(n.value)),
			ast.Item(termLayer, ast.StringTerm(layer)),
			ast.Item(termReason, ast.StringTerm(reason))))
	}
	for _, n := range names {
		cs, ok := lookup(input, "candidates", n.typ, n.value).(ast.Set)
		if !ok {
			return nil, fmt.Errorf("name_violations: no candidate patterns for %s %q", n.typ, n.value)
		}
		typ := key(n.typ)
		for i := range ls {
			l := &ls[i]
			if hit, ok := firstMatch(l.deny, typ, cs); ok {
				add(n, l.kind, fmt.Sprintf("%s: denied by %s rule '%s'", n.value, l.label, hit))
				continue
			}
			if _, ok := firstMatch(l.allow, typ, cs); l.restricting && !ok {
				add(n, l.kind, fmt.Sprintf("%s: not allowed by %s", n.value, l.label))
			}
		}
		if n.typ != "dns" || !strings.HasPrefix(n.value, "*.") {
			continue
		}
		if !ast.Boolean(true).Equal(lookup(layers, "authority", "allow_wildcard_names")) {
			add(n, "authority", fmt.Sprintf("%s: wildcard names are not allowed by authority", n.value))
		}
		for _, l := range ls {
			if l.kind != "authority" && ast.Boolean(false).Equal(lookup(l.layer, "allow_wildcard_names")) {
				add(n, l.kind, fmt.Sprintf("%s: wildcard names are not allowed by %s", n.value, l.label))
			}
		}
	}
	if out == nil {
		// Most requests: a shared empty set, which OPA only reads.
		return emptySet, nil
	}
	return out, nil
}

var (
	termType   = ast.StringTerm("type")
	termValue  = ast.StringTerm("value")
	termLayer  = ast.StringTerm("layer")
	termReason = ast.StringTerm("reason")
)

// ruleLayer is one layer of layer, with what a name is checked against.
type ruleLayer struct {
	kind, label string
	layer       ast.Value
	// deny and allow are the layer's rules by type (nil if none).
	deny, allow ast.Value
	// restricting is restricts(kind), worked out for every layer before
	// any name is checked, as the Rego's restricting set is evaluated
	// whole (it can fail on malformed data).
	restricting bool
}

// ruleLayers lists the layers that layer_label names: a layer of another
// kind gets no name violations from the Rego (its reason would be
// undefined), nor from here.
func ruleLayers(input ast.Object, layers ast.Value, out []ruleLayer) ([]ruleLayer, error) {
	ls, ok := layers.(ast.Object)
	if !ok {
		return nil, errors.New("name_violations: layer is not an object")
	}
	for _, kind := range [...]string{"authority", "provisioner", "account"} {
		v := ls.Get(key(kind))
		if v == nil {
			continue
		}
		l := ruleLayer{kind: kind, label: kind, layer: v.Value, deny: lookup(v.Value, "deny"), allow: lookup(v.Value, "allow")}
		switch kind {
		case "account":
			l.label = "account policy"
		case "provisioner":
			p, ok := lookup(input, "provisioner", "name").(ast.String)
			if !ok {
				return nil, errors.New("name_violations: input.provisioner.name is not a string")
			}
			l.label = "provisioner '" + string(p) + "'"
		}
		// The Rego's restricting set is evaluated whole, whatever the
		// names: a count error in any layer is an error.
		r, err := restricts(l.layer)
		if err != nil {
			return nil, err
		}
		l.restricting = r
		out = append(out, l)
	}
	return out, nil
}

// requestNames are names (san_names | cn_names) of names.rego, without
// duplicates.
func requestNames(input ast.Object) ([]name, error) {
	var c nameCollector
	if ids, ok := lookup(input, "identifiers").(*ast.Array); ok {
		for i := range ids.Len() {
			if o, ok := ids.Elem(i).Value.(ast.Object); ok {
				typ, value := lookup(o, "type"), lookup(o, "value")
				if typ != nil && value != nil {
					if err := c.add(typ, value); err != nil {
						return nil, err
					}
				}
			}
		}
	} else if lookup(input, "identifiers") != nil {
		return nil, errors.New("name_violations: input.identifiers is not an array")
	}
	if sans, ok := lookup(input, "csr", "sans").(ast.Object); ok {
		for _, t := range sans.Keys() {
			switch vs := sans.Get(t).Value.(type) {
			case *ast.Array:
				for i := range vs.Len() {
					if err := c.add(t.Value, vs.Elem(i).Value); err != nil {
						return nil, err
					}
				}
			case ast.Null:
			default:
				return nil, errors.New("name_violations: input.csr.sans holds a value that is not an array")
			}
		}
	}
	if cn, ok := lookup(input, "csr", "subject", "common_name").(ast.String); ok && cn != "" && !c.hasValue(string(cn)) {
		c.names = append(c.names, name{"cn", string(cn)})
	}
	return c.names, nil
}

// nameCollector gathers the request's names once each. An ACME order has
// a few names, which a scan finds faster than a map; past 32 names (large
// CSRs) a map takes over.
type nameCollector struct {
	names []name
	seen  map[name]bool
}

func (c *nameCollector) add(typ, value ast.Value) error {
	t, ok1 := typ.(ast.String)
	v, ok2 := value.(ast.String)
	if !ok1 || !ok2 {
		return errors.New("name_violations: a name's type or value is not a string")
	}
	n := name{string(t), string(v)}
	if c.seen == nil && len(c.names) >= 32 {
		c.seen = make(map[name]bool, 2*len(c.names))
		for _, m := range c.names {
			c.seen[m] = true
		}
	}
	switch {
	case c.seen != nil:
		if c.seen[n] {
			return nil
		}
		c.seen[n] = true
	case slices.Contains(c.names, n):
		return nil
	}
	c.names = append(c.names, n)
	return nil
}

// hasValue reports whether a name has the value v (of any type). It is
// asked once per request.
func (c *nameCollector) hasValue(v string) bool {
	return slices.ContainsFunc(c.names, func(n name) bool { return n.value == v })
}

// firstMatch is min(rule_set(kind, side, typ) & candidates) for one side
// (the rules by type) of a layer: the first (in sort order) rule of type
// typ that is one of the candidates.
func firstMatch(side ast.Value, typ *ast.Term, cs ast.Set) (string, bool) {
	o, ok := side.(ast.Object)
	if !ok {
		return "", false
	}
	t := o.Get(typ)
	if t == nil {
		return "", false
	}
	var contains func(*ast.Term) bool
	switch r := t.Value.(type) {
	case ast.Set:
		contains = r.Contains
	case ast.Object:
		contains = func(t *ast.Term) bool { return r.Get(t) != nil }
	case *ast.Array:
		contains = func(t *ast.Term) bool {
			for i := range r.Len() {
				if r.Elem(i).Equal(t) {
					return true
				}
			}
			return false
		}
	default:
		return "", false
	}
	// Slice is in sort order, so the first candidate that is a rule is
	// the least.
	for _, c := range cs.Slice() {
		if s, ok := c.Value.(ast.String); ok && contains(c) {
			return string(s), true
		}
	}
	return "", false
}

// restricts is restricts(kind): the layer has a non-empty allow list.
// count() of anything but a string or a collection is an error in Rego
// (with strict builtin errors), and so here.
func restricts(layer ast.Value) (bool, error) {
	found := false
	switch a := lookup(layer, "allow").(type) {
	case ast.Object:
		for it := a.KeysIterator(); ; {
			k, more := it.Next()
			if !more {
				return found, nil
			}
			if n, err := countOf(a.Get(k)); err != nil {
				return false, err
			} else if n > 0 {
				found = true
			}
		}
	case ast.Set:
		for _, t := range a.Slice() {
			if n, err := countOf(t); err != nil {
				return false, err
			} else if n > 0 {
				found = true
			}
		}
	case *ast.Array:
		for i := range a.Len() {
			if n, err := countOf(a.Elem(i)); err != nil {
				return false, err
			} else if n > 0 {
				found = true
			}
		}
	}
	return found, nil
}

// countOf is count(t) in Rego: an error for what is neither a string nor
// a collection.
func countOf(t *ast.Term) (int, error) {
	switch v := t.Value.(type) {
	case ast.String:
		return utf8.RuneCountInString(string(v)), nil
	case ast.Set:
		return v.Len(), nil
	case ast.Object:
		return v.Len(), nil
	case *ast.Array:
		return v.Len(), nil
	default:
		return 0, fmt.Errorf("name_violations: count of %v", ast.ValueName(v))
	}
}

// lookup is v[k0][k1]… for string keys of objects; nil when absent.
func lookup(v ast.Value, keys ...string) ast.Value {
	for _, k := range keys {
		o, ok := v.(ast.Object)
		if !ok {
			return nil
		}
		t := o.Get(key(k))
		if t == nil {
			return nil
		}
		v = t.Value
	}
	return v
}
