package acme

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/core"
)

type authzUpdatePayload struct {
	Status *core.Status `json:"status"`
}

// handleAuthz is POST-as-GET of an authorization, or its deactivation by
// the client (§7.5, §7.5.2).
func (s *Server) handleAuthz(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	a, err := s.ownAuthz(ctx, req, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if req.postAsGet() {
		if a, err = s.refreshAuthz(ctx, a); err != nil {
			return err
		}
	} else {
		if a, err = s.deactivateAuthz(ctx, a, req.payload); err != nil {
			return err
		}
	}
	w.Header().Set("Location", req.prov.authzURL(a.ID))
	writeJSON(w, http.StatusOK, req.prov.authzJSON(a))
	return nil
}

func (s *Server) deactivateAuthz(ctx context.Context, a *core.Authorization, payload []byte) (*core.Authorization, error) {
	var pl authzUpdatePayload
	if err := decodePayload(payload, &pl); err != nil {
		return nil, err
	}
	if pl.Status == nil || *pl.Status != core.StatusDeactivated {
		return nil, core.Errorf(core.KindMalformed, "the only status a client may set is \"deactivated\"")
	}
	a, err := s.updateAuthz(ctx, a.ID, func(a *core.Authorization) (bool, error) {
		switch authzStatus(a, s.now()) {
		case core.StatusDeactivated:
			return false, nil
		case core.StatusPending, core.StatusValid:
			a.Status = core.StatusDeactivated
			return true, nil
		default:
			return false, core.Errorf(core.KindMalformed, "a %s authorization cannot be deactivated", authzStatus(a, s.now()))
		}
	})
	if err != nil {
		return nil, err
	}
	// The order cannot be fulfilled any more; make it say so now rather
	// than on its next read.
	if _, err := s.updateOrder(ctx, a.OrderID, func(o *core.Order) (bool, error) {
		return s.advanceOrder(ctx, o)
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// ownAuthz loads an authorization of this provisioner's accounts that the
// signer owns.
func (s *Server) ownAuthz(ctx context.Context, req *request, id string) (*core.Authorization, error) {
	a, err := s.loadAuthz(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := requireOwner(req, a.AccountID); err != nil {
		return nil, err
	}
	return a, nil
}

// refreshAuthz persists an expiry noticed on read, and ends a validation
// that was lost with the node running it (expireLostValidations).
func (s *Server) refreshAuthz(ctx context.Context, a *core.Authorization) (*core.Authorization, error) {
	if authzStatus(a, s.now()) == a.Status && !s.hasLostValidation(a) {
		return a, nil
	}
	expired := false
	a, err := s.updateAuthz(ctx, a.ID, func(a *core.Authorization) (bool, error) {
		expired = s.expireLostValidations(a)
		st := authzStatus(a, s.now())
		if st == a.Status {
			return expired, nil
		}
		a.Status = st
		return true, nil
	})
	if err == nil && expired {
		s.endLostValidation(ctx, a)
	}
	return a, err
}
