package ra

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/store"
)

// LocalStore is what the CA client reads from (and, for bound accounts,
// writes to) the RA's own store.
type LocalStore interface {
	CreateAccount(ctx context.Context, a *core.Account) error
	GetAccount(ctx context.Context, id string) (*core.Account, error)
	GetOrder(ctx context.Context, id string) (*core.Order, error)
	GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error)
}

// ClientOptions configure a Client. CAURL, Root and Cert are required.
type ClientOptions struct {
	// CAURL is the CA's base URL (https://host:port).
	CAURL string
	// Root is the pinned CA root: the CA's TLS chain must end at it.
	Root *x509.Certificate
	// Cert is the RA's client certificate; SetCertificate replaces it.
	Cert tls.Certificate
	// Store is the RA's store (required for Sign and CreateBoundAccount).
	Store LocalStore
	// Issuer is the last known issuing certificate, used until the CA
	// answers (an RA starting while the CA is down still serves its
	// directory).
	Issuer *x509.Certificate
	// Timeout bounds one call (0 = 30s).
	Timeout time.Duration
	// RetryAfter is what finalize tells clients when the CA cannot be
	// reached (0 = 30s).
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// Client is the RA's side of the RA↔CA API. It implements the ACME front
// end's Authority and AccountBinder, and the policy engine's AccountInfo,
// so that `policyca ra` runs the same acme/ code as the CA. All calls share
// one http.Transport: one kept-alive mTLS connection pool, not a handshake
// per certificate.
type Client struct {
	base       string
	hc         *http.Client
	cert       atomic.Pointer[tls.Certificate]
	issuer     atomic.Pointer[x509.Certificate]
	store      LocalStore
	retryAfter int
	log        *slog.Logger

	// accounts caches the CA's answer per account, so that orders keep
	// working (with the last known account policy) while the CA is down.
	accounts sync.Map // account id → raapi.AccountInfo
}

// NewClient builds a client.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.CAURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("ra: CA URL %q is not https://host[:port]", o.CAURL)
	}
	if o.Root == nil {
		return nil, errors.New("ra: the CA root is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{base: u.Scheme + "://" + u.Host, store: o.Store, retryAfter: int(o.RetryAfter / time.Second), log: o.Logger}
	if len(o.Cert.Certificate) > 0 {
		c.SetCertificate(o.Cert)
	}
	if o.Issuer != nil {
		c.issuer.Store(o.Issuer)
	}
	pool := x509.NewCertPool()
	pool.AddCert(o.Root)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:    pool,
			MinVersion: tls.VersionTLS12,
			// Asked per handshake, so a renewed certificate is used by
			// the next connection without rebuilding the pool.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if cert := c.cert.Load(); cert != nil {
					return cert, nil
				}
				return &tls.Certificate{}, nil
			},
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	c.hc = &http.Client{Transport: tr, Timeout: o.Timeout}
	return c, nil
}

// SetCertificate makes the client use cert for new connections (after a
// renewal). Connections already open keep the old one until they close.
func (c *Client) SetCertificate(cert tls.Certificate) {
	c.cert.Store(&cert)
}

// CloseIdle closes idle connections, e.g. so that a renewed certificate is
// presented at once.
func (c *Client) CloseIdle() { c.hc.Transport.(*http.Transport).CloseIdleConnections() }

// unreachable is the retryable failure finalize reports while the CA
// cannot be reached: the order goes back to ready and the client retries.
func (c *Client) unreachable(err error) *core.Error {
	e := core.Wrap(core.KindServerInternal, err, "the CA cannot be reached; the order is still ready, retry later")
	e.RetryAfter = c.retryAfter
	return e
}

// call sends one request; in (if not nil) is JSON, out (if not nil) gets the
// JSON answer. Refusals come back as the CA's *core.Error.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+raapi.Prefix+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		return c.refusal(resp, b)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			return core.Wrap(core.KindServerInternal, err, "bad answer from the CA")
		}
	}
	return nil
}

func (c *Client) refusal(resp *http.Response, b []byte) error {
	var eb raapi.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Kind != "" {
		return eb.Error
	}
	// No problem from the CA itself: a proxy, or the CA restarting.
	if resp.StatusCode >= 500 {
		return c.unreachable(fmt.Errorf("CA answered %s", resp.Status))
	}
	return core.Errorf(core.KindServerInternal, "CA answered %s", resp.Status)
}

// Sign relays a finalize to the CA with the evidence of how the RA
// validated each identifier and what it believes about the account.
func (c *Client) Sign(ctx context.Context, req core.SignRequest) (*core.Certificate, error) {
	if c.store == nil {
		return nil, core.Errorf(core.KindServerInternal, "ra: client has no store")
	}
	wr := raapi.SignRequest{
		CSR: req.CSR, OrderID: req.OrderID, AccountID: req.AccountID, Provisioner: req.Provisioner,
		Identifiers: req.Identifiers, NotBefore: req.NotBefore, NotAfter: req.NotAfter, AccountKeyJWK: req.AccountKeyJWK,
	}
	acct, err := c.store.GetAccount(ctx, req.AccountID)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot read the account")
	}
	wr.EABKeyID = acct.EABKeyID
	if acct.EABKeyID != "" {
		_, pol, err := c.LookupAccount(ctx, acct.ID)
		if err != nil {
			return nil, err
		}
		wr.AccountPolicy = pol
	}
	if wr.Evidence, err = c.evidence(ctx, req.OrderID); err != nil {
		return nil, err
	}
	var out raapi.Certificate
	if err := c.call(ctx, http.MethodPost, "/sign", wr, &out); err != nil {
		return nil, err
	}
	return out.Core(), nil
}

func (c *Client) evidence(ctx context.Context, orderID string) ([]raapi.Evidence, error) {
	o, err := c.store.GetOrder(ctx, orderID)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot read the order")
	}
	authzs, err := c.store.GetAuthorizations(ctx, o.AuthzIDs)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot read the authorizations")
	}
	var ev []raapi.Evidence
	for _, a := range authzs {
		for _, ch := range a.Challenges {
			if ch.Status == core.StatusValid {
				ev = append(ev, raapi.Evidence{Identifier: a.Identifier, Challenge: ch.Type, Validated: ch.Validated})
			}
		}
	}
	return ev, nil
}

// Revoke asks the CA to revoke; the ACME front end has checked that the
// client may.
func (c *Client) Revoke(ctx context.Context, serial string, reason int) error {
	return c.call(ctx, http.MethodPost, "/revoke", raapi.RevokeRequest{Serial: serial, Reason: reason}, nil)
}

// Issuer returns the CA's issuing certificate (nil until it is known).
func (c *Client) Issuer() *x509.Certificate { return c.issuer.Load() }

// FetchIssuer asks the CA for its issuing certificate and keeps it.
func (c *Client) FetchIssuer(ctx context.Context) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+raapi.Prefix+"/issuer", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, c.unreachable(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.refusal(resp, b)
	}
	certs, err := pki.ParsePEMCerts(b)
	if err != nil {
		return nil, err
	}
	c.issuer.Store(certs[0])
	return certs[0], nil
}

// CreateBoundAccount forwards the binding to the CA, which verifies it and
// binds the key in its own store (one account per key across every RA),
// then creates the account locally with the CA's account ID.
func (c *Client) CreateBoundAccount(ctx context.Context, acct *core.Account, binding []byte, outerKey *jose.JSONWebKey, url string) error {
	if c.store == nil {
		return core.Errorf(core.KindServerInternal, "ra: client has no store")
	}
	outer, err := jws.MarshalJWK(outerKey)
	if err != nil {
		return err
	}
	req := raapi.BindRequest{
		Account: raapi.BindAccount{ID: acct.ID, Provisioner: acct.Provisioner, KeyThumbprint: acct.KeyThumbprint,
			KeyJWK: acct.KeyJWK, Contact: acct.Contact, TermsAgreed: acct.TermsAgreed, CreatedAt: acct.CreatedAt},
		Binding: binding, OuterKeyJWK: outer, URL: url,
	}
	var out raapi.BindResponse
	if err := c.call(ctx, http.MethodPost, "/eab/bind", req, &out); err != nil {
		return err
	}
	a := *acct
	a.ID, a.EABKeyID = out.AccountID, out.EABKeyID
	if err := c.store.CreateAccount(ctx, &a); err != nil {
		// A retry after the CA bound the key but before the local
		// account existed finds the CA's account: keep it if it is ours.
		if prev, gerr := c.store.GetAccount(ctx, out.AccountID); gerr == nil && prev.KeyThumbprint == a.KeyThumbprint {
			*acct = *prev
			return nil
		}
		if errors.Is(err, store.ErrConflict) {
			return core.Wrap(core.KindConflict, err, "an account already exists for this key")
		}
		return core.Wrap(core.KindServerInternal, err, "cannot create the account")
	}
	*acct = a
	return nil
}

// LookupAccount implements policy.AccountInfo for the RA's order-time
// policy: the EAB key and account policy as the CA records them. Accounts
// without EAB need no call; for the others the last answer is kept, so that
// orders still work with it while the CA is unreachable.
func (c *Client) LookupAccount(ctx context.Context, id string) (*policy.EABInfo, json.RawMessage, error) {
	if c.store != nil {
		acct, err := c.store.GetAccount(ctx, id)
		if err == nil && acct.EABKeyID == "" {
			return nil, nil, nil
		}
	}
	var info raapi.AccountInfo
	err := c.call(ctx, http.MethodGet, "/accounts/"+url.PathEscape(id), nil, &info)
	if err != nil {
		cached, ok := c.accounts.Load(id)
		if !ok || !retryable(err) {
			return nil, nil, err
		}
		c.log.WarnContext(ctx, "CA unreachable: using the last known account data", "account", id, "err", err)
		info = cached.(raapi.AccountInfo)
	} else {
		c.accounts.Store(id, info)
	}
	if info.EAB == nil {
		return nil, nil, nil
	}
	return &policy.EABInfo{KeyID: info.EAB.KeyID, Reference: info.EAB.Reference}, info.Policy, nil
}

func retryable(err error) bool {
	var e *core.Error
	return errors.As(err, &e) && e.Kind == core.KindServerInternal && e.RetryAfter > 0
}

// Config asks the CA which provisioners the RA serves.
func (c *Client) Config(ctx context.Context) (raapi.RAInfo, error) {
	var in raapi.RAInfo
	err := c.call(ctx, http.MethodGet, "/config", nil, &in)
	return in, err
}

// Renew asks for a new client certificate for the key of csr.
func (c *Client) Renew(ctx context.Context, csr []byte) (raapi.ClientCertResponse, error) {
	var out raapi.ClientCertResponse
	err := c.call(ctx, http.MethodPost, "/renew", raapi.RenewRequest{CSR: csr}, &out)
	return out, err
}

// ListenerCert asks for the certificate of the RA's HTTPS listener.
func (c *Client) ListenerCert(ctx context.Context, csr []byte, provisioner string) (*core.Certificate, error) {
	var out raapi.Certificate
	if err := c.call(ctx, http.MethodPost, "/listener-cert", raapi.ListenerCertRequest{CSR: csr, Provisioner: provisioner}, &out); err != nil {
		return nil, err
	}
	return out.Core(), nil
}

// FetchBundle downloads the CA's policy bundle unless its ETag is still
// etag; notModified says it was.
func (c *Client) FetchBundle(ctx context.Context, etag string) (b []byte, newETag string, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+raapi.Prefix+"/policy/bundle", nil)
	if err != nil {
		return nil, "", false, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", false, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, etag, true, nil
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, policy.DefaultMaxBundleBytes+1))
	if err != nil {
		return nil, "", false, c.unreachable(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", false, c.refusal(resp, b)
	}
	return b, resp.Header.Get("ETag"), false, nil
}
