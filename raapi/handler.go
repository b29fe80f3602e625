package raapi

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/policyca/policyca/acme"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store"
)

// Store is what the API needs of the CA's store.
type Store interface {
	store.RARegistry
	GetAccount(ctx context.Context, id string) (*core.Account, error)
	GetEABKey(ctx context.Context, id string) (*core.EABKey, error)
	GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error)
	GetCertificatesByOrder(ctx context.Context, orderID string) ([]*core.Certificate, error)
	RecordDecisions(ctx context.Context, recs []*core.DecisionRecord) error
}

// BundleSource returns the policy bundle in force as a .tar.gz.
type BundleSource func(ctx context.Context) ([]byte, error)

// Options configure the API. Store, Authority, Binder, ClientCA and
// ClientCASigner are required.
type Options struct {
	Store     Store
	Authority acme.Authority
	Binder    acme.AccountBinder
	// ClientCA issues RA client certificates with ClientCASigner, and only
	// chains ending at it are RA certificates.
	ClientCA       *x509.Certificate
	ClientCASigner crypto.Signer
	// CertLifetime of RA client certificates (0 = 30 days).
	CertLifetime time.Duration
	// Provisioners are the CA's provisioners, by name.
	Provisioners map[string]ProvisionerInfo
	// Bundle serves the policy bundle to RAs (nil: not offered).
	Bundle BundleSource
	Logger *slog.Logger
	Now    func() time.Time
}

// DefaultCertLifetime is the lifetime of RA client certificates.
const DefaultCertLifetime = 30 * 24 * time.Hour

// maxBody bounds request bodies (a CSR and a few identifiers).
const maxBody = 256 << 10

type api struct {
	Options
}

// NewHandler returns the handler of /ra/v1/.
func NewHandler(o Options) (http.Handler, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("raapi: Store is required")
	case o.Authority == nil:
		return nil, errors.New("raapi: Authority is required")
	case o.Binder == nil:
		return nil, errors.New("raapi: Binder is required")
	case o.ClientCA == nil || o.ClientCASigner == nil:
		return nil, errors.New("raapi: ClientCA and ClientCASigner are required")
	}
	if o.CertLifetime <= 0 {
		o.CertLifetime = DefaultCertLifetime
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &api{Options: o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Prefix+"/enroll", a.handleEnroll)
	mux.Handle("POST "+Prefix+"/renew", a.auth(a.handleRenew))
	mux.Handle("GET "+Prefix+"/config", a.auth(a.handleConfig))
	mux.Handle("POST "+Prefix+"/listener-cert", a.auth(a.handleListenerCert))
	mux.Handle("POST "+Prefix+"/sign", a.auth(a.handleSign))
	mux.Handle("POST "+Prefix+"/revoke", a.auth(a.handleRevoke))
	mux.Handle("POST "+Prefix+"/eab/bind", a.auth(a.handleBind))
	mux.Handle("GET "+Prefix+"/accounts/{id}", a.auth(a.handleAccount))
	mux.Handle("GET "+Prefix+"/policy/bundle", a.auth(a.handleBundle))
	mux.Handle("GET "+Prefix+"/issuer", a.auth(a.handleIssuer))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(w, r)
	}), nil
}

type raHandler func(w http.ResponseWriter, r *http.Request, ra *core.RA) error

// auth admits a request only with a client certificate that chains to the
// RA CA (the listener's pool also holds the admin CA, so the chain's end is
// checked here) and whose RA is registered and enabled. The registry is
// read on every request, so that disabling an RA takes effect at once on
// every CA node.
func (a *api) auth(h raHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			a.refuse(w, r, "", http.StatusUnauthorized, "the RA API requires an RA client certificate")
			return
		}
		var leaf *x509.Certificate
		for _, chain := range r.TLS.VerifiedChains {
			if len(chain) > 1 && chain[len(chain)-1].Equal(a.ClientCA) {
				leaf = chain[0]
				break
			}
		}
		if leaf == nil {
			a.refuse(w, r, "", http.StatusForbidden, "this client certificate is not an RA certificate")
			return
		}
		name := leaf.Subject.CommonName
		ra, err := a.Store.GetRA(r.Context(), name)
		if errors.Is(err, store.ErrNotFound) {
			a.refuse(w, r, name, http.StatusForbidden, "unknown RA")
			return
		}
		if err != nil {
			a.writeErr(w, r, storeErr(err, "cannot look up the RA"))
			return
		}
		if !ra.DisabledAt.IsZero() {
			a.refuse(w, r, name, http.StatusForbidden, "this RA is disabled")
			return
		}
		if why := superseded(leaf, ra); why != "" {
			a.refuse(w, r, name, http.StatusForbidden, why)
			return
		}
		if err := h(w, r, ra); err != nil {
			a.writeErr(w, r.WithContext(context.WithValue(r.Context(), raKey{}, name)), err)
		}
	})
}

// superseded says why leaf, a certificate of ra, no longer speaks for it
// ("" if it does): it is from an earlier enrolment (see enrolmentMark).
// Renewal keeps the enrolment, so the certificate a renewal replaced stays
// valid until it expires; enrolling again, or disabling, is how an
// operator shuts a key out. A certificate without a mark (issued before
// marks existed) is admitted when it was issued at or after the current
// enrolment (its NotBefore is backdated by pki.Backdate): so the
// certificates of an RA enrolled before marks keep working after it
// renews, on connections that still present the old one, and enrolling
// again shuts them out too (all but one renewed in the minute before).
func superseded(leaf *x509.Certificate, ra *core.RA) string {
	if mark := leaf.Subject.SerialNumber; mark != "" {
		if mark != enrolmentMark(ra.EnrolledAt) {
			return "this RA certificate is from an earlier enrolment of the RA"
		}
		return ""
	}
	if leaf.NotBefore.Before(ra.EnrolledAt.Add(-pki.Backdate).Truncate(time.Second)) {
		return "this RA certificate is from an earlier enrolment of the RA"
	}
	return ""
}

type raKey struct{}

func (a *api) refuse(w http.ResponseWriter, r *http.Request, ra string, status int, detail string) {
	a.Logger.WarnContext(r.Context(), "RA API request refused", "ra", ra, "path", r.URL.Path,
		"remote", r.RemoteAddr, "reason", detail)
	writeJSON(w, status, ErrorBody{Error: core.Errorf(core.KindUnauthorized, "%s", detail)})
}

// allowed refuses a provisioner the CA did not assign to ra.
func allowed(ra *core.RA, prov string) error {
	if !slices.Contains(ra.Provisioners, prov) {
		return core.Errorf(core.KindUnauthorized, "provisioner %q is not assigned to RA %q", prov, ra.Name)
	}
	return nil
}

// statusOf maps an error kind to the API's HTTP status. The RA turns the
// body back into the same *core.Error; the status is for humans and proxies.
func statusOf(k core.ErrorKind) int {
	switch k {
	case core.KindServerInternal:
		return http.StatusInternalServerError
	case core.KindUnauthorized:
		return http.StatusForbidden
	case core.KindNotFound, core.KindAccountDoesNotExist:
		return http.StatusNotFound
	case core.KindConflict, core.KindAlreadyRevoked:
		return http.StatusConflict
	case core.KindRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusBadRequest
}

func (a *api) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e := core.AsError(err)
	ra, _ := r.Context().Value(raKey{}).(string)
	if e.Kind == core.KindServerInternal {
		a.Logger.ErrorContext(r.Context(), "RA API request failed", "ra", ra, "path", r.URL.Path, "err", err)
	} else {
		a.Logger.InfoContext(r.Context(), "RA API request refused", "ra", ra, "path", r.URL.Path, "err", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	writeJSON(w, statusOf(e.Kind), ErrorBody{Error: &core.Error{Kind: e.Kind, Detail: e.Detail, Identifier: e.Identifier,
		Subproblems: e.Subproblems, RetryAfter: e.RetryAfter}})
}

// storeErr turns a store failure into a refusal; an unavailable database is
// retryable.
func storeErr(err error, what string) *core.Error {
	e := core.Wrap(core.KindServerInternal, err, "%s", what)
	if errors.Is(err, store.ErrUnavailable) {
		e.RetryAfter = 5
	}
	return e
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return core.Errorf(core.KindMalformed, "request body: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
