package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// Limits on contacts: generous for people, small enough that an account
// row cannot be used as free storage.
const (
	maxContacts      = 10
	maxContactLength = 320
)

type newAccountPayload struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

type accountUpdatePayload struct {
	Contact              *[]string    `json:"contact"`
	Status               *core.Status `json:"status"`
	TermsOfServiceAgreed *bool        `json:"termsOfServiceAgreed"`
}

// decodePayload decodes a JSON object payload; unknown members are allowed
// (RFC 8555 §7.1: clients may send fields the server ignores).
func decodePayload(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return core.Wrap(core.KindMalformed, err, "payload is not a valid JSON object for this resource")
	}
	return nil
}

// handleNewAccount creates or finds an account (§7.3).
func (s *Server) handleNewAccount(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	var pl newAccountPayload
	if err := decodePayload(req.payload, &pl); err != nil {
		return err
	}
	tp, err := jws.Thumbprint(req.key)
	if err != nil {
		return err
	}
	existing, err := s.accountByThumbprint(ctx, req.prov, tp)
	if err != nil {
		return err
	}
	if existing != nil {
		w.Header().Set("Location", req.prov.accountURL(existing.ID))
		writeJSON(w, http.StatusOK, req.prov.accountJSON(existing))
		return nil
	}
	if pl.OnlyReturnExisting {
		return core.Errorf(core.KindAccountDoesNotExist, "no account exists with this key")
	}
	if err := validateContacts(pl.Contact); err != nil {
		return err
	}
	if req.prov.TermsOfService != "" && !pl.TermsOfServiceAgreed {
		w.Header().Add("Link", link(req.prov.TermsOfService, "terms-of-service"))
		return core.Errorf(core.KindUserActionRequired, "you must agree to the terms of service (termsOfServiceAgreed: true)")
	}
	keyJSON, err := jws.MarshalJWK(req.key)
	if err != nil {
		return err
	}
	acct := &core.Account{
		ID:            core.NewID(),
		Provisioner:   req.prov.Name,
		KeyThumbprint: tp,
		KeyJWK:        keyJSON,
		Contact:       pl.Contact,
		Status:        core.StatusValid,
		TermsAgreed:   pl.TermsOfServiceAgreed,
		CreatedAt:     s.now().UTC(),
	}
	hasBinding := len(pl.ExternalAccountBinding) > 0 && string(pl.ExternalAccountBinding) != "null"
	if req.prov.RequireEAB && !hasBinding {
		return core.Errorf(core.KindExternalAccountRequired, "this directory requires an external account binding")
	}
	if hasBinding {
		if err := s.createBoundAccount(ctx, req, pl.ExternalAccountBinding, acct); err != nil {
			return err
		}
		s.logger(ctx).Info("account created", "provisioner", req.prov.Name, "account", acct.ID, "eab_kid", acct.EABKeyID)
		w.Header().Set("Location", req.prov.accountURL(acct.ID))
		writeJSON(w, http.StatusCreated, req.prov.accountJSON(acct))
		return nil
	}
	if err := s.store.CreateAccount(ctx, acct); err != nil {
		if !errors.Is(err, store.ErrConflict) {
			return storeError(err, "cannot create account")
		}
		// Another request registered the same key first: answer as the
		// lookup above would have, had this request come second (the
		// winner may be another provisioner's account, or already
		// deactivated: both are the lookup's own refusal).
		existing, lerr := s.accountByThumbprint(ctx, req.prov, tp)
		if lerr != nil {
			return lerr
		}
		if existing == nil {
			return core.Wrap(core.KindServerInternal, err, "cannot create account")
		}
		w.Header().Set("Location", req.prov.accountURL(existing.ID))
		writeJSON(w, http.StatusOK, req.prov.accountJSON(existing))
		return nil
	}
	s.logger(ctx).Info("account created", "provisioner", req.prov.Name, "account", acct.ID)
	w.Header().Set("Location", req.prov.accountURL(acct.ID))
	writeJSON(w, http.StatusCreated, req.prov.accountJSON(acct))
	return nil
}

// createBoundAccount verifies the external account binding (RFC 8555
// §7.3.4) and creates the account bound to its key in one step, so that one
// key can never bind two accounts. A binding sent to a provisioner that does
// not require one is still verified: it is what carries the account's own
// policy.
func (s *Server) createBoundAccount(ctx context.Context, req *request, binding json.RawMessage, acct *core.Account) error {
	if s.binder == nil {
		return core.Errorf(core.KindMalformed, "this server does not support external account binding")
	}
	return s.binder.CreateBoundAccount(ctx, acct, binding, req.key, req.prov.prefix+"/new-account")
}

// accountByThumbprint returns the account of this provisioner with the
// key, nil if there is none. A deactivated account's key stays refused
// (§7.3.6: no further requests authorized by that key).
func (s *Server) accountByThumbprint(ctx context.Context, p *provisioner, tp string) (*core.Account, error) {
	a, err := s.store.GetAccountByThumbprint(ctx, tp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError(err, "cannot look up account")
	}
	if a.Provisioner != p.Name {
		// Thumbprints are unique across the store, so the key cannot get a
		// second account here either.
		return nil, core.Errorf(core.KindUnauthorized, "this key is bound to an account of another provisioner")
	}
	if a.Status != core.StatusValid {
		return nil, core.Errorf(core.KindUnauthorized, "the account of this key is %s", a.Status)
	}
	return a, nil
}

// validateContacts accepts mailto: URIs with exactly one plain address
// (§7.3: the server must check the schemes it supports).
func validateContacts(contacts []string) error {
	if len(contacts) > maxContacts {
		return core.Errorf(core.KindInvalidContact, "at most %d contacts are allowed", maxContacts)
	}
	for _, c := range contacts {
		if err := validateContact(c); err != nil {
			return err
		}
	}
	return nil
}

func validateContact(c string) error {
	if len(c) > maxContactLength {
		return core.Errorf(core.KindInvalidContact, "contact is longer than %d characters", maxContactLength)
	}
	scheme, addr, ok := strings.Cut(c, ":")
	if !ok || scheme == "" {
		return core.Errorf(core.KindInvalidContact, "contact %q is not a URI", c)
	}
	if !strings.EqualFold(scheme, "mailto") {
		return core.Errorf(core.KindUnsupportedContact, "contact scheme %q is not supported; use mailto:", scheme)
	}
	if strings.ContainsAny(addr, "?,%") {
		return core.Errorf(core.KindInvalidContact, "contact %q must be a single address without hfields or escapes", c)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr || strings.ContainsAny(addr, " \t\"<>()[]\\") {
		return core.Errorf(core.KindInvalidContact, "contact %q is not a valid email address", c)
	}
	return nil
}

// handleAccount is POST-as-GET of an account, contact update, terms
// agreement or deactivation (§7.3.2, §7.3.6).
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request, req *request) error {
	id := mux.Vars(r)["id"]
	if err := requireOwner(req, id); err != nil {
		return err
	}
	acct := req.acct
	if !req.postAsGet() {
		var pl accountUpdatePayload
		if err := decodePayload(req.payload, &pl); err != nil {
			return err
		}
		if pl.Status != nil && *pl.Status != core.StatusDeactivated {
			return core.Errorf(core.KindMalformed, "the only status a client may set is \"deactivated\"")
		}
		if pl.Contact != nil {
			if err := validateContacts(*pl.Contact); err != nil {
				return err
			}
		}
		var err error
		acct, err = s.updateAccount(r.Context(), id, func(a *core.Account) (bool, error) {
			if a.Status != core.StatusValid {
				return false, core.Errorf(core.KindUnauthorized, "account is %s", a.Status)
			}
			if pl.Contact != nil {
				a.Contact = *pl.Contact
			}
			if pl.TermsOfServiceAgreed != nil && *pl.TermsOfServiceAgreed {
				a.TermsAgreed = true
			}
			if pl.Status != nil {
				a.Status = core.StatusDeactivated
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if acct.Status == core.StatusDeactivated {
			s.logger(r.Context()).Info("account deactivated", "account", id)
		}
	}
	w.Header().Set("Location", req.prov.accountURL(acct.ID))
	writeJSON(w, http.StatusOK, req.prov.accountJSON(acct))
	return nil
}

// handleAccountOrders lists an account's orders, a page at a time, with a
// Link rel="next" to the following page (§7.1.2.1). Invalid orders are left
// out, including pending and ready ones past their expiry that nobody has
// read since (the store applies orderState's expiry rule).
func (s *Server) handleAccountOrders(w http.ResponseWriter, r *http.Request, req *request) error {
	id := mux.Vars(r)["id"]
	if err := requireOwner(req, id); err != nil {
		return err
	}
	if err := requirePostAsGet(req); err != nil {
		return err
	}
	cursor := r.URL.Query().Get("cursor")
	ids, next, err := s.store.ListOrderIDs(r.Context(), id, cursor, s.pageSize, s.now())
	if err != nil {
		return storeError(err, "cannot list orders")
	}
	list := ordersListJSON{Orders: make([]string, 0, len(ids))}
	for _, oid := range ids {
		list.Orders = append(list.Orders, req.prov.orderURL(oid))
	}
	if next != "" {
		w.Header().Add("Link", link(req.prov.ordersURL(id)+"?cursor="+url.QueryEscape(next), "next"))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}
