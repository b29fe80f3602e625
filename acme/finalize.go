package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/core"
)

type finalizePayload struct {
	CSR string `json:"csr"`
}

// parseFinalize decodes the base64url DER CSR of a finalize payload.
func parseFinalize(payload []byte) ([]byte, error) {
	var pl finalizePayload
	if err := decodePayload(payload, &pl); err != nil {
		return nil, err
	}
	if pl.CSR == "" {
		return nil, core.Errorf(core.KindMalformed, "finalize payload has no csr")
	}
	// Padding is not base64url as RFC 8555 uses it, but some clients send
	// it; the bytes are the same.
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(pl.CSR, "="))
	if err != nil {
		return nil, core.Errorf(core.KindBadCSR, "csr is not base64url")
	}
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		return nil, core.Errorf(core.KindBadCSR, "csr is not a DER PKCS#10 request: %v", err)
	}
	return der, nil
}

// handleFinalize issues the certificate of a ready order (§7.4). The order
// goes ready → processing in a versioned update, so of several concurrent
// finalize calls exactly one reaches the CA; the others see orderNotReady.
// Signing is synchronous: the response shows the order valid, or the
// problem.
func (s *Server) handleFinalize(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	o, err := s.ownOrder(ctx, req, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if o, err = s.refreshOrder(ctx, o); err != nil {
		return err
	}
	if o.Status != core.StatusReady {
		return orderNotReady(o)
	}
	csr, err := parseFinalize(req.payload)
	if err != nil {
		return err
	}
	o, err = s.updateOrderFrom(ctx, o, func(o *core.Order) (bool, error) {
		if o.Status != core.StatusReady {
			return false, orderNotReady(o)
		}
		if st, _ := orderState(o, nil, s.now()); st != core.StatusReady {
			return false, core.Errorf(core.KindOrderNotReady, "order expired")
		}
		o.Status, o.ProcessingSince = core.StatusProcessing, s.now().UTC()
		return true, nil
	})
	if err != nil {
		return err
	}
	// From here on the order is ours; finish it even if the client hangs
	// up, or RecoverStaleOrders would have to.
	o, err = s.issue(context.WithoutCancel(ctx), req, o, csr)
	if err != nil {
		return err
	}
	s.writeOrder(w, req.prov, o)
	return nil
}

func orderNotReady(o *core.Order) error {
	e := core.Errorf(core.KindOrderNotReady, "order is %s, not ready", o.Status)
	if o.Status == core.StatusProcessing {
		e.RetryAfter = 1
	}
	return e
}

// issue asks the CA to sign and completes the order in one store
// transaction with the certificate.
func (s *Server) issue(ctx context.Context, req *request, o *core.Order, csr []byte) (*core.Order, error) {
	cert, err := s.authority.Sign(ctx, core.SignRequest{
		CSR:           csr,
		OrderID:       o.ID,
		AccountID:     o.AccountID,
		Provisioner:   o.Provisioner,
		Identifiers:   o.Identifiers,
		NotBefore:     o.NotBefore,
		NotAfter:      o.NotAfter,
		AccountKeyJWK: req.acct.KeyJWK,
	})
	if err != nil {
		return nil, s.signFailed(ctx, o.ID, err)
	}
	o.Status, o.CertificateID, o.Error = core.StatusValid, cert.ID, nil
	if err := s.store.CompleteOrder(ctx, o, cert); err != nil {
		// The CA stored the certificate, but the order could not say so;
		// RecoverStaleOrders will mark it invalid.
		return nil, storeError(err, "cannot complete order")
	}
	s.logger(ctx).Info("certificate issued", "order", o.ID, "account", o.AccountID, "certificate", cert.ID, "serial", cert.Serial)
	return o, nil
}

// signFailed records a refusal from the CA. A bad CSR puts the order back
// to ready, so the client can finalize again with a good one; so does a
// retryable failure (serverInternal with a Retry-After: the CA unreachable
// from an RA, its database down), so that the same order succeeds on retry
// once the CA is back. Anything else ends the order.
func (s *Server) signFailed(ctx context.Context, orderID string, signErr error) error {
	e := core.AsError(signErr)
	revert := e.Kind == core.KindBadCSR || (e.Kind == core.KindServerInternal && e.RetryAfter > 0)
	_, err := s.updateOrder(ctx, orderID, func(o *core.Order) (bool, error) {
		if o.Status != core.StatusProcessing {
			return false, nil
		}
		o.ProcessingSince = time.Time{}
		if revert {
			o.Status = core.StatusReady
		} else {
			o.Status = core.StatusInvalid
			o.Error = &core.Error{Kind: e.Kind, Detail: e.Detail, Identifier: e.Identifier, Subproblems: e.Subproblems}
		}
		return true, nil
	})
	if err != nil {
		s.logger(ctx).Error("cannot record signing failure", "order", orderID, "error", err)
	}
	return e
}
