package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

type keyChangePayload struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// handleKeyChange rolls an account over to a new key (§7.3.5). The outer
// JWS (already verified with the account's current key) carries an inner
// JWS signed by the new key, whose payload names the account and the old
// key, so that neither key alone can move the account.
func (s *Server) handleKeyChange(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	inner, err := jws.ParseInner(req.payload)
	if err != nil {
		return err
	}
	newKey := inner.Header.JWK
	innerPayload, err := inner.Verify(newKey)
	if err != nil {
		return err
	}
	if inner.Header.URL != req.msg.Header.URL {
		return core.Errorf(core.KindMalformed, "inner JWS url does not match the outer JWS url")
	}
	var pl keyChangePayload
	if err := decodePayload(innerPayload, &pl); err != nil {
		return err
	}
	accountURL := req.prov.accountURL(req.acct.ID)
	if pl.Account != accountURL || req.msg.Header.KID != accountURL {
		return core.Errorf(core.KindMalformed, "inner payload account does not match the outer kid")
	}
	if len(pl.OldKey) == 0 {
		return core.Errorf(core.KindMalformed, "inner payload has no oldKey")
	}
	oldKey, err := jws.ParseJWKJSON(pl.OldKey)
	if err != nil {
		return core.Wrap(core.KindMalformed, err, "inner payload oldKey is not a valid JWK")
	}
	if !jws.KeysEqual(oldKey, req.key) {
		return core.Errorf(core.KindMalformed, "oldKey is not the account's current key")
	}
	if jws.KeysEqual(newKey, req.key) {
		return core.Errorf(core.KindMalformed, "the new key is the account's current key")
	}
	tp, err := jws.Thumbprint(newKey)
	if err != nil {
		return err
	}
	keyJSON, err := jws.MarshalJWK(newKey)
	if err != nil {
		return err
	}
	if err := s.refuseTakenKey(ctx, req.prov, tp); err != nil {
		return err
	}
	acct, err := versioned(ctx,
		func() (*core.Account, error) { return s.getAccount(ctx, req.acct.ID) },
		func(a *core.Account) (bool, error) {
			if a.Status != core.StatusValid {
				return false, core.Errorf(core.KindUnauthorized, "account is %s", a.Status)
			}
			cur, err := jws.ParseJWKJSON(a.KeyJWK)
			if err != nil || !jws.KeysEqual(cur, req.key) {
				// The key changed under us: the request was signed by a
				// key that is no longer the account's.
				return false, core.Errorf(core.KindUnauthorized, "the account key changed during the request")
			}
			a.KeyThumbprint, a.KeyJWK = tp, keyJSON
			return true, nil
		},
		func(a *core.Account) error {
			err := s.store.UpdateAccount(ctx, a)
			if errors.Is(err, store.ErrConflict) {
				// The store enforces thumbprint uniqueness: a racing
				// request that registered the key first is a 409, not a
				// version conflict to retry.
				if terr := s.refuseTakenKey(ctx, req.prov, tp); terr != nil {
					return terr
				}
			}
			return err
		})
	if err != nil {
		return err
	}
	s.logger(ctx).Info("account key changed", "account", acct.ID)
	w.Header().Set("Location", accountURL)
	writeJSON(w, http.StatusOK, req.prov.accountJSON(acct))
	return nil
}

// refuseTakenKey answers 409 with the Location of the account that already
// uses the key (§7.3.5).
func (s *Server) refuseTakenKey(ctx context.Context, p *provisioner, tp string) error {
	other, err := s.store.GetAccountByThumbprint(ctx, tp)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeError(err, "cannot look up account")
	}
	e := core.Errorf(core.KindConflict, "the new key is already in use by another account")
	if prov, ok := s.provs[other.Provisioner]; ok {
		e.Location = prov.accountURL(other.ID)
	}
	return e
}
