package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/core"
)

// Provisioner is one ACME directory served under /acme/{Name}/. Each has its
// own validation, order policy and account rules; accounts and orders belong
// to exactly one provisioner.
type Provisioner struct {
	Name string
	// Validator checks challenges for this provisioner (required).
	Validator Validator
	// Policy decides at newOrder time; nil allows every identifier.
	Policy OrderPolicy
	// RequireEAB advertises meta.externalAccountRequired and refuses
	// newAccount without a verified external account binding.
	RequireEAB     bool
	TermsOfService string
	Website        string
	CAAIdentities  []string
}

// Store is the part of store.Store the ACME front end uses.
type Store interface {
	CreateAccount(ctx context.Context, a *core.Account) error
	GetAccount(ctx context.Context, id string) (*core.Account, error)
	GetAccountByThumbprint(ctx context.Context, thumbprint string) (*core.Account, error)
	UpdateAccount(ctx context.Context, a *core.Account) error

	CreateOrder(ctx context.Context, o *core.Order, authzs []*core.Authorization) error
	GetOrder(ctx context.Context, id string) (*core.Order, error)
	UpdateOrder(ctx context.Context, o *core.Order) error
	ListOrderIDs(ctx context.Context, accountID, cursor string, limit int, now time.Time) (ids []string, next string, err error)
	ListStaleProcessingOrders(ctx context.Context, before time.Time) ([]*core.Order, error)

	GetAuthorization(ctx context.Context, id string) (*core.Authorization, error)
	GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error)
	UpdateAuthorization(ctx context.Context, a *core.Authorization) error
	HoldsValidAuthorization(ctx context.Context, accountID string, id core.Identifier, wildcard bool, at time.Time) (bool, error)

	CompleteOrder(ctx context.Context, o *core.Order, c *core.Certificate) error
	GetCertificate(ctx context.Context, id string) (*core.Certificate, error)
	GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error)
}

// Options configure a Server. Store, Authority, Nonces, BaseURL and at least
// one Provisioner are required; zero durations and sizes take the defaults
// documented on each field.
type Options struct {
	// BaseURL is the external base, e.g. "https://ca.internal:8443"; every
	// URL the server emits and every JWS "url" it checks is built from it.
	BaseURL      string
	Provisioners []Provisioner
	Store        Store
	Authority    Authority
	Nonces       NonceSource
	// Binder verifies external account bindings. Without it, a newAccount
	// carrying a binding, or on a provisioner that requires one, is refused.
	Binder AccountBinder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// OrderLifetime and AuthzLifetime default to 24h.
	OrderLifetime time.Duration
	AuthzLifetime time.Duration
	// MaxBodyBytes limits JWS request bodies; default 64 KiB.
	MaxBodyBytes int64
	// ValidationWorkers bounds concurrent challenge validations; default 32.
	ValidationWorkers int
	// ValidationTimeout bounds one challenge validation; default 60s.
	ValidationTimeout time.Duration
	// ValidationWait is how long the request that starts a validation
	// waits for its result before answering "processing"; default 2s,
	// negative never waits. A client that gets the final state in that
	// answer need not poll the authorization for it.
	ValidationWait time.Duration
	// OrdersPageSize is the page size of account order lists; default 100.
	OrdersPageSize int
}

// Defaults for Options fields left zero.
const (
	DefaultOrderLifetime     = 24 * time.Hour
	DefaultAuthzLifetime     = 24 * time.Hour
	DefaultMaxBodyBytes      = 64 << 10
	DefaultValidationWorkers = 32
	DefaultValidationTimeout = 60 * time.Second
	DefaultValidationWait    = 2 * time.Second
	DefaultOrdersPageSize    = 100
)

// Server serves the ACME protocol for a set of provisioners.
type Server struct {
	base              string
	provs             map[string]*provisioner
	store             Store
	authority         Authority
	nonces            NonceSource
	binder            AccountBinder
	log               *slog.Logger
	now               func() time.Time
	orderLifetime     time.Duration
	authzLifetime     time.Duration
	maxBody           int64
	validationTimeout time.Duration
	validationWait    time.Duration
	pageSize          int
	handler           http.Handler
	// keys caches parsed account keys (see keyCache).
	keys keyCache

	// sem bounds the number of validations running at once; wg and closed
	// let Close wait for them and refuse new ones.
	sem    chan struct{}
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

type provisioner struct {
	Provisioner
	// prefix is BaseURL + "/acme/" + Name: the root of all its URLs.
	prefix string
}

var provisionerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewServer checks the options and builds a server.
func NewServer(o Options) (*Server, error) {
	base := strings.TrimRight(o.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("acme: BaseURL %q must be an absolute http(s) URL without query", o.BaseURL)
	}
	switch {
	case o.Store == nil:
		return nil, errors.New("acme: Store is required")
	case o.Authority == nil:
		return nil, errors.New("acme: Authority is required")
	case o.Nonces == nil:
		return nil, errors.New("acme: Nonces is required")
	case len(o.Provisioners) == 0:
		return nil, errors.New("acme: at least one provisioner is required")
	}
	s := &Server{
		base:              base,
		provs:             make(map[string]*provisioner, len(o.Provisioners)),
		store:             o.Store,
		authority:         o.Authority,
		nonces:            o.Nonces,
		binder:            o.Binder,
		log:               o.Logger,
		now:               o.Now,
		orderLifetime:     o.OrderLifetime,
		authzLifetime:     o.AuthzLifetime,
		maxBody:           o.MaxBodyBytes,
		validationTimeout: o.ValidationTimeout,
		validationWait:    o.ValidationWait,
		pageSize:          o.OrdersPageSize,
	}
	for i := range o.Provisioners {
		p := o.Provisioners[i]
		if !provisionerName.MatchString(p.Name) {
			return nil, fmt.Errorf("acme: provisioner name %q: want letters, digits, '.', '_', '-'", p.Name)
		}
		if _, dup := s.provs[p.Name]; dup {
			return nil, fmt.Errorf("acme: duplicate provisioner %q", p.Name)
		}
		if p.Validator == nil {
			return nil, fmt.Errorf("acme: provisioner %q: Validator is required", p.Name)
		}
		s.provs[p.Name] = &provisioner{Provisioner: p, prefix: base + "/acme/" + p.Name}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.orderLifetime <= 0 {
		s.orderLifetime = DefaultOrderLifetime
	}
	if s.authzLifetime <= 0 {
		s.authzLifetime = DefaultAuthzLifetime
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.validationTimeout <= 0 {
		s.validationTimeout = DefaultValidationTimeout
	}
	if s.validationWait == 0 {
		s.validationWait = DefaultValidationWait
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultOrdersPageSize
	}
	workers := o.ValidationWorkers
	if workers <= 0 {
		workers = DefaultValidationWorkers
	}
	s.sem = make(chan struct{}, workers)
	s.handler = s.withRequestLog(s.withNonce(s.routes()))
	return s, nil
}

// Handler returns the HTTP handler; it serves /acme/{provisioner}/...
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops accepting challenge validations and waits for the ones in
// flight to finish and record their result.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, core.Errorf(core.KindNotFound, "no such resource"))
	})
	r.NotFoundHandler = notFound
	r.MethodNotAllowedHandler = notFound
	p := r.PathPrefix("/acme/{prov}").Subrouter()
	p.NotFoundHandler = notFound
	// mux tries the routes in this order, one regular expression each,
	// and no two of them match the same path: the ones every issuance
	// requests come first (authorizations are fetched about twice), which
	// halves the matching work of a typical request.
	p.Handle("/authz/{id}", s.post(keyKID, s.handleAuthz))
	p.Handle("/chall/{authz}/{chall}", s.post(keyKID, s.handleChallenge))
	p.Handle("/order/{id}/finalize", s.post(keyKID, s.handleFinalize))
	p.Handle("/order/{id}", s.post(keyKID, s.handleOrder))
	p.Handle("/cert/{id}", s.post(keyKID, s.handleCertificate))
	p.Handle("/new-order", s.post(keyKID, s.handleNewOrder))
	p.Handle("/new-nonce", s.getOrPostAsGet(s.handleNewNonce))
	p.Handle("/new-account", s.post(keyJWK, s.handleNewAccount))
	p.Handle("/directory", s.getOrPostAsGet(s.handleDirectory))
	p.Handle("/account/{id}", s.post(keyKID, s.handleAccount))
	p.Handle("/account/{id}/orders", s.post(keyKID, s.handleAccountOrders))
	p.Handle("/revoke-cert", s.post(keyEither, s.handleRevoke))
	p.Handle("/key-change", s.post(keyKID, s.handleKeyChange))
	p.Handle("/issuer", s.get(s.handleIssuer))
	return r
}

// URL builders. Every URL the server emits comes from here.

func (p *provisioner) directoryURL() string        { return p.prefix + "/directory" }
func (p *provisioner) accountURL(id string) string { return p.prefix + "/account/" + id }
func (p *provisioner) ordersURL(id string) string  { return p.prefix + "/account/" + id + "/orders" }
func (p *provisioner) orderURL(id string) string   { return p.prefix + "/order/" + id }
func (p *provisioner) finalizeURL(id string) string {
	return p.prefix + "/order/" + id + "/finalize"
}
func (p *provisioner) authzURL(id string) string { return p.prefix + "/authz/" + id }
func (p *provisioner) challURL(authzID, challID string) string {
	return p.prefix + "/chall/" + authzID + "/" + challID
}
func (p *provisioner) certURL(id string) string { return p.prefix + "/cert/" + id }
func (p *provisioner) issuerURL() string        { return p.prefix + "/issuer" }

func link(target, rel string) string { return "<" + target + ">;rel=\"" + rel + "\"" }

type provKey struct{}

func provFrom(ctx context.Context) *provisioner {
	p, _ := ctx.Value(provKey{}).(*provisioner)
	return p
}

// withProvisioner resolves {prov}, refusing unknown ones with a 404 problem,
// and adds the Link rel="index" every response of a directory carries.
func (s *Server) withProvisioner(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.provs[mux.Vars(r)["prov"]]
		if !ok {
			s.writeError(w, r, core.Errorf(core.KindNotFound, "no such provisioner"))
			return
		}
		w.Header().Add("Link", link(p.directoryURL(), "index"))
		h(w, r.WithContext(context.WithValue(r.Context(), provKey{}, p)))
	})
}

type getHandler func(w http.ResponseWriter, r *http.Request, p *provisioner) error

// get serves a GET (and HEAD) resource.
func (s *Server) get(h getHandler) http.Handler {
	return s.withProvisioner(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.writeError(w, r, core.Errorf(core.KindMethodNotAllowed, "method %s not allowed", r.Method))
			return
		}
		if err := h(w, r, provFrom(r.Context())); err != nil {
			s.writeError(w, r, err)
		}
	})
}
