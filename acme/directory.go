package acme

import (
	"encoding/pem"
	"net/http"
	"strings"

	"github.com/policyca/policyca/core"
)

// handleDirectory serves the directory object (RFC 8555 §7.1.1).
func (s *Server) handleDirectory(w http.ResponseWriter, r *http.Request, p *provisioner) error {
	d := directoryJSON{
		NewNonce:   p.prefix + "/new-nonce",
		NewAccount: p.prefix + "/new-account",
		NewOrder:   p.prefix + "/new-order",
		RevokeCert: p.prefix + "/revoke-cert",
		KeyChange:  p.prefix + "/key-change",
	}
	m := directoryMeta{
		TermsOfService:          p.TermsOfService,
		Website:                 p.Website,
		CAAIdentities:           p.CAAIdentities,
		ExternalAccountRequired: p.RequireEAB,
	}
	if m.TermsOfService != "" || m.Website != "" || len(m.CAAIdentities) > 0 || m.ExternalAccountRequired {
		d.Meta = &m
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// handleNewNonce answers HEAD with 200, GET and POST-as-GET with 204 (§7.2).
// The nonce itself was put on the response by withNonce.
func (s *Server) handleNewNonce(w http.ResponseWriter, r *http.Request, _ *provisioner) error {
	if w.Header().Get("Replay-Nonce") == "" {
		return core.Errorf(core.KindServerInternal, "cannot issue a nonce")
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getOrPostAsGet serves a resource that must answer a POST-as-GET as well
// as a GET (and HEAD): the directory and newNonce (RFC 8555 §6.3). A POST is
// authenticated like any other (signed by an account, nonce, url) and must
// have an empty payload.
func (s *Server) getOrPostAsGet(h getHandler) http.Handler {
	return s.withProvisioner(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			req, err := s.authenticate(w, r, keyKID)
			if err == nil && !req.postAsGet() {
				err = core.Errorf(core.KindMalformed, "a POST to this resource must be a POST-as-GET (an empty payload)")
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			s.writeError(w, r, core.Errorf(core.KindMethodNotAllowed, "method %s not allowed", r.Method))
			return
		}
		if err := h(w, r, provFrom(r.Context())); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// handleIssuer serves the issuing CA certificate, the target of the
// certificate's Link rel="up": DER by default, PEM when the client asks for
// it in Accept.
func (s *Server) handleIssuer(w http.ResponseWriter, r *http.Request, p *provisioner) error {
	iss := s.authority.Issuer()
	if iss == nil {
		return core.Errorf(core.KindServerInternal, "no issuer certificate")
	}
	if strings.Contains(r.Header.Get("Accept"), "application/x-pem-file") {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.WriteHeader(http.StatusOK)
		// Write errors mean the client went away; nothing left to tell it.
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: iss.Raw})
		return nil
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(iss.Raw)
	return nil
}
