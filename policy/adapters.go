package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/policyca/policyca/core"
)

// AccountInfo looks up what the policy needs to know about an account: the
// EAB key that bound it (nil if none) and the account policy stored with
// that key (nil if none). The CA backs it with its own store, never with an
// RA's word.
type AccountInfo interface {
	LookupAccount(ctx context.Context, accountID string) (eab *EABInfo, policy json.RawMessage, err error)
}

// EABKeyInfo is an optional method of an AccountInfo backed by the store
// the ACME front end reads accounts from: the EAB key with that id and its
// account policy. At newOrder the account was read from that store by the
// request's authentication a moment before, and the key that bound it
// never changes, so reading the account again would only cost time.
type EABKeyInfo interface {
	LookupEABKey(ctx context.Context, keyID string) (eab *EABInfo, policy json.RawMessage, err error)
}

// AccountInfoFunc adapts a function to AccountInfo.
type AccountInfoFunc func(ctx context.Context, accountID string) (*EABInfo, json.RawMessage, error)

// LookupAccount calls f.
func (f AccountInfoFunc) LookupAccount(ctx context.Context, id string) (*EABInfo, json.RawMessage, error) {
	return f(ctx, id)
}

// ProvisionerType is the provisioner type the adapters put in the input;
// every provisioner is an ACME endpoint today.
const ProvisionerType = "acme"

func (e *Engine) account(ctx context.Context, id, eabKeyID string) (AccountInput, error) {
	a := AccountInput{ID: id}
	if e.accounts != nil && id != "" {
		eab, pol, err := e.accounts.LookupAccount(ctx, id)
		if err != nil {
			return a, fmt.Errorf("policy: looking up account %s: %w", id, err)
		}
		a.EAB, a.Policy = eab, pol
	}
	if a.EAB == nil && eabKeyID != "" {
		a.EAB = &EABInfo{KeyID: eabKeyID}
	}
	return a, nil
}

// orderAccount is account for the account of a newOrder request, which
// the front end has just read from its store.
func (e *Engine) orderAccount(ctx context.Context, acct *core.Account) (AccountInput, error) {
	ek, ok := e.accounts.(EABKeyInfo)
	if !ok {
		return e.account(ctx, acct.ID, acct.EABKeyID)
	}
	a := AccountInput{ID: acct.ID}
	if acct.EABKeyID == "" {
		return a, nil
	}
	eab, pol, err := ek.LookupEABKey(ctx, acct.EABKeyID)
	if err != nil {
		return a, fmt.Errorf("policy: looking up EAB key %s of account %s: %w", acct.EABKeyID, acct.ID, err)
	}
	a.EAB, a.Policy = eab, pol
	return a, nil
}

// OrderChecker decides at newOrder time. Its method set is the ACME front
// end's OrderPolicy interface.
type OrderChecker struct{ e *Engine }

// OrderPolicy returns the newOrder adapter of e.
func (e *Engine) OrderPolicy() *OrderChecker { return &OrderChecker{e: e} }

// CheckOrder returns nil if the policy allows the identifiers, a
// rejectedIdentifier *core.Error with one subproblem per refused identifier
// (detail: the violations' reasons) if it refuses them, and a
// serverInternal *core.Error if the policy could not be evaluated.
func (o *OrderChecker) CheckOrder(ctx context.Context, prov string, acct *core.Account, ids []core.Identifier) error {
	in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: prov, Type: ProvisionerType}, Identifiers: ids}
	if acct != nil {
		a, err := o.e.orderAccount(ctx, acct)
		if err != nil {
			// An account its CA refuses (an RA asking the CA about one
			// deactivated there) is unauthorized, not a policy failure.
			if core.IsKind(err, core.KindUnauthorized) {
				return core.AsError(err)
			}
			return core.Wrap(core.KindServerInternal, err, "policy evaluation failed")
		}
		in.Account = a
	}
	d, err := o.e.Decide(ctx, in)
	if err != nil {
		return core.Wrap(core.KindServerInternal, err, "policy evaluation failed")
	}
	if d.Allow {
		return nil
	}
	return rejection(ids, d)
}

// rejection turns a denial into a rejectedIdentifier error: violations
// about an identifier become its subproblem, the others go into the
// top-level detail.
func rejection(ids []core.Identifier, d Decision) *core.Error {
	var subs []*core.Error
	var other []string
	byID := make(map[core.Identifier][]string)
	for _, v := range d.Violations {
		id := core.Identifier{Type: core.IdentifierType(v.Type), Value: v.Value}
		byID[id] = append(byID[id], v.Reason)
	}
	used := make(map[core.Identifier]bool)
	for _, id := range ids {
		if rs, ok := byID[id]; ok && !used[id] {
			used[id] = true
			idc := id
			subs = append(subs, &core.Error{Kind: core.KindRejectedIdentifier, Detail: strings.Join(rs, "; "), Identifier: &idc})
		}
	}
	for _, v := range d.Violations {
		if !used[core.Identifier{Type: core.IdentifierType(v.Type), Value: v.Value}] {
			other = append(other, v.Reason)
		}
	}
	detail := "the policy refused this request"
	switch {
	case len(other) > 0:
		detail = strings.Join(other, "; ")
	case len(subs) == 1:
		detail = subs[0].Detail
	case len(subs) > 1:
		detail = fmt.Sprintf("the policy refused %d identifiers; see subproblems", len(subs))
	}
	return &core.Error{Kind: core.KindRejectedIdentifier, Detail: detail, Subproblems: subs}
}

// SignVerdict is the sign-time answer, in the shape of the CA's
// ca.Decision (package policy/capolicy converts it).
type SignVerdict struct {
	Allow bool
	// Lifetime caps the certificate's lifetime (0 = no cap).
	Lifetime   time.Duration
	Revision   string
	DecisionID string
	// Reason explains a denial to the client (the violations' reasons).
	Reason     string
	Violations []Violation
}

// SignChecker decides before signing.
type SignChecker struct{ e *Engine }

// SignPolicy returns the sign-time adapter of e.
func (e *Engine) SignPolicy() *SignChecker { return &SignChecker{e: e} }

// Check evaluates the policy on a sign request and its parsed CSR. A
// denial is a verdict with Allow false; an error (serverInternal) means
// the policy could not be evaluated, which must deny too.
func (s *SignChecker) Check(ctx context.Context, req core.SignRequest, csr *x509.CertificateRequest) (SignVerdict, error) {
	now := s.e.now()
	in := Input{
		Stage:       StageSign,
		Provisioner: ProvisionerInfo{Name: req.Provisioner, Type: ProvisionerType},
		Identifiers: req.Identifiers,
		RA:          req.RA,
		Time:        now,
	}
	a, err := s.e.account(ctx, req.AccountID, "")
	if err != nil {
		return SignVerdict{}, core.Wrap(core.KindServerInternal, err, "policy evaluation failed")
	}
	in.Account = a
	if csr != nil {
		info := CSRDescription(csr)
		in.CSR = &info
	} else {
		return SignVerdict{}, core.Errorf(core.KindServerInternal, "policy: sign check without a CSR")
	}
	if !req.NotAfter.IsZero() {
		start := req.NotBefore
		if start.IsZero() || start.Before(now) {
			start = now
		}
		if lt := req.NotAfter.Sub(start); lt > 0 {
			in.CSR.RequestedLifetime = lt
		}
	}
	d, err := s.e.Decide(ctx, in)
	v := SignVerdict{Allow: d.Allow && err == nil, Lifetime: d.Lifetime, Revision: d.Revision, DecisionID: d.ID, Violations: d.Violations}
	if err != nil {
		return v, core.Wrap(core.KindServerInternal, err, "policy evaluation failed")
	}
	if !v.Allow {
		rs := make([]string, 0, len(d.Violations))
		for _, x := range d.Violations {
			rs = append(rs, x.Reason)
		}
		v.Reason = strings.Join(rs, "; ")
	}
	return v, nil
}

// CSRDescription is what the policy sees of csr.
func CSRDescription(csr *x509.CertificateRequest) CSRInfo {
	c := CSRInfo{
		Subject: Subject{
			CommonName:         csr.Subject.CommonName,
			Organization:       csr.Subject.Organization,
			OrganizationalUnit: csr.Subject.OrganizationalUnit,
		},
		SANs: SANs{Email: csr.EmailAddresses},
	}
	// Names are normalised like identifiers so that rules compare the
	// same byte strings whatever case or spelling the CSR used; a name that
	// does not normalise is passed as is and meets the rules as it is.
	for _, n := range csr.DNSNames {
		if id, err := core.NormalizeIdentifier(core.Identifier{Type: core.DNS, Value: n}); err == nil {
			n = id.Value
		}
		c.SANs.DNS = append(c.SANs.DNS, n)
	}
	for _, ip := range csr.IPAddresses {
		n, err := core.NormalizeIdentifier(core.Identifier{Type: core.IP, Value: ip.String()})
		if err == nil {
			c.SANs.IP = append(c.SANs.IP, n.Value)
		} else {
			c.SANs.IP = append(c.SANs.IP, ip.String())
		}
	}
	for _, u := range csr.URIs {
		c.SANs.URI = append(c.SANs.URI, u.String())
	}
	switch k := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		c.Key = KeyInfo{Type: "rsa", Bits: k.N.BitLen()}
	case *ecdsa.PublicKey:
		c.Key = KeyInfo{Type: "ecdsa", Curve: k.Curve.Params().Name}
	case ed25519.PublicKey:
		c.Key = KeyInfo{Type: "ed25519"}
	default:
		c.Key = KeyInfo{Type: fmt.Sprintf("%T", k)}
	}
	return c
}
