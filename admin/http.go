package admin

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
)

// Prefix is where the admin API is mounted on the CA's listener.
const Prefix = "/admin/v1"

// maxBody bounds admin request bodies (an account policy is the largest).
const maxBody = 1 << 20

// Handler serves the admin API for svc. Every request must come over TLS
// with a client certificate that chains to adminCA; the listener asks for
// (but does not require) client certificates, so this check is the gate.
func Handler(svc API, adminCA *x509.Certificate, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: svc, ca: adminCA, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Prefix+"/eab", h.addEAB)
	mux.HandleFunc("GET "+Prefix+"/eab", h.listEAB)
	mux.HandleFunc("POST "+Prefix+"/eab/{kid}/revoke", h.revokeEAB)
	mux.HandleFunc("PUT "+Prefix+"/eab/{kid}/policy", h.setPolicy)
	mux.HandleFunc("GET "+Prefix+"/decisions", h.decisions)
	mux.HandleFunc("GET "+Prefix+"/provisioners", h.listProvisioners)
	mux.HandleFunc("POST "+Prefix+"/provisioners", h.addProvisioner)
	return h.auth(mux)
}

type handler struct {
	svc API
	ca  *x509.Certificate
	log *slog.Logger
}

// auth admits only certificates issued by the admin CA (the TLS stack has
// verified the chain against the pool that holds it; the check here makes
// sure it is that root and not another one in the pool, e.g. the RAs').
func (h *handler) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeErr(w, http.StatusUnauthorized, "the admin API requires an admin client certificate")
			return
		}
		ok := false
		for _, chain := range r.TLS.VerifiedChains {
			if len(chain) > 0 && chain[len(chain)-1].Equal(h.ca) {
				ok = true
			}
		}
		if !ok {
			writeErr(w, http.StatusForbidden, "this client certificate is not an admin certificate")
			return
		}
		h.log.Info("admin request", "method", r.Method, "path", r.URL.Path,
			"admin", r.TLS.VerifiedChains[0][0].Subject.CommonName)
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		writeErr(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	default:
		h.log.Error("admin request failed", "err", err)
		writeErr(w, http.StatusInternalServerError, "internal error")
	}
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return nil
}

func (h *handler) addEAB(w http.ResponseWriter, r *http.Request) {
	var req AddEABRequest
	if err := decode(r, &req); err != nil {
		h.fail(w, err)
		return
	}
	k, err := h.svc.AddEAB(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (h *handler) listEAB(w http.ResponseWriter, r *http.Request) {
	ks, err := h.svc.ListEAB(r.Context(), r.URL.Query().Get("provisioner"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ks)
}

func (h *handler) revokeEAB(w http.ResponseWriter, r *http.Request) {
	deact := r.URL.Query().Get("deactivate_account") == "true"
	k, err := h.svc.RevokeEAB(r.Context(), r.PathValue("kid"), deact)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (h *handler) setPolicy(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		h.fail(w, fmt.Errorf("%w: body: %v", ErrInvalid, err))
		return
	}
	k, err := h.svc.SetEABPolicy(r.Context(), r.PathValue("kid"), b)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (h *handler) decisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := core.DecisionFilter{DeniedOnly: q.Get("denied") == "true", AccountID: q.Get("account")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			h.fail(w, fmt.Errorf("%w: since: %v", ErrInvalid, err))
			return
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			h.fail(w, fmt.Errorf("%w: limit: %v", ErrInvalid, err))
			return
		}
		f.Limit = n
	}
	ds, err := h.svc.ListDecisions(r.Context(), f)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

func (h *handler) listProvisioners(w http.ResponseWriter, r *http.Request) {
	ps, err := h.svc.ListProvisioners(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ps)
}

func (h *handler) addProvisioner(w http.ResponseWriter, r *http.Request) {
	var p config.Provisioner
	if err := decode(r, &p); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.svc.AddProvisioner(r.Context(), p)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Client is the admin API over HTTPS with an admin client certificate
// (configured in HTTPClient's transport).
type Client struct {
	BaseURL    string // https://host:port of the CA
	HTTPClient *http.Client
}

var _ API = (*Client)(nil)
var _ API = (*Service)(nil)

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+Prefix+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		_ = json.Unmarshal(data, &eb)
		if eb.Error == "" {
			eb.Error = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, strings.TrimPrefix(eb.Error, "not found: "))
		case http.StatusBadRequest:
			return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(eb.Error, "invalid request: "))
		case http.StatusConflict:
			return fmt.Errorf("%w: %s", ErrConflict, strings.TrimPrefix(eb.Error, "conflict: "))
		}
		return fmt.Errorf("admin API: %s: %s", resp.Status, eb.Error)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API: bad response: %w", err)
		}
	}
	return nil
}

func (c *Client) AddEAB(ctx context.Context, req AddEABRequest) (*NewEABKey, error) {
	var k NewEABKey
	return &k, c.do(ctx, http.MethodPost, "/eab", req, &k)
}

func (c *Client) ListEAB(ctx context.Context, provisioner string) ([]EABKeyView, error) {
	var ks []EABKeyView
	return ks, c.do(ctx, http.MethodGet, "/eab?provisioner="+url.QueryEscape(provisioner), nil, &ks)
}

func (c *Client) RevokeEAB(ctx context.Context, kid string, deactivateAccount bool) (*EABKeyView, error) {
	var k EABKeyView
	return &k, c.do(ctx, http.MethodPost, "/eab/"+url.PathEscape(kid)+"/revoke?deactivate_account="+strconv.FormatBool(deactivateAccount), nil, &k)
}

func (c *Client) SetEABPolicy(ctx context.Context, kid string, policy json.RawMessage) (*EABKeyView, error) {
	if policy == nil {
		policy = json.RawMessage("null")
	}
	var k EABKeyView
	return &k, c.do(ctx, http.MethodPut, "/eab/"+url.PathEscape(kid)+"/policy", policy, &k)
}

func (c *Client) ListDecisions(ctx context.Context, f core.DecisionFilter) ([]DecisionView, error) {
	q := url.Values{}
	if f.DeniedOnly {
		q.Set("denied", "true")
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.AccountID != "" {
		q.Set("account", f.AccountID)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var ds []DecisionView
	return ds, c.do(ctx, http.MethodGet, "/decisions?"+q.Encode(), nil, &ds)
}

func (c *Client) ListProvisioners(ctx context.Context) ([]ProvisionerView, error) {
	var ps []ProvisionerView
	return ps, c.do(ctx, http.MethodGet, "/provisioners", nil, &ps)
}

func (c *Client) AddProvisioner(ctx context.Context, p config.Provisioner) (*ProvisionerView, error) {
	var v ProvisionerView
	return &v, c.do(ctx, http.MethodPost, "/provisioners", p, &v)
}
