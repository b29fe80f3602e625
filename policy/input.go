package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/policyca/policyca/core"
)

// InputVersion is the version of the input document (input.input_version).
// It changes only when a field changes meaning or disappears; new fields
// keep the version.
const InputVersion = 1

// Stage is when the policy runs.
type Stage string

// Stages.
const (
	StageOrder Stage = "order"
	StageSign  Stage = "sign"
)

// Input is what a decision is made on. It is converted to the documented
// input document (docs/policy.md, schema/input.schema.json); Document
// returns that JSON form.
type Input struct {
	Stage       Stage
	Provisioner ProvisionerInfo
	Account     AccountInput
	// Identifiers are normalised (core.NormalizeIdentifiers).
	Identifiers []core.Identifier
	// CSR is set at the sign stage only.
	CSR *CSRInfo
	// RA names the relaying registration authority ("" = none, null in the
	// document).
	RA string
	// Time is the time of the request (zero = the engine's clock). It is
	// also what time.now_ns returns to the policy.
	Time time.Time
}

// ProvisionerInfo names the provisioner (ACME endpoint) of the request.
type ProvisionerInfo struct {
	Name string
	Type string
}

// AccountInput describes the requesting account.
type AccountInput struct {
	ID string
	// EAB is the External Account Binding key that bound the account, nil
	// if none.
	EAB *EABInfo
	// Policy is the account layer's name rules, from the EAB key's record
	// (nil = no account layer).
	Policy json.RawMessage
}

// EABInfo identifies an EAB key.
type EABInfo struct {
	KeyID     string
	Reference string
}

// CSRInfo is what the policy sees of a certificate request.
type CSRInfo struct {
	Subject Subject
	SANs    SANs
	Key     KeyInfo
	// RequestedLifetime is notAfter − notBefore as asked for in the order
	// (0 = not requested).
	RequestedLifetime time.Duration
}

// Subject is the part of the CSR subject the policy sees.
type Subject struct {
	CommonName         string
	Organization       []string
	OrganizationalUnit []string
}

// SANs are the CSR's subject alternative names by type. IPs are in
// canonical text form.
type SANs struct {
	DNS, IP, Email, URI []string
}

// KeyInfo describes the CSR's public key: Type is "rsa" (with Bits),
// "ecdsa" (with Curve, e.g. "P-256") or "ed25519".
type KeyInfo struct {
	Type  string
	Bits  int
	Curve string
}

var (
	nullTerm         = ast.NullTerm()
	inputVersionTerm = ast.IntNumberTerm(InputVersion)
	strTerms         = map[string]*ast.Term{}
)

func init() {
	for _, k := range []string{"input_version", "stage", "provisioner", "name", "type", "account", "id",
		"eab", "kid", "reference", "policy", "identifiers", "value", "csr", "subject", "common_name",
		"organization", "organizational_unit", "sans", "dns", "ip", "email", "uri", "key", "bits",
		"curve", "requested_lifetime", "ra", "time", "candidates", "cn",
		// Read by the Go rules (names.go, fastrules.go).
		"allow", "deny", "allow_wildcard_names", "authority", "max_lifetime", "default_lifetime",
		// Common values.
		string(StageOrder), string(StageSign), "acme", "rsa", "ecdsa", "ed25519", "P-256", "P-384", "P-521"} {
		strTerms[k] = ast.StringTerm(k)
	}
}

// key is the shared term of the object key k: one of strTerms, or a new
// term for any other string.
func key(k string) *ast.Term {
	if t, ok := strTerms[k]; ok {
		return t
	}
	return ast.StringTerm(k)
}

func strOrNull(s string) *ast.Term {
	if s == "" {
		return nullTerm
	}
	return ast.StringTerm(s)
}

func strArray(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

// value builds the input document directly as an AST value: this avoids
// a JSON round trip per decision, and the account policy, which may hold
// thousands of rules, comes pre-converted from cache. With policies set (the
// engine's evaluations), it adds input.candidates, the candidate patterns of
// every name the policy checks; Document leaves them out.
func (in Input) value(now time.Time, policies *policyCache) (ast.Value, error) {
	v, _, err := in.valueCandidates(now, policies)
	return v, err
}

// valueCandidates is value, and whether input.candidates has the patterns
// of every name (false without policies, or when an address does not
// parse).
func (in Input) valueCandidates(now time.Time, policies *policyCache) (ast.Value, bool, error) {
	t := in.Time
	if t.IsZero() {
		t = now
	}
	var cands candidateSets
	ids := make([]*ast.Term, len(in.Identifiers))
	for i, id := range in.Identifiers {
		cands.add(string(id.Type), id.Value)
		ids[i] = ast.ObjectTerm(
			ast.Item(key("type"), key(string(id.Type))),
			ast.Item(key("value"), ast.StringTerm(id.Value)))
	}
	eab := nullTerm
	if in.Account.EAB != nil {
		eab = ast.ObjectTerm(
			ast.Item(key("kid"), ast.StringTerm(in.Account.EAB.KeyID)),
			ast.Item(key("reference"), ast.StringTerm(in.Account.EAB.Reference)))
	}
	pol := nullTerm
	if len(in.Account.Policy) > 0 && !bytes.Equal(bytes.TrimSpace(in.Account.Policy), []byte("null")) {
		v, err := policies.get(in.Account.Policy)
		if err != nil {
			return nil, false, err
		}
		pol = ast.NewTerm(v)
	}
	csr := nullTerm
	if c := in.CSR; c != nil {
		k := ast.NewObject(ast.Item(key("type"), key(c.Key.Type)))
		if c.Key.Bits > 0 {
			k.Insert(key("bits"), ast.IntNumberTerm(c.Key.Bits))
		}
		if c.Key.Curve != "" {
			k.Insert(key("curve"), key(c.Key.Curve))
		}
		lt := nullTerm
		if c.RequestedLifetime > 0 {
			lt = ast.StringTerm(c.RequestedLifetime.String())
		}
		csr = ast.ObjectTerm(
			ast.Item(key("subject"), ast.ObjectTerm(
				ast.Item(key("common_name"), ast.StringTerm(c.Subject.CommonName)),
				ast.Item(key("organization"), strArray(c.Subject.Organization)),
				ast.Item(key("organizational_unit"), strArray(c.Subject.OrganizationalUnit)))),
			ast.Item(key("sans"), ast.ObjectTerm(
				ast.Item(key("dns"), strArray(c.SANs.DNS)),
				ast.Item(key("ip"), strArray(c.SANs.IP)),
				ast.Item(key("email"), strArray(c.SANs.Email)),
				ast.Item(key("uri"), strArray(c.SANs.URI)))),
			ast.Item(key("key"), ast.NewTerm(k)),
			ast.Item(key("requested_lifetime"), lt))
		for _, set := range []struct {
			typ   string
			names []string
		}{{"dns", c.SANs.DNS}, {"ip", c.SANs.IP}, {"email", c.SANs.Email}, {"uri", c.SANs.URI}} {
			for _, n := range set.names {
				cands.add(set.typ, n)
			}
		}
		if c.Subject.CommonName != "" {
			cands.add("cn", c.Subject.CommonName)
		}
	}
	doc := ast.NewObject(
		ast.Item(key("input_version"), inputVersionTerm),
		ast.Item(key("stage"), key(string(in.Stage))),
		ast.Item(key("provisioner"), ast.ObjectTerm(
			ast.Item(key("name"), ast.StringTerm(in.Provisioner.Name)),
			ast.Item(key("type"), key(in.Provisioner.Type)))),
		ast.Item(key("account"), ast.ObjectTerm(
			ast.Item(key("id"), strOrNull(in.Account.ID)),
			ast.Item(key("eab"), eab),
			ast.Item(key("policy"), pol))),
		ast.Item(key("identifiers"), ast.ArrayTerm(ids...)),
		ast.Item(key("csr"), csr),
		ast.Item(key("ra"), strOrNull(in.RA)),
		ast.Item(key("time"), ast.StringTerm(t.UTC().Format(time.RFC3339Nano))),
	)
	if policies == nil {
		return doc, false, nil
	}
	doc.Insert(key("candidates"), cands.term())
	return doc, !cands.incomplete, nil
}

// Document returns the input document as JSON, exactly as the policy sees
// it (with the account policy as given, not indexed). It is what
// `policyca policy eval --input` takes.
func (in Input) Document() ([]byte, error) {
	v, err := in.value(time.Now(), nil)
	if err != nil {
		return nil, err
	}
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

// policyCache holds account policies converted to AST values and indexed,
// keyed by their JSON text. Accounts share few policies (one per EAB key),
// and converting a large policy costs more than evaluating it.
type policyCache struct {
	mu sync.Mutex
	m  map[string]ast.Value
}

// maxCachedPolicies bounds the cache; when full it is simply emptied, which
// only costs a conversion per policy.
const maxCachedPolicies = 512

// maxPolicyBytes bounds an account policy; anything bigger is an error
// rather than a slow decision.
const maxPolicyBytes = 4 << 20

var errPolicyTooLarge = errors.New("account policy is larger than 4 MiB")

func (c *policyCache) get(raw json.RawMessage) (ast.Value, error) {
	if len(raw) > maxPolicyBytes {
		return nil, errPolicyTooLarge
	}
	if c != nil {
		c.mu.Lock()
		v, ok := c.m[string(raw)]
		c.mu.Unlock()
		if ok {
			return v, nil
		}
	}
	x, err := parseAccountPolicy(raw)
	if err != nil {
		return nil, err
	}
	if c == nil {
		// Document: the policy exactly as stored.
		return ast.InterfaceToValue(x)
	}
	v, err := ast.InterfaceToValue(indexRules(x))
	if err != nil {
		return nil, fmt.Errorf("account policy: %w", err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPolicies {
		c.m = make(map[string]ast.Value)
	}
	c.m[string(raw)] = v
	c.mu.Unlock()
	return v, nil
}
