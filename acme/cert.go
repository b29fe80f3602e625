package acme

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/core"
)

// handleCertificate is POST-as-GET of an issued certificate chain
// (§7.4.2), for the account that ordered it.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := requirePostAsGet(req); err != nil {
		return err
	}
	c, err := s.store.GetCertificate(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return storeError(err, "certificate")
	}
	if c.Provisioner != req.prov.Name {
		return core.Errorf(core.KindNotFound, "certificate: not found")
	}
	if err := requireOwner(req, c.AccountID); err != nil {
		return err
	}
	if len(c.ChainPEM) == 0 {
		return core.Errorf(core.KindServerInternal, "certificate has no chain")
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Add("Link", link(req.prov.issuerURL(), "up"))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.ChainPEM)
	return nil
}
