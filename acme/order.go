package acme

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/core"
)

// maxOrderIdentifiers bounds one order; certificates with more names than
// this are a mistake, and each identifier costs an authorization row.
const maxOrderIdentifiers = 100

// retryAfterProcessing is the Retry-After (seconds) sent with objects that
// are still being worked on.
const retryAfterProcessing = "1"

type newOrderPayload struct {
	Identifiers []core.Identifier `json:"identifiers"`
	NotBefore   string            `json:"notBefore"`
	NotAfter    string            `json:"notAfter"`
}

// orderRequest is a parsed and normalised newOrder payload.
type orderRequest struct {
	Identifiers []core.Identifier
	NotBefore   time.Time
	NotAfter    time.Time
}

// parseNewOrder parses and normalises a newOrder payload (§7.4). It faces
// the network and is fuzzed.
func parseNewOrder(payload []byte) (*orderRequest, error) {
	var pl newOrderPayload
	if err := decodePayload(payload, &pl); err != nil {
		return nil, err
	}
	if len(pl.Identifiers) > maxOrderIdentifiers {
		return nil, core.Errorf(core.KindMalformed, "an order may have at most %d identifiers", maxOrderIdentifiers)
	}
	ids, err := core.NormalizeIdentifiers(pl.Identifiers)
	if err != nil {
		return nil, err
	}
	or := &orderRequest{Identifiers: ids}
	if or.NotBefore, err = parseTime("notBefore", pl.NotBefore); err != nil {
		return nil, err
	}
	if or.NotAfter, err = parseTime("notAfter", pl.NotAfter); err != nil {
		return nil, err
	}
	if !or.NotBefore.IsZero() && !or.NotAfter.IsZero() && !or.NotAfter.After(or.NotBefore) {
		return nil, core.Errorf(core.KindMalformed, "notAfter must be after notBefore")
	}
	return or, nil
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, core.Errorf(core.KindMalformed, "%s is not an RFC 3339 date-time", field)
	}
	return t.UTC(), nil
}

// handleNewOrder creates an order and one authorization per identifier in
// one store transaction (§7.4).
func (s *Server) handleNewOrder(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	or, err := parseNewOrder(req.payload)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if !or.NotAfter.IsZero() && !or.NotAfter.After(now) {
		return core.Errorf(core.KindMalformed, "notAfter is in the past")
	}
	if req.prov.Policy != nil {
		if err := req.prov.Policy.CheckOrder(ctx, req.prov.Name, req.acct, or.Identifiers); err != nil {
			return err
		}
	}
	o := &core.Order{
		ID:          core.NewID(),
		AccountID:   req.acct.ID,
		Provisioner: req.prov.Name,
		Status:      core.StatusPending,
		Expires:     now.Add(s.orderLifetime),
		Identifiers: or.Identifiers,
		NotBefore:   or.NotBefore,
		NotAfter:    or.NotAfter,
		CreatedAt:   now,
	}
	authzs := make([]*core.Authorization, 0, len(or.Identifiers))
	for _, id := range or.Identifiers {
		a := newAuthorization(o, id, now.Add(s.authzLifetime))
		authzs = append(authzs, a)
		o.AuthzIDs = append(o.AuthzIDs, a.ID)
	}
	if err := s.store.CreateOrder(ctx, o, authzs); err != nil {
		return storeError(err, "cannot create order")
	}
	s.logger(ctx).Info("order created", "account", o.AccountID, "order", o.ID, "identifiers", len(o.Identifiers))
	w.Header().Set("Location", req.prov.orderURL(o.ID))
	writeJSON(w, http.StatusCreated, req.prov.orderJSON(o))
	return nil
}

// newAuthorization builds the pending authorization for one identifier of
// an order, with the challenges that can prove it: a wildcard can only be
// proven in DNS, an IP address never in DNS (RFC 8738 §7).
func newAuthorization(o *core.Order, id core.Identifier, expires time.Time) *core.Authorization {
	a := &core.Authorization{
		ID:         core.NewID(),
		AccountID:  o.AccountID,
		OrderID:    o.ID,
		Identifier: id,
		Status:     core.StatusPending,
		Expires:    expires,
	}
	var types []string
	switch {
	case id.Type == core.DNS && strings.HasPrefix(id.Value, "*."):
		a.Identifier.Value = strings.TrimPrefix(id.Value, "*.")
		a.Wildcard = true
		types = []string{core.ChallengeDNS01}
	case id.Type == core.DNS:
		types = []string{core.ChallengeHTTP01, core.ChallengeDNS01, core.ChallengeTLSALPN01}
	default:
		types = []string{core.ChallengeHTTP01, core.ChallengeTLSALPN01}
	}
	for _, t := range types {
		a.Challenges = append(a.Challenges, core.Challenge{
			ID:     randomString(8),
			Type:   t,
			Token:  randomString(32),
			Status: core.StatusPending,
		})
	}
	return a
}

// handleOrder is POST-as-GET of an order (§7.4).
func (s *Server) handleOrder(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := requirePostAsGet(req); err != nil {
		return err
	}
	o, err := s.ownOrder(r.Context(), req, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if o, err = s.refreshOrder(r.Context(), o); err != nil {
		return err
	}
	s.writeOrder(w, req.prov, o)
	return nil
}

func (s *Server) writeOrder(w http.ResponseWriter, p *provisioner, o *core.Order) {
	if o.Status == core.StatusProcessing {
		w.Header().Set("Retry-After", retryAfterProcessing)
	}
	w.Header().Set("Location", p.orderURL(o.ID))
	writeJSON(w, http.StatusOK, p.orderJSON(o))
}

// ownOrder loads an order of this provisioner that the signer owns.
func (s *Server) ownOrder(ctx context.Context, req *request, id string) (*core.Order, error) {
	o, err := s.loadOrder(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Provisioner != req.prov.Name {
		return nil, core.Errorf(core.KindNotFound, "order: not found")
	}
	if err := requireOwner(req, o.AccountID); err != nil {
		return nil, err
	}
	return o, nil
}

// authzStatus is an authorization's status as of now: expiry is computed
// on read rather than by a sweeper.
func authzStatus(a *core.Authorization, now time.Time) core.Status {
	if !a.Expires.IsZero() && !now.Before(a.Expires) {
		switch a.Status {
		case core.StatusPending:
			return core.StatusInvalid
		case core.StatusValid:
			return core.StatusExpired
		}
	}
	return a.Status
}

// orderState computes the status an order should have now, from its own
// expiry and its authorizations (§7.1.6): pending becomes ready when every
// authorization is valid, and pending or ready becomes invalid when the
// order expires or an authorization stops being usable (failed,
// deactivated, expired). It returns the current status and nil when
// nothing changes.
func orderState(o *core.Order, authzs []*core.Authorization, now time.Time) (core.Status, *core.Error) {
	if o.Status != core.StatusPending && o.Status != core.StatusReady {
		return o.Status, nil
	}
	if !o.Expires.IsZero() && !now.Before(o.Expires) {
		return core.StatusInvalid, core.Errorf(core.KindMalformed, "order expired")
	}
	valid := 0
	for _, a := range authzs {
		switch st := authzStatus(a, now); st {
		case core.StatusValid:
			valid++
		case core.StatusPending:
		default:
			id := a.Identifier
			if a.Wildcard {
				id.Value = "*." + id.Value
			}
			e := core.Errorf(core.KindUnauthorized, "authorization for %s is %s", id.Value, st)
			e.Identifier = &id
			return core.StatusInvalid, e
		}
	}
	if o.Status == core.StatusPending && valid == len(authzs) && valid > 0 {
		return core.StatusReady, nil
	}
	return o.Status, nil
}

// refreshOrder brings a pending or ready order up to date with its expiry
// and its authorizations, persisting the change. Doing it on read makes the
// order converge even if a validation's final write was lost in a crash.
func (s *Server) refreshOrder(ctx context.Context, o *core.Order) (*core.Order, error) {
	if o.Status != core.StatusPending && o.Status != core.StatusReady {
		return o, nil
	}
	first := true
	return versioned(ctx,
		func() (*core.Order, error) {
			if first {
				first = false
				return o, nil
			}
			return s.loadOrder(ctx, o.ID)
		},
		func(o *core.Order) (bool, error) { return s.advanceOrder(ctx, o) },
		func(o *core.Order) error { return s.store.UpdateOrder(ctx, o) })
}

// advanceOrder applies orderState to o, loading its authorizations when
// they matter; it reports whether o changed.
func (s *Server) advanceOrder(ctx context.Context, o *core.Order) (bool, error) {
	return s.advanceOrderWith(ctx, o, nil)
}

// advanceOrderWith is advanceOrder for a caller that has just saved known,
// one of o's authorizations: when it is o's only one, it is used as saved
// instead of being read back. That is as current as a read would be (the
// authorization and the order are not updated in one transaction either
// way), and every later read of the order (refreshOrder, finalize)
// re-checks the authorizations from the store.
func (s *Server) advanceOrderWith(ctx context.Context, o *core.Order, known *core.Authorization) (bool, error) {
	if o.Status != core.StatusPending && o.Status != core.StatusReady {
		return false, nil
	}
	var authzs []*core.Authorization
	if known != nil && len(o.AuthzIDs) == 1 && o.AuthzIDs[0] == known.ID {
		authzs = []*core.Authorization{known}
	} else {
		var err error
		if authzs, err = s.store.GetAuthorizations(ctx, o.AuthzIDs); err != nil {
			return false, storeError(err, "cannot load authorizations")
		}
	}
	// A validation lost with its node fails its authorization (the next
	// read of the authorization records that; see refreshAuthz), so the
	// order of a client that polls the order rather than the
	// authorization fails too instead of staying pending.
	for i, a := range authzs {
		if s.hasLostValidation(a) {
			cp := snapshot(a)
			s.expireLostValidations(cp)
			authzs[i] = cp
		}
	}
	st, e := orderState(o, authzs, s.now())
	if st == o.Status {
		return false, nil
	}
	o.Status, o.Error = st, e
	return true, nil
}
