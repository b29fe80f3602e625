package raapi

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/ca"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store"
)

// errTokenRefused is all a failed enrolment learns: which of unknown,
// used, expired or wrong it was is logged on the CA only.
var errTokenRefused = core.Errorf(core.KindUnauthorized, "enrolment token refused")

// handleEnroll redeems a one-time token for the RA's first client
// certificate. The token is consumed in the same transaction that records
// the certificate, so of two racing enrolments with one token one wins and
// the other's certificate is never returned.
func (a *api) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req EnrollRequest
	if err := decode(r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	ctx := r.Context()
	tok, err := a.Store.GetRAToken(ctx, req.TokenID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.writeErr(w, r, storeErr(err, "cannot look up the token"))
			return
		}
		a.Logger.WarnContext(ctx, "RA enrolment refused", "token", req.TokenID, "remote", r.RemoteAddr, "reason", "unknown token")
		a.writeErr(w, r, errTokenRefused)
		return
	}
	// Microseconds: what both stores keep of EnrolledAt, which the
	// certificate names (enrolmentMark).
	now := a.Now().UTC().Truncate(time.Microsecond)
	// Checked again inside EnrolRA's transaction; checked here too so
	// that nobody who merely knows a token id makes the RA CA sign.
	if err := store.Redeemable(tok, HashSecret(req.Secret), now); err != nil {
		a.Logger.WarnContext(ctx, "RA enrolment refused", "token", tok.ID, "ra", tok.RAName, "remote", r.RemoteAddr, "reason", err)
		a.writeErr(w, r, errTokenRefused)
		return
	}
	cert, err := a.clientCert(tok.RAName, csr, now, now)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	ra := &core.RA{CertSerial: ca.SerialString(cert.SerialNumber), CertNotAfter: cert.NotAfter}
	// EnrolRA checks the secret (in constant time), the expiry and that
	// the token is unused, inside the transaction.
	if err := a.Store.EnrolRA(ctx, tok.ID, HashSecret(req.Secret), now, ra); err != nil {
		if errors.Is(err, store.ErrTokenUnusable) {
			a.Logger.WarnContext(ctx, "RA enrolment refused", "token", tok.ID, "ra", tok.RAName, "remote", r.RemoteAddr, "reason", err)
			a.writeErr(w, r, errTokenRefused)
			return
		}
		a.writeErr(w, r, storeErr(err, "cannot record the enrolment"))
		return
	}
	a.Logger.InfoContext(ctx, "RA enrolled", "ra", ra.Name, "provisioners", ra.Provisioners, "token", tok.ID,
		"serial", ra.CertSerial, "not_after", ra.CertNotAfter, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ClientCertResponse{ChainPEM: pki.EncodePEMCerts(cert), Config: a.info(ra)})
}

// handleRenew issues a new client certificate to an enrolled, enabled RA.
func (a *api) handleRenew(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	var req RenewRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	cert, err := a.clientCert(ra.Name, csr, a.Now(), ra.EnrolledAt)
	if err != nil {
		return err
	}
	ra.CertSerial, ra.CertNotAfter = ca.SerialString(cert.SerialNumber), cert.NotAfter
	if err := a.Store.UpdateRA(r.Context(), ra); err != nil {
		return storeErr(err, "cannot record the renewal")
	}
	a.Logger.InfoContext(r.Context(), "RA client certificate renewed", "ra", ra.Name, "serial", ra.CertSerial, "not_after", ra.CertNotAfter)
	writeJSON(w, http.StatusOK, ClientCertResponse{ChainPEM: pki.EncodePEMCerts(cert), Config: a.info(ra)})
	return nil
}

func (a *api) handleConfig(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	writeJSON(w, http.StatusOK, a.info(ra))
	return nil
}

// info describes ra's provisioners; one the CA no longer has is left out.
func (a *api) info(ra *core.RA) RAInfo {
	in := RAInfo{Name: ra.Name, Provisioners: []ProvisionerInfo{}}
	for _, p := range ra.Provisioners {
		if pi, ok := a.Provisioners[p]; ok {
			in.Provisioners = append(in.Provisioners, pi)
		}
	}
	return in
}

// enrolmentMark names an enrolment in the RA's client certificates (the
// subject's serialNumber attribute): its time, as the registry keeps it.
// The RA API admits a certificate only with the mark of the RA's current
// enrolment, so enrolling again (after a key was lost or stolen) shuts
// out every certificate of earlier enrolments, renewed ones included.
func enrolmentMark(enrolledAt time.Time) string {
	return "enrolment-" + strconv.FormatInt(enrolledAt.UnixMicro(), 10)
}

// clientCert issues an RA client certificate for the enrolment of
// enrolledAt.
func (a *api) clientCert(name string, csr *x509.CertificateRequest, now, enrolledAt time.Time) (*x509.Certificate, error) {
	lifetime := a.CertLifetime
	if left := a.ClientCA.NotAfter.Sub(now); left < lifetime {
		lifetime = left
	}
	subject := pkix.Name{CommonName: name, SerialNumber: enrolmentMark(enrolledAt)}
	cert, err := pki.IssueClient(a.ClientCA, a.ClientCASigner, csr.PublicKey, subject, lifetime)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot issue the RA certificate")
	}
	return cert, nil
}

// handleListenerCert issues the certificate of the RA's own HTTPS listener
// (the ACME directory its clients use). It goes through Authority.Sign like
// any certificate: the sign-time policy decides on its names, it is logged
// naming the RA, stored and revocable.
func (a *api) handleListenerCert(w http.ResponseWriter, r *http.Request, ra *core.RA) error {
	var req ListenerCertRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := allowed(ra, req.Provisioner); err != nil {
		return err
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	var ids []core.Identifier
	for _, n := range csr.DNSNames {
		ids = append(ids, core.Identifier{Type: core.DNS, Value: n})
	}
	for _, ip := range csr.IPAddresses {
		ids = append(ids, core.Identifier{Type: core.IP, Value: ip.String()})
	}
	for i, id := range ids {
		n, err := core.NormalizeIdentifier(id)
		if err != nil {
			return err
		}
		ids[i] = n
	}
	// The CA refuses a CSR whose key is the "account" key: the RA's client
	// key plays that part, and the listener has a key of its own.
	jwk, err := jws.MarshalJWK(&jose.JSONWebKey{Key: r.TLS.PeerCertificates[0].PublicKey})
	if err != nil {
		return err
	}
	cert, err := a.Authority.Sign(r.Context(), core.SignRequest{
		CSR: req.CSR, OrderID: "ra-listener:" + ra.Name, AccountID: "ra:" + ra.Name, Provisioner: req.Provisioner,
		Identifiers: ids, AccountKeyJWK: jwk, RA: ra.Name,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, FromCore(cert))
	return nil
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, core.Errorf(core.KindBadCSR, "csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, core.Errorf(core.KindBadCSR, "csr signature: %v", err)
	}
	return csr, nil
}
