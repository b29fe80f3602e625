package policy

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Candidate patterns. The default policy matches a name against a layer by
// intersecting the layer's rule set with the name's candidate patterns: the
// patterns that would match it. Computing them in Rego costs more than the
// rest of a decision, so the engine computes them here and passes them in
// input.candidates[type][value]; the Rego computes them itself when they are
// absent. The two must agree exactly (TestCandidatesAgreeWithRego), or the
// same request would be decided differently by the engine and by opa eval.

// dnsCandidates mirrors dns_candidates in names.rego: the name, "*." + its
// parent and "." + each proper ancestor. A '.' is one byte in UTF-8, so
// byte offsets give the same suffixes as Rego's code-point offsets.
func dnsCandidates(name string) []string {
	first := strings.IndexByte(name, '.')
	if first < 0 {
		return []string{name}
	}
	cs := []string{name, "*" + name[first:]}
	for i := first; i >= 0; {
		cs = append(cs, name[i:])
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return cs
}

// emailCandidates mirrors email_candidates: the address, its host (lower
// case) and "." + each ancestor of the host.
func emailCandidates(addr string) []string {
	at := strings.IndexByte(addr, '@')
	if at <= 0 {
		return []string{addr}
	}
	host := strings.ToLower(addr[at+1:])
	cs := []string{addr, host}
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			cs = append(cs, host[i:])
		}
	}
	return cs
}

// uriHostRE is uri_host's expression in names.rego.
var uriHostRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^:/?#]*)`)

// uriCandidates mirrors uri_candidates: the DNS candidates of the URI's
// host; none for a URI without a host.
func uriCandidates(uri string) []string {
	m := uriHostRE.FindStringSubmatch(uri)
	if m == nil {
		return []string{}
	}
	h := strings.TrimSuffix(strings.ToLower(m[1]), ".")
	if h == "" {
		return []string{}
	}
	return dnsCandidates(h)
}

// ipCandidates are the address and its masked prefixes of every length, in
// canonical form: the keys under which the engine stores IP rules (see
// canonicalIPRule). A CIDR rule contains the address exactly when the
// address masked to the rule's length is the rule. Addresses that do not
// parse (or carry a zone) get none, and the Rego scans the rules for them
// as before.
func ipCandidates(s string) ([]string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return nil, false
	}
	cs := make([]string, 0, a.BitLen()+2)
	cs = append(cs, a.String())
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		cs = append(cs, p.String())
	}
	return cs, true
}

// candidates returns the candidate patterns of a name of type typ, and
// false when the Rego must work them out itself.
func candidates(typ, value string) ([]string, bool) {
	switch typ {
	case "dns":
		return dnsCandidates(value), true
	case "email":
		return emailCandidates(value), true
	case "uri":
		return uriCandidates(value), true
	case "ip":
		return ipCandidates(value)
	}
	return []string{value}, true
}

// candidateSets builds input.candidates for the names a decision checks:
// {type: {value: set of patterns}}. Sets cannot come from JSON, which is
// how the Rego tells the engine's precomputed candidates from a document
// that merely has a field of that name.
type candidateSets struct {
	// byType holds the names of each type, in candidateTypes' order.
	byType [len(candidateTypes)]ast.Object
	other  map[string]ast.Object
	// incomplete is set when a name has no candidates (an address that
	// does not parse): the Rego then works them out itself.
	incomplete bool
}

// candidateTypes are the name types the input's names can have.
var candidateTypes = [...]string{"dns", "ip", "email", "uri", "cn"}

// names returns the object of the names of type typ, made if need be.
func (c *candidateSets) names(typ string) ast.Object {
	for i, t := range candidateTypes {
		if t == typ {
			if c.byType[i] == nil {
				c.byType[i] = ast.NewObject()
			}
			return c.byType[i]
		}
	}
	if c.other == nil {
		c.other = map[string]ast.Object{}
	}
	obj := c.other[typ]
	if obj == nil {
		obj = ast.NewObject()
		c.other[typ] = obj
	}
	return obj
}

func (c *candidateSets) add(typ, value string) {
	obj := c.names(typ)
	k := ast.StringTerm(value)
	if obj.Get(k) != nil {
		return
	}
	cs, ok := candidates(typ, value)
	if !ok {
		c.incomplete = true
		return
	}
	// One allocation for the terms of a name (34 for an IPv4 address, 130
	// for IPv6) rather than one each.
	terms := make([]ast.Term, len(cs))
	ts := make([]*ast.Term, len(cs))
	for i, s := range cs {
		terms[i].Value = ast.String(s)
		ts[i] = &terms[i]
	}
	obj.Insert(k, ast.SetTerm(ts...))
}

func (c *candidateSets) term() *ast.Term {
	out := ast.NewObject()
	for i, obj := range c.byType {
		if obj != nil {
			out.Insert(key(candidateTypes[i]), ast.NewTerm(obj))
		}
	}
	for typ, obj := range c.other {
		out.Insert(key(typ), ast.NewTerm(obj))
	}
	return ast.NewTerm(out)
}

// canonicalIPRule is the form IP rules are stored in once indexed: what
// ipCandidates produces for the addresses they match. validatePattern has
// already refused what does not parse; such a rule is kept as written.
func canonicalIPRule(r string) string {
	if strings.Contains(r, "/") {
		if p, err := netip.ParsePrefix(r); err == nil {
			return p.Masked().String()
		}
		return r
	}
	if a, err := netip.ParseAddr(r); err == nil {
		return a.String()
	}
	return r
}
