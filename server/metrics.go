package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/policyca/policyca/acme"
	"github.com/policyca/policyca/ca"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/metrics"
	"github.com/policyca/policyca/store"
)

// The decorators below report to the metrics without the packages they
// wrap knowing about Prometheus.

func since(t time.Time) float64 { return time.Since(t).Seconds() }

func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	var e *core.Error
	if errors.As(err, &e) {
		return string(e.Kind)
	}
	return "error"
}

// endpointOf names the resource of a request path for the endpoint label
// (bounded cardinality: no IDs, no provisioner names).
func endpointOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "acme":
		res := parts[2]
		if res == "order" && len(parts) == 5 && parts[4] == "finalize" {
			return "acme_finalize"
		}
		if res == "account" && len(parts) == 5 && parts[4] == "orders" {
			return "acme_orders"
		}
		switch res {
		case "directory", "new-nonce", "new-account", "new-order", "revoke-cert", "key-change",
			"account", "order", "authz", "chall", "cert", "issuer":
			return "acme_" + strings.ReplaceAll(res, "-", "_")
		}
		return "acme_other"
	case len(parts) >= 1 && parts[0] == "admin":
		return "admin"
	case len(parts) >= 1 && parts[0] == "ra":
		return "ra_api"
	case path == "/healthz", path == "/crl", path == "/roots.pem":
		return strings.TrimPrefix(strings.TrimSuffix(path, ".pem"), "/")
	}
	return "other"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func httpMetrics(m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		ep := endpointOf(r.URL.Path)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		m.Requests.WithLabelValues(ep, strconv.Itoa(rec.code)).Inc()
		m.RequestDuration.WithLabelValues(ep).Observe(since(start))
	})
}

type validatorMetrics struct {
	v acme.Validator
	m *metrics.Metrics
}

func (v validatorMetrics) Validate(ctx context.Context, in core.ChallengeInput) error {
	start := time.Now()
	err := v.v.Validate(ctx, in)
	res := "valid"
	if err != nil {
		res = resultOf(err)
	}
	v.m.Validation.WithLabelValues(in.Type, res).Observe(since(start))
	return err
}

type orderPolicyMetrics struct {
	p acme.OrderPolicy
	m *metrics.Metrics
}

func (o orderPolicyMetrics) CheckOrder(ctx context.Context, prov string, acct *core.Account, ids []core.Identifier) error {
	start := time.Now()
	err := o.p.CheckOrder(ctx, prov, acct, ids)
	res := "allow"
	switch {
	case core.IsKind(err, core.KindRejectedIdentifier):
		res = "deny"
		o.m.Refusals.WithLabelValues(prov, "order", "policy").Inc()
	case err != nil:
		res = "error"
		o.m.Refusals.WithLabelValues(prov, "order", "policy_error").Inc()
	}
	o.m.PolicyEval.WithLabelValues("order", res).Observe(since(start))
	return err
}

type signPolicyMetrics struct {
	p ca.SignPolicy
	m *metrics.Metrics
}

func (s signPolicyMetrics) CheckSign(ctx context.Context, req core.SignRequest, csr *x509.CertificateRequest) (ca.Decision, error) {
	start := time.Now()
	d, err := s.p.CheckSign(ctx, req, csr)
	res := "allow"
	switch {
	case err != nil:
		res = "error"
	case !d.Allow:
		res = "deny"
	}
	s.m.PolicyEval.WithLabelValues("sign", res).Observe(since(start))
	return d, err
}

// authorityMetrics counts issuances and sign-stage refusals.
type authorityMetrics struct {
	a acme.Authority
	m *metrics.Metrics
}

func (a authorityMetrics) Sign(ctx context.Context, req core.SignRequest) (*core.Certificate, error) {
	c, err := a.a.Sign(ctx, req)
	if err != nil {
		a.m.Refusals.WithLabelValues(req.Provisioner, "sign", resultOf(err)).Inc()
		return nil, err
	}
	a.m.Issuances.WithLabelValues(req.Provisioner).Inc()
	return c, nil
}

func (a authorityMetrics) Revoke(ctx context.Context, serial string, reason int) error {
	return a.a.Revoke(ctx, serial, reason)
}

func (a authorityMetrics) Issuer() *x509.Certificate { return a.a.Issuer() }

// signerMetrics times the issuing key's signatures; it passes health and
// close through to an HSM signer.
type signerMetrics struct {
	crypto.Signer
	backend string
	m       *metrics.Metrics
}

func (s signerMetrics) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := s.Signer.Sign(r, digest, opts)
	res := "ok"
	if err != nil {
		res = "error"
	}
	s.m.Sign.WithLabelValues(s.backend, res).Observe(since(start))
	return sig, err
}

func (s signerMetrics) Healthy() (bool, error) {
	if hc, ok := s.Signer.(interface{ Healthy() (bool, error) }); ok {
		return hc.Healthy()
	}
	return true, nil
}

func (s signerMetrics) Close() error {
	if c, ok := s.Signer.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// storeMetrics times the store operations on the ACME path.
type storeMetrics struct {
	store.Store
	m *metrics.Metrics
}

func (s storeMetrics) obs(op string, start time.Time, err error) {
	res := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		res = "not_found"
	case errors.Is(err, store.ErrConflict):
		res = "conflict"
	default:
		res = "error"
	}
	s.m.Store.WithLabelValues(op, res).Observe(since(start))
}

func (s storeMetrics) CreateAccount(ctx context.Context, a *core.Account) (err error) {
	defer func(t time.Time) { s.obs("create_account", t, err) }(time.Now())
	return s.Store.CreateAccount(ctx, a)
}

func (s storeMetrics) CreateAccountBound(ctx context.Context, a *core.Account, kid string, now time.Time) (err error) {
	defer func(t time.Time) { s.obs("create_account_bound", t, err) }(time.Now())
	return s.Store.CreateAccountBound(ctx, a, kid, now)
}

func (s storeMetrics) GetEABKey(ctx context.Context, id string) (k *core.EABKey, err error) {
	defer func(t time.Time) { s.obs("get_eab_key", t, err) }(time.Now())
	return s.Store.GetEABKey(ctx, id)
}

func (s storeMetrics) GetAccount(ctx context.Context, id string) (a *core.Account, err error) {
	defer func(t time.Time) { s.obs("get_account", t, err) }(time.Now())
	return s.Store.GetAccount(ctx, id)
}

func (s storeMetrics) GetAccountByThumbprint(ctx context.Context, tp string) (a *core.Account, err error) {
	defer func(t time.Time) { s.obs("get_account_by_thumbprint", t, err) }(time.Now())
	return s.Store.GetAccountByThumbprint(ctx, tp)
}

func (s storeMetrics) CreateOrder(ctx context.Context, o *core.Order, az []*core.Authorization) (err error) {
	defer func(t time.Time) { s.obs("create_order", t, err) }(time.Now())
	return s.Store.CreateOrder(ctx, o, az)
}

func (s storeMetrics) GetOrder(ctx context.Context, id string) (o *core.Order, err error) {
	defer func(t time.Time) { s.obs("get_order", t, err) }(time.Now())
	return s.Store.GetOrder(ctx, id)
}

func (s storeMetrics) UpdateOrder(ctx context.Context, o *core.Order) (err error) {
	defer func(t time.Time) { s.obs("update_order", t, err) }(time.Now())
	return s.Store.UpdateOrder(ctx, o)
}

func (s storeMetrics) GetAuthorization(ctx context.Context, id string) (a *core.Authorization, err error) {
	defer func(t time.Time) { s.obs("get_authorization", t, err) }(time.Now())
	return s.Store.GetAuthorization(ctx, id)
}

func (s storeMetrics) GetAuthorizations(ctx context.Context, ids []string) (a []*core.Authorization, err error) {
	defer func(t time.Time) { s.obs("get_authorizations", t, err) }(time.Now())
	return s.Store.GetAuthorizations(ctx, ids)
}

func (s storeMetrics) UpdateAuthorization(ctx context.Context, a *core.Authorization) (err error) {
	defer func(t time.Time) { s.obs("update_authorization", t, err) }(time.Now())
	return s.Store.UpdateAuthorization(ctx, a)
}

func (s storeMetrics) PutCertificate(ctx context.Context, c *core.Certificate) (err error) {
	defer func(t time.Time) { s.obs("put_certificate", t, err) }(time.Now())
	return s.Store.PutCertificate(ctx, c)
}

func (s storeMetrics) CompleteOrder(ctx context.Context, o *core.Order, c *core.Certificate) (err error) {
	defer func(t time.Time) { s.obs("complete_order", t, err) }(time.Now())
	return s.Store.CompleteOrder(ctx, o, c)
}

func (s storeMetrics) RecordDecisions(ctx context.Context, recs []*core.DecisionRecord) (err error) {
	defer func(t time.Time) { s.obs("record_decisions", t, err) }(time.Now())
	return s.Store.RecordDecisions(ctx, recs)
}
