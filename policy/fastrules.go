package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/policyca/policyca/policies"
)

// layer and lifetime in Go, beside the name rules (names.go). In the fast
// query (the one with the name rules in Go) two more stock rules of the
// default bundle are replaced by Go implementations of the same rules,
// when that cannot change a decision:
//
//	layer := policyca.layer(input)        # decision.rego
//	lifetime := policyca.lifetime(layer)  # lifetime.rego
//
//   - layer, always: the fast query is prepared only when nothing in the
//     bundle defines a rule at or below data.policyca.authority or
//     data.policyca.provisioners, which the Go reads from the bundle's
//     (validated) data as it was loaded (layer itself is one of the stock
//     rules the fast query requires);
//   - lifetime, when the bundle's lifetime and lifetime_limits rules are
//     exactly the default's (compared rule by rule, like the name rules).
//
// lifetime_limits stays in Rego for any custom rule that reads it. The
// rules that remain (the violation set, custom rules, keys, the decision
// document) are evaluated in Rego as always. TestEngineAgreesWithStock-
// Evaluation, TestFastLifetimeAgrees and FuzzNameViolations decide
// requests both ways and compare.

const (
	layerBuiltinName    = "policyca.layer"
	lifetimeBuiltinName = "policyca.lifetime"
)

var (
	fastLayerRule    = mustRule("layer := " + layerBuiltinName + "(input)")
	fastLifetimeRule = mustRule("lifetime := " + lifetimeBuiltinName + "(layer)")
)

func mustRule(text string) *ast.Rule {
	return ast.MustParseModuleWithOpts("package "+Root+"\n\n"+text+"\n", ast.ParserOptions{RegoVersion: ast.RegoV1}).Rules[0]
}

// layerData is what the stock layer rule reads from the bundle's data:
// data.policyca.authority and data.policyca.provisioners, nil when absent.
type layerData struct {
	authority, provisioners ast.Value
	// byName holds the layer of a request without an account policy for
	// each provisioner of the data, and none the layer of a provisioner
	// the data does not have: these depend on the bundle alone, and are
	// built once. They are never modified, like the store's values.
	byName map[string]ast.Object
	none   ast.Object
	// lifetimes holds what goLifetime gives for each of those layers.
	lifetimes map[ast.Object]lifetimeResult
}

type lifetimeResult struct {
	text string
	ok   bool
	err  error
}

// newLayerData is the layer data of authority and provisioners (nil when
// absent), with the layers of requests without an account policy built.
func newLayerData(authority, provisioners ast.Value) *layerData {
	d := &layerData{authority: authority, provisioners: provisioners, byName: map[string]ast.Object{}}
	d.none = buildLayer(d, ast.NewObject())
	if ps, ok := provisioners.(ast.Object); ok {
		ps.Foreach(func(k, _ *ast.Term) {
			if n, ok := k.Value.(ast.String); ok {
				in := ast.NewObject(ast.Item(key("provisioner"), ast.ObjectTerm(ast.Item(key("name"), k))))
				d.byName[string(n)] = buildLayer(d, in)
			}
		})
	}
	d.lifetimes = make(map[ast.Object]lifetimeResult, len(d.byName)+1)
	for _, l := range append(slices.Collect(maps.Values(d.byName)), d.none) {
		var r lifetimeResult
		r.text, r.ok, r.err = goLifetime(l)
		d.lifetimes[l] = r
	}
	return d
}

// readLayerData reads the layer data from store.
func readLayerData(ctx context.Context, store storage.Store) (*layerData, error) {
	read := func(key string) (ast.Value, error) {
		v, err := storage.ReadOne(ctx, store, storage.Path{Root, key})
		if storage.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, fmt.Errorf("data.%s.%s: %w", Root, key, err)
		}
		return av, nil
	}
	a, err := read("authority")
	if err != nil {
		return nil, err
	}
	p, err := read("provisioners")
	if err != nil {
		return nil, err
	}
	return newLayerData(a, p), nil
}

// layerBuiltin is layer of decision.rego given input, over the data that
// d holds (it is loaded once per bundle; tests that rewrite the store set
// it again).
func layerBuiltin(d *atomic.Pointer[layerData]) func(*rego.Rego) {
	return rego.Function1(&rego.Function{
		Name: layerBuiltinName,
		Decl: types.NewFunction(types.Args(types.A), types.A),
	}, func(_ rego.BuiltinContext, in *ast.Term) (*ast.Term, error) {
		return ast.NewTerm(goLayer(d.Load(), in.Value)), nil
	})
}

var (
	termAuthority   = ast.StringTerm("authority")
	termProvisioner = ast.StringTerm("provisioner")
	termAccount     = ast.StringTerm("account")
)

// goLayer is
//
//	{"authority": data.policyca.authority,
//	 "provisioner": data.policyca.provisioners[input.provisioner.name],
//	 "account": input.account.policy}
//
// without the entries that are undefined, and without the account policy
// when it is not an object.
func goLayer(d *layerData, input ast.Value) ast.Object {
	if _, acct := lookup(input, "account", "policy").(ast.Object); !acct && d.none != nil {
		if n, ok := lookup(input, "provisioner", "name").(ast.String); ok {
			if l, ok := d.byName[string(n)]; ok {
				return l
			}
			return d.none
		}
	}
	return buildLayer(d, input)
}

// buildLayer is goLayer without the layers built once.
func buildLayer(d *layerData, input ast.Value) ast.Object {
	out := ast.NewObject()
	if d.authority != nil {
		out.Insert(termAuthority, ast.NewTerm(d.authority))
	}
	if ps, ok := d.provisioners.(ast.Object); ok {
		if n := lookup(input, "provisioner", "name"); n != nil {
			if p := ps.Get(ast.NewTerm(n)); p != nil {
				out.Insert(termProvisioner, p)
			}
		}
	}
	if a, ok := lookup(input, "account", "policy").(ast.Object); ok {
		out.Insert(termAccount, ast.NewTerm(a))
	}
	return out
}

// lifetimeBuiltin declares goLifetime to OPA. For a layer that layerBuiltin
// built once (with d's data), the result is the one worked out then.
func lifetimeBuiltin(d *atomic.Pointer[layerData]) func(*rego.Rego) {
	return rego.Function1(&rego.Function{
		Name: lifetimeBuiltinName,
		Decl: types.NewFunction(types.Args(types.A), types.S),
	}, func(_ rego.BuiltinContext, layer *ast.Term) (*ast.Term, error) {
		var r lifetimeResult
		var cached bool
		if ld, o := d.Load(), layer.Value; ld != nil {
			if l, ok := o.(ast.Object); ok {
				r, cached = ld.lifetimes[l]
			}
		}
		if !cached {
			r.text, r.ok, r.err = goLifetime(layer.Value)
		}
		if r.err != nil || !r.ok {
			return nil, r.err
		}
		return ast.StringTerm(r.text), nil
	})
}

// parseDurationNs is OPA's own time.parse_duration_ns, so that the Go
// reads durations exactly as the Rego does (including OPA's d, w and y).
var parseDurationNs = topdown.GetBuiltin(ast.ParseDurationNanos.Name)

// durationNs is time.parse_duration_ns(d): texts through regoDuration,
// anything else through OPA's builtin.
func durationNs(d *ast.Term) (int64, error) {
	if s, ok := d.Value.(ast.String); ok {
		ns, err := regoDuration(string(s))
		return int64(ns), err
	}
	return opaDurationNs(d)
}

// opaDurationNs is OPA's time.parse_duration_ns(d).
func opaDurationNs(d *ast.Term) (int64, error) {
	var out *ast.Term
	err := parseDurationNs(topdown.BuiltinContext{}, []*ast.Term{d}, func(t *ast.Term) error {
		out = t
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", ast.ParseDurationNanos.Name, err)
	}
	n, ok := out.Value.(ast.Number)
	if !ok {
		return 0, errors.New(ast.ParseDurationNanos.Name + ": no number")
	}
	ns, ok := n.Int64()
	if !ok {
		return 0, errors.New(ast.ParseDurationNanos.Name + ": out of range")
	}
	return ns, nil
}

// regoDuration parses s as the policy's Rego does (time.parse_duration_ns):
// Go's syntax, and OPA's d, w and y ("7d").
func regoDuration(s string) (time.Duration, error) {
	if s != "" && !strings.ContainsAny(s, "dwy") {
		// OPA's own path for such texts; no term to build (the decision's
		// lifetime is read this way on every decision).
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", ast.ParseDurationNanos.Name, err)
		}
		return d, nil
	}
	ns, err := opaDurationNs(ast.StringTerm(s))
	return time.Duration(ns), err
}

// goLifetime is lifetime of lifetime.rego given layer: of the provisioner
// layer's default_lifetime and every layer's max_lifetime, the shortest
// (the least text among equally long ones, as min over [ns, text] pairs
// picks), and false when there is none. A value that is not a duration is
// an error, as time.parse_duration_ns is with strict builtin errors.
func goLifetime(layer ast.Value) (string, bool, error) {
	var (
		found  bool
		bestNs int64
		best   string
	)
	add := func(d *ast.Term) error {
		ns, err := durationNs(d)
		if err != nil {
			return err
		}
		s, ok := d.Value.(ast.String)
		if !ok {
			return errors.New("lifetime: a limit is not a string")
		}
		if !found || ns < bestNs || (ns == bestNs && string(s) < best) {
			found, bestNs, best = true, ns, string(s)
		}
		return nil
	}
	ls, ok := layer.(ast.Object)
	if !ok {
		return "", false, nil
	}
	if p := lookup(ls, "provisioner"); p != nil {
		if d := refGet(p, "default_lifetime"); d != nil {
			if err := add(d); err != nil {
				return "", false, err
			}
		}
	}
	var err error
	ls.Foreach(func(_, rules *ast.Term) {
		if err != nil {
			return
		}
		if d := refGet(rules.Value, "max_lifetime"); d != nil {
			err = add(d)
		}
	})
	if err != nil || !found {
		return "", false, err
	}
	return best, true, nil
}

// stockLifetimeNames are the rules goLifetime stands for.
var stockLifetimeNames = map[string]bool{"lifetime": true, "lifetime_limits": true}

// loadStockLifetime reads the default bundle's lifetime rules, once.
var loadStockLifetime = sync.OnceValues(func() ([]string, error) {
	b, err := fs.ReadFile(policies.Default(), "lifetime.rego")
	if err != nil {
		return nil, err
	}
	m, err := ast.ParseModuleWithOpts("lifetime.rego", string(b), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	return namedRules([]*ast.Module{m}, stockLifetimeNames), nil
})

// stockLifetime reports whether the lifetime rules of mods are exactly
// the default bundle's, and the names they call mean what they do there.
func stockLifetime(mods []*ast.Module) bool {
	stock, err := loadStockLifetime()
	return err == nil && slices.Equal(namedRules(mods, stockLifetimeNames), stock) &&
		!shadowsBuiltins(mods, stockLifetimeNames)
}

// layerDataIsBase reports whether no rule of mods is defined at or below
// data.policyca.authority or data.policyca.provisioners, so that what the
// stock layer rule reads there is the bundle's data alone.
func layerDataIsBase(mods []*ast.Module) bool {
	for _, m := range mods {
		pkg := m.Package.Path.String()
		for _, key := range []string{"authority", "provisioners"} {
			under := "data." + Root + "." + key
			if pkg == under || strings.HasPrefix(pkg, under+".") || strings.HasPrefix(pkg, under+"[") {
				return false
			}
		}
		if pkg != "data."+Root {
			continue
		}
		for _, r := range m.Rules {
			if n := ruleName(r); n == "authority" || n == "provisioners" {
				return false
			}
		}
	}
	return true
}

// withRulesReplaced returns mods with every rule of package policyca
// whose name is a key of repl replaced by repl's rule (in copies of the
// modules that hold them; each replacement is added once).
func withRulesReplaced(mods []*ast.Module, repl map[string]*ast.Rule) []*ast.Module {
	out := make([]*ast.Module, len(mods))
	added := map[string]bool{}
	replaced := func(r *ast.Rule) bool { return repl[ruleName(r)] != nil }
	for i, m := range mods {
		if m.Package.Path.String() != "data."+Root || !slices.ContainsFunc(m.Rules, replaced) {
			out[i] = m
			continue
		}
		c := m.Copy()
		var names []string
		for _, r := range c.Rules {
			if n := ruleName(r); repl[n] != nil && !added[n] {
				added[n] = true
				names = append(names, n)
			}
		}
		c.Rules = slices.DeleteFunc(c.Rules, replaced)
		for _, n := range names {
			nr := repl[n].Copy()
			nr.Module = c
			c.Rules = append(c.Rules, nr)
		}
		out[i] = c
	}
	return out
}

// refGet is v.k in Rego: an object's value, or a set's element k.
func refGet(v ast.Value, k string) *ast.Term {
	switch x := v.(type) {
	case ast.Object:
		return x.Get(key(k))
	case ast.Set:
		if t := key(k); x.Contains(t) {
			return t
		}
	}
	return nil
}
