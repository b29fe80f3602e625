package acme

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// subscriberReasons are the RFC 5280 CRL reason codes a subscriber may give
// (unspecified, keyCompromise, affiliationChanged, superseded,
// cessationOfOperation). The others describe the CA's own decisions.
var subscriberReasons = map[int]bool{0: true, 1: true, 3: true, 4: true, 5: true}

type revokePayload struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// handleRevoke revokes a certificate (§7.6), signed either by an account
// (kid) that ordered it or holds valid authorizations for all its names,
// or by the certificate's own key (jwk).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	var pl revokePayload
	if err := decodePayload(req.payload, &pl); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(pl.Certificate, "="))
	if err != nil || len(der) == 0 {
		return core.Errorf(core.KindMalformed, "certificate is not base64url DER")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return core.Errorf(core.KindMalformed, "certificate is not a valid X.509 certificate")
	}
	reason := 0
	if pl.Reason != nil {
		reason = *pl.Reason
		if !subscriberReasons[reason] {
			return core.Errorf(core.KindBadRevocationReason, "reason %d is not allowed; use 0, 1, 3, 4 or 5", reason)
		}
	}
	serial := cert.SerialNumber.Text(16)
	rec, err := s.store.GetCertificateBySerial(ctx, serial)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(rec.DER, der)) {
		return core.Errorf(core.KindNotFound, "this certificate was not issued by this CA")
	}
	if err != nil {
		return storeError(err, "cannot look up certificate")
	}
	if req.acct != nil {
		if rec.AccountID != req.acct.ID {
			// An account belongs to one provisioner: holding
			// authorizations there says nothing about another's
			// certificates, whose validation and policy may differ.
			if rec.Provisioner != req.prov.Name {
				return core.Errorf(core.KindUnauthorized, "the certificate was issued through another provisioner")
			}
			if err := s.authorizedFor(r, req.acct.ID, rec.Names); err != nil {
				return err
			}
		}
	} else if certKey := (&jose.JSONWebKey{Key: cert.PublicKey}); !jws.KeysEqual(certKey, req.key) {
		return core.Errorf(core.KindUnauthorized, "the request is not signed by the certificate's key")
	}
	if !rec.RevokedAt.IsZero() {
		return core.Errorf(core.KindAlreadyRevoked, "certificate is already revoked")
	}
	if err := s.authority.Revoke(ctx, serial, reason); err != nil {
		return err
	}
	s.logger(ctx).Info("certificate revoked", "serial", serial, "reason", reason, "by_account", req.acct != nil)
	w.WriteHeader(http.StatusOK)
	return nil
}

// authorizedFor returns nil if the account holds a valid, unexpired
// authorization for every name of the certificate (names, as the CA
// recorded them; a wildcard name needs a wildcard authorization for its
// base name), which §7.6 says makes it one of the accounts that may revoke
// the certificate.
func (s *Server) authorizedFor(r *http.Request, accountID string, names []core.Identifier) error {
	if len(names) == 0 {
		return core.Errorf(core.KindUnauthorized, "the certificate belongs to another account")
	}
	now := s.now()
	for _, n := range names {
		id, wildcard := n, false
		if base, ok := strings.CutPrefix(n.Value, "*."); ok && n.Type == core.DNS {
			id.Value, wildcard = base, true
		}
		ok, err := s.store.HoldsValidAuthorization(r.Context(), accountID, id, wildcard, now)
		if err != nil {
			return storeError(err, "cannot look up authorizations")
		}
		if !ok {
			return core.Errorf(core.KindUnauthorized,
				"the certificate belongs to another account, and this account holds no valid authorization for %s", n.Value)
		}
	}
	return nil
}
