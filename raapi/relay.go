package raapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store"
)

// handleSign relays a finalize. The RA vouches for challenge validation
// only: the CA checks the CSR, runs the sign-time policy with the account
// data of its own store and records the decision naming the RA.
func (a *api) handleSign(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	var req SignRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := allowed(ra, req.Provisioner); err != nil {
		return err
	}
	if len(req.Identifiers) == 0 {
		return core.Errorf(core.KindMalformed, "sign request has no identifiers")
	}
	for i, id := range req.Identifiers {
		n, err := core.NormalizeIdentifier(id)
		if err != nil {
			return err
		}
		if n != id {
			return core.Errorf(core.KindMalformed, "identifier %d is not in normal form", i)
		}
		if !validated(req.Evidence, id) {
			return core.Errorf(core.KindMalformed, "no validation evidence for %s %q", id.Type, id.Value)
		}
	}
	ctx := r.Context()
	if err := a.checkClaims(ctx, ra, &req); err != nil {
		return err
	}
	// A retry after a lost answer gets the certificate already issued for
	// this order, not a second one: same order, account, provisioner and
	// key, not revoked.
	if prev, err := a.issuedFor(ctx, &req); err != nil {
		return err
	} else if prev != nil {
		a.Logger.InfoContext(ctx, "sign retried: returning the certificate already issued", "ra", ra.Name,
			"serial", prev.Serial, "order", req.OrderID)
		writeJSON(w, http.StatusOK, FromCore(prev))
		return nil
	}
	cert, err := a.Authority.Sign(ctx, core.SignRequest{
		CSR: req.CSR, OrderID: req.OrderID, AccountID: req.AccountID, Provisioner: req.Provisioner,
		Identifiers: req.Identifiers, NotBefore: req.NotBefore, NotAfter: req.NotAfter,
		AccountKeyJWK: req.AccountKeyJWK, RA: ra.Name,
	})
	if err != nil {
		return err
	}
	a.Logger.InfoContext(ctx, "certificate issued for RA", "ra", ra.Name, "serial", cert.Serial, "order", req.OrderID,
		"account", req.AccountID, "evidence", req.Evidence)
	writeJSON(w, http.StatusOK, FromCore(cert))
	return nil
}

func validated(ev []Evidence, id core.Identifier) bool {
	for _, e := range ev {
		if e.Identifier == id && !e.Validated.IsZero() {
			switch e.Challenge {
			case core.ChallengeHTTP01, core.ChallengeDNS01, core.ChallengeTLSALPN01:
				return true
			}
		}
	}
	return false
}

// checkClaims compares what the RA says about the account with the CA's own
// records, and refuses what those records forbid whatever the RA says: an
// account the CA knows as deactivated or revoked, and, on a provisioner
// that requires EAB, an account the CA has not bound (every legitimate one
// was bound through the CA, so an unknown account id can only come from a
// broken or malicious RA, and would escape the account policy). The
// sign-time policy never reads the claims; a mismatch is refused, logged
// and recorded in the decision log for the operator.
func (a *api) checkClaims(ctx context.Context, ra *core.RA, req *SignRequest) error {
	acct, err := a.accountRecord(ctx, req.AccountID)
	if err != nil {
		return err
	}
	kid := acct.kid
	var why string
	switch {
	case acct.known && acct.status != core.StatusValid:
		why = fmt.Sprintf("account %s is %s on the CA", req.AccountID, acct.status)
	case acct.prov != "" && acct.prov != req.Provisioner:
		why = fmt.Sprintf("account %s belongs to provisioner %q, not %q", req.AccountID, acct.prov, req.Provisioner)
	case a.Provisioners[req.Provisioner].RequireEAB && kid == "":
		why = fmt.Sprintf("provisioner %q requires external account binding and the CA has no binding for account %s",
			req.Provisioner, req.AccountID)
	case req.EABKeyID != kid:
		why = fmt.Sprintf("RA claimed EAB key %q for account %s, whose key is %q", req.EABKeyID, req.AccountID, kid)
	case !sameJSON(req.AccountPolicy, acct.policy):
		why = fmt.Sprintf("RA claimed an account policy for account %s that is not the account's", req.AccountID)
	default:
		return nil
	}
	a.Logger.WarnContext(ctx, "RA claim refused", "ra", ra.Name, "account", req.AccountID, "order", req.OrderID,
		"claimed_eab_kid", req.EABKeyID, "eab_kid", kid, "reason", why)
	rec := &core.DecisionRecord{
		Stage: core.StageSign, Provisioner: req.Provisioner, AccountID: req.AccountID, EABKeyID: kid,
		Identifiers: req.Identifiers, Allow: false, RA: ra.Name, Error: "RA claim refused: " + why,
		Violations: []core.Violation{{Type: "ra", Value: ra.Name, Layer: "ra", Reason: why}},
	}
	if err := a.Store.RecordDecisions(ctx, []*core.DecisionRecord{rec}); err != nil {
		a.Logger.ErrorContext(ctx, "cannot record the refused RA claim", "ra", ra.Name, "err", err)
	}
	return core.Errorf(core.KindUnauthorized, "the CA's records of this account differ from the RA's: %s", why)
}

// accountFacts is what the CA's store says of an account.
type accountFacts struct {
	// known is false for an account the CA does not know (created on an
	// RA without EAB); everything else is then empty.
	known  bool
	status core.Status
	prov   string
	// kid, reference and policy are the EAB key that bound the account,
	// its reference and its account policy ("" and nil without a binding).
	kid, reference string
	policy         []byte
}

// accountRecord reads what the CA's store says of account id.
func (a *api) accountRecord(ctx context.Context, id string) (accountFacts, error) {
	acct, err := a.Store.GetAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return accountFacts{}, nil
	}
	if err != nil {
		return accountFacts{}, storeErr(err, "cannot look up the account")
	}
	f := accountFacts{known: true, status: acct.Status, prov: acct.Provisioner}
	if acct.EABKeyID == "" {
		return f, nil
	}
	k, err := a.Store.GetEABKey(ctx, acct.EABKeyID)
	if err != nil {
		return accountFacts{}, storeErr(err, "cannot look up the account's EAB key")
	}
	f.kid, f.reference, f.policy = k.ID, k.Reference, k.Policy
	return f, nil
}

// sameJSON compares two optional JSON documents by value.
func sameJSON(x, y []byte) bool {
	x, y = bytes.TrimSpace(x), bytes.TrimSpace(y)
	if bytes.Equal(x, []byte("null")) {
		x = nil
	}
	if bytes.Equal(y, []byte("null")) {
		y = nil
	}
	if len(x) == 0 || len(y) == 0 {
		return len(x) == len(y)
	}
	var vx, vy any
	if json.Unmarshal(x, &vx) != nil || json.Unmarshal(y, &vy) != nil {
		return false
	}
	return reflect.DeepEqual(vx, vy)
}

// handleRevoke revokes a certificate of one of the RA's provisioners. The
// RA has checked that the ACME client may revoke it.
func (a *api) handleRevoke(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	var req RevokeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	c, err := a.Store.GetCertificateBySerial(r.Context(), req.Serial)
	if errors.Is(err, store.ErrNotFound) {
		return core.Errorf(core.KindNotFound, "no certificate with serial %s", req.Serial)
	}
	if err != nil {
		return storeErr(err, "cannot look up the certificate")
	}
	if err := allowed(ra, c.Provisioner); err != nil {
		return err
	}
	if err := a.Authority.Revoke(r.Context(), req.Serial, req.Reason); err != nil {
		return err
	}
	a.Logger.InfoContext(r.Context(), "certificate revoked for RA", "ra", ra.Name, "serial", req.Serial, "reason", req.Reason)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleBind verifies and binds an external account binding in the CA's
// store, so that one key binds one account across all RAs. It is
// idempotent for the same key, binding and account key: an RA that lost the
// answer (or crashed before creating the account locally) can retry.
func (a *api) handleBind(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	var req BindRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := allowed(ra, req.Account.Provisioner); err != nil {
		return err
	}
	outer, err := jws.ParseJWKJSON(req.OuterKeyJWK)
	if err != nil {
		return core.Errorf(core.KindMalformed, "outer key: %v", err)
	}
	tp, err := jws.Thumbprint(outer)
	if err != nil {
		return err
	}
	keyJSON, err := jws.MarshalJWK(outer)
	if err != nil {
		return err
	}
	acct := &core.Account{
		ID: req.Account.ID, Provisioner: req.Account.Provisioner, KeyThumbprint: tp, KeyJWK: keyJSON,
		Contact: req.Account.Contact, Status: core.StatusValid, TermsAgreed: req.Account.TermsAgreed,
		CreatedAt: req.Account.CreatedAt,
	}
	ctx := r.Context()
	bindErr := a.Binder.CreateBoundAccount(ctx, acct, req.Binding, outer, req.URL)
	if bindErr == nil {
		a.Logger.InfoContext(ctx, "account bound for RA", "ra", ra.Name, "account", acct.ID, "eab_kid", acct.EABKeyID)
		writeJSON(w, http.StatusOK, BindResponse{AccountID: acct.ID, EABKeyID: acct.EABKeyID})
		return nil
	}
	if prev := a.boundBefore(ctx, &req, outer, tp); prev != nil {
		writeJSON(w, http.StatusOK, *prev)
		return nil
	}
	return bindErr
}

// boundBefore finds the account this very binding created before: same
// key id (with a MAC that verifies), same account key, and both still in
// good standing: a key the operator revoked, or an account deactivated,
// must not come back to life through a "retry" at another RA.
func (a *api) boundBefore(ctx context.Context, req *BindRequest, outer *jose.JSONWebKey, tp string) *BindResponse {
	b, err := eab.Parse(req.Binding, outer, req.URL)
	if err != nil {
		return nil
	}
	k, err := a.Store.GetEABKey(ctx, b.KID)
	if err != nil || k.BoundAccount == "" || !k.RevokedAt.IsZero() || k.Provisioner != req.Account.Provisioner ||
		b.Verify(k.HMACKey) != nil {
		return nil
	}
	acct, err := a.Store.GetAccount(ctx, k.BoundAccount)
	if err != nil || acct.KeyThumbprint != tp || acct.Status != core.StatusValid {
		return nil
	}
	return &BindResponse{AccountID: acct.ID, EABKeyID: k.ID}
}

// handleAccount tells the RA what the CA knows of an account, for the
// order-time policy. Accounts of provisioners not assigned to the RA are
// refused.
func (a *api) handleAccount(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	id := r.PathValue("id")
	acct, err := a.accountRecord(r.Context(), id)
	if err != nil {
		return err
	}
	if acct.prov != "" {
		if err := allowed(ra, acct.prov); err != nil {
			return err
		}
	}
	// The RA's copy of the account may still say valid: its new orders
	// are refused at once, not only at finalize (handleSign).
	if acct.known && acct.status != core.StatusValid {
		return core.Errorf(core.KindUnauthorized, "account %s is %s on the CA", id, acct.status)
	}
	info := AccountInfo{}
	if acct.kid != "" {
		info.EAB = &EABInfo{KeyID: acct.kid, Reference: acct.reference}
		info.Policy = acct.policy
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// handleBundle serves the policy bundle with an ETag, so that RAs polling
// it download it only when it changed.
func (a *api) handleBundle(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	if a.Bundle == nil {
		return core.Errorf(core.KindNotFound, "this CA does not serve its policy bundle")
	}
	b, err := a.Bundle(r.Context())
	if err != nil {
		return core.Wrap(core.KindServerInternal, err, "cannot read the policy bundle")
	}
	etag := `"` + Fingerprint(b) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(b)
	return nil
}

func (a *api) handleIssuer(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Write(pki.EncodePEMCerts(a.Authority.Issuer()))
	return nil
}

// issuedFor returns the certificate already issued for the request's order
// to the same account and provisioner, for the same identifiers, with the
// CSR's key, or nil.
func (a *api) issuedFor(ctx context.Context, req *SignRequest) (*core.Certificate, error) {
	if req.OrderID == "" {
		return nil, nil
	}
	prev, err := a.Store.GetCertificatesByOrder(ctx, req.OrderID)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot look up the order's certificates")
	}
	if len(prev) == 0 {
		return nil, nil
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, nil // Sign refuses it with badCSR
	}
	pub, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return nil, nil
	}
	for i := len(prev) - 1; i >= 0; i-- {
		c := prev[i]
		if c.AccountID != req.AccountID || c.Provisioner != req.Provisioner || !c.RevokedAt.IsZero() ||
			!sameIdentifiers(c.Names, req.Identifiers) {
			continue
		}
		leaf, err := x509.ParseCertificate(c.DER)
		if err == nil && pub.Equal(leaf.PublicKey) {
			return c, nil
		}
	}
	return nil, nil
}

// sameIdentifiers reports whether x and y hold the same identifiers, in
// any order (both are normalised).
func sameIdentifiers(x, y []core.Identifier) bool {
	if len(x) != len(y) {
		return false
	}
	return slices.Equal(slices.SortedFunc(slices.Values(x), core.CompareIdentifiers),
		slices.SortedFunc(slices.Values(y), core.CompareIdentifiers))
}
