package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/policyca/policyca/acme"
	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/ca"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/internal/httpserve"
	"github.com/policyca/policyca/metrics"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/policy/capolicy"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/signer"
	// Registers the pkcs11: key URI scheme (a clear error in builds
	// without cgo).
	_ "github.com/policyca/policyca/signer/pkcs11"
	"github.com/policyca/policyca/store"
)

// Server is one running CA node.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	store  store.Store
	ca     *ca.CA
	issuer crypto.Signer
	// keys are the keys opened (issuer, TLS, RA CA), closed by Close.
	keys   []interface{ Close() error }
	policy *policy.Engine
	// metrics are served on their own listener (config "metrics").
	metrics *metrics.Metrics
	acme    *acme.Server
	root    *x509.Certificate
	tlsCfg  *tls.Config
	mux     *http.ServeMux

	// pruneNonces deletes expired used-nonce records (shared nonces only).
	pruneNonces func(context.Context)

	mu      sync.Mutex
	httpSrv *http.Server
}

// New builds a node from its configuration. It opens the database (running
// migrations) and loads every key; any failure is returned, naming what
// failed, and nothing keeps running.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (s *Server, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s = &Server{cfg: cfg, log: log}
	opened := s // s is nil once an error is returned
	defer func() {
		if err != nil {
			opened.closeKeys()
		}
	}()

	roots, err := pki.ReadPEMCerts(cfg.Path(cfg.Issuer.Root))
	if err != nil {
		return nil, fmt.Errorf("issuer.root: %w", err)
	}
	s.root = roots[0]
	issuerCerts, err := pki.ReadPEMCerts(cfg.Path(cfg.Issuer.Cert))
	if err != nil {
		return nil, fmt.Errorf("issuer.cert: %w", err)
	}
	var chain []*x509.Certificate
	if len(issuerCerts) > 1 {
		chain = issuerCerts[1:]
	}
	if cfg.Issuer.Chain != "" {
		more, err := pki.ReadPEMCerts(cfg.Path(cfg.Issuer.Chain))
		if err != nil {
			return nil, fmt.Errorf("issuer.chain: %w", err)
		}
		chain = append(chain, more...)
	}
	s.metrics = metrics.New()
	issuerSigner, err := signer.Open(ctx, cfg.KeyURI(cfg.Issuer.Key))
	if err != nil {
		return nil, fmt.Errorf("issuer.key: %w", err)
	}
	s.keep(issuerSigner)
	issuerSigner = signerMetrics{Signer: issuerSigner, backend: keyBackend(cfg.Issuer.Key), m: s.metrics}
	s.metrics.GaugeFunc("policyca_signer_healthy", "1 if the issuing key can sign (HSM token present and logged in).", func() float64 {
		if ok, _ := issuerSigner.(signerMetrics).Healthy(); ok {
			return 1
		}
		return 0
	})
	s.issuer = issuerSigner

	tlsCerts, err := pki.ReadPEMCerts(cfg.Path(cfg.TLS.Cert))
	if err != nil {
		return nil, fmt.Errorf("tls.cert: %w", err)
	}
	tlsSigner, err := signer.Open(ctx, cfg.KeyURI(cfg.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	s.keep(tlsSigner)
	tc := tls.Certificate{PrivateKey: tlsSigner, Leaf: tlsCerts[0]}
	for _, c := range tlsCerts {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{tc}, MinVersion: tls.VersionTLS12}
	var adminCA *x509.Certificate
	if cfg.Admin != nil {
		cas, err := pki.ReadPEMCerts(cfg.Path(cfg.Admin.ClientCA))
		if err != nil {
			return nil, fmt.Errorf("admin.client_ca: %w", err)
		}
		adminCA = cas[0]
		// Ask for client certificates without requiring them: ACME
		// clients have none; the admin API checks for its own CA.
		s.trustClientCA(adminCA)
	}

	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.store = st
	defer func() {
		if err != nil {
			st.Close()
		}
	}()

	node := NodeName(cfg)
	// The ACME front end, the CA, the policy engine (its decision log and
	// account lookups) and the EAB binder see the store through the
	// metrics, so that every store operation of an issuance is counted.
	mst := storeMetrics{st, s.metrics}
	s.policy, err = newPolicyEngine(cfg, mst, node, log, s.metrics)
	if err != nil {
		return nil, err
	}

	profiles := map[string]ca.Profile{}
	for _, p := range cfg.Provisioners {
		profiles[p.Name] = ca.Profile{DefaultLifetime: p.DefaultLifetime.D(), MaxLifetime: p.MaxLifetime.D()}
	}
	lint := cfg.Issuer.Lint == nil || *cfg.Issuer.Lint
	s.ca, err = ca.New(ca.Options{
		Signer:   issuerSigner,
		Issuer:   issuerCerts[0],
		Chain:    chain,
		Store:    mst,
		Profiles: profiles,
		Policy:   signPolicyMetrics{capolicy.New(s.policy), s.metrics},
		Backdate: cfg.Issuer.Backdate.D(),
		Lint:     lint,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}

	var provs []acme.Provisioner
	for _, p := range cfg.Provisioners {
		v, err := ra.NewValidator(ra.ValidatorConfig{
			HTTPPort:    p.Validation.HTTP01Port,
			TLSALPNPort: p.Validation.TLSALPN01Port,
			Resolvers:   p.Validation.Resolvers,
			Timeout:     p.Validation.Timeout.D(),
		})
		if err != nil {
			return nil, fmt.Errorf("provisioner %q: %w", p.Name, err)
		}
		provs = append(provs, acme.Provisioner{
			Name:           p.Name,
			Validator:      validatorMetrics{v, s.metrics},
			Policy:         orderPolicyMetrics{s.policy.OrderPolicy(), s.metrics},
			RequireEAB:     p.RequireEAB,
			TermsOfService: p.TermsOfService,
			Website:        p.Website,
			CAAIdentities:  p.CAAIdentities,
		})
	}
	nonces, prune, err := newNonces(ctx, cfg, st, log)
	if err != nil {
		return nil, err
	}
	s.pruneNonces = prune
	s.acme, err = acme.NewServer(acme.Options{
		BaseURL:      cfg.BaseURL(),
		Provisioners: provs,
		Store:        mst,
		Authority:    authorityMetrics{s.ca, s.metrics},
		Nonces:       nonces,
		Binder:       &eab.Binder{Store: mst},
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}

	s.mux = http.NewServeMux()
	s.mux.Handle("/acme/", s.acme.Handler())
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /roots.pem", s.rootsPEM)
	s.mux.HandleFunc("GET /crl", s.crl)
	if adminCA != nil {
		served := map[string]bool{}
		for _, p := range cfg.Provisioners {
			served[p.Name] = true
		}
		svc := &admin.Service{Store: st, ConfigPath: cfg.File(), Served: served}
		s.mux.Handle(admin.Prefix+"/", admin.Handler(svc, adminCA, log))
	}
	if err := s.mountRAAPI(ctx, cfg, mst); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the node's HTTP handler (for tests that bring their own listener).
func (s *Server) Handler() http.Handler { return s.mux }

// TLSConfig is the listener's TLS configuration.
func (s *Server) TLSConfig() *tls.Config { return s.tlsCfg }

// Root is the CA's root certificate.
func (s *Server) Root() *x509.Certificate { return s.root }

// Store exposes the node's store (for operator commands and tests).
func (s *Server) Store() store.Store { return s.store }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]any{"status": "ok"}
	code := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		status["status"] = "unhealthy"
		status["store"] = "unreachable"
		code = http.StatusServiceUnavailable
		s.log.Error("health: store", "err", err)
	} else {
		status["store"] = "ok"
	}
	ph := s.policy.Health()
	status["policy_revision"] = ph.Revision
	if ph.LastErr != nil {
		// The last load failed; the revision above stays in force.
		status["policy_last_error"] = ph.LastErr.Error()
	}
	status["signer"] = "ok"
	if hc, ok := s.issuer.(interface{ Healthy() (bool, error) }); ok {
		if healthy, err := hc.Healthy(); !healthy {
			status["status"] = "unhealthy"
			status["signer"] = "unavailable"
			code = http.StatusServiceUnavailable
			s.log.Error("health: issuer signer", "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(status)
}

func (s *Server) rootsPEM(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: s.root.Raw})
}

func (s *Server) crl(w http.ResponseWriter, r *http.Request) {
	der, err := s.ca.CRL(r.Context())
	if err != nil {
		s.log.Error("crl", "err", err)
		http.Error(w, "CRL unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(der)
}

// Run serves on the configured address until ctx is done, then shuts down
// gracefully within the configured timeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves TLS on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           httpMetrics(s.metrics, s.mux),
		TLSConfig:         s.tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.httpSrv = srv
	s.mu.Unlock()

	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	s.acme.SweepStaleOrders(sweepCtx, staleAfter(s.cfg))
	if s.pruneNonces != nil {
		go s.pruneNonces(sweepCtx)
	}
	go s.policy.Watch(sweepCtx)

	if m := s.cfg.Metrics; m != nil {
		mln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen %s: %w", m.Listen, err)
		}
		// No write timeout: a CPU profile streams for as long as asked.
		msrv := &http.Server{Handler: s.metrics.Handler(m.Pprof), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 120 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		s.log.Info("serving metrics", "listen", mln.Addr().String(), "pprof", m.Pprof)
		if a, ok := mln.Addr().(*net.TCPAddr); ok && m.Pprof && !a.IP.IsLoopback() {
			s.log.Warn("pprof is served on a non-loopback address, without authentication: anyone who can reach it "+
				"can read the process's memory profile and stacks", "listen", mln.Addr().String())
		}
	}
	s.log.Info("serving", "listen", ln.Addr().String(), "base_url", s.cfg.BaseURL())
	err := httpserve.RunTLS(ctx, srv, ln, s.cfg.ShutdownTimeout.D(), func() {
		s.log.Info("shutting down")
		s.acme.Close()
	})
	return err
}

// Metrics returns the node's metrics (for tests and the metrics listener).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// keyBackend is the metrics label of a key URI's backend.
func keyBackend(uri string) string {
	if scheme, _, ok := strings.Cut(uri, ":"); ok && scheme == "pkcs11" {
		return "pkcs11"
	}
	return "soft"
}

// ReloadPolicy loads the policy bundle again (SIGHUP); on failure the
// bundle in force stays.
func (s *Server) ReloadPolicy(ctx context.Context) error { return s.policy.Reload(ctx) }

// Close releases the store and the keys (an HSM key holds its token's
// sessions until closed).
func (s *Server) Close() error {
	return errors.Join(s.store.Close(), s.closeKeys())
}

// keep remembers a key to close with the server.
func (s *Server) keep(k crypto.Signer) {
	if c, ok := k.(interface{ Close() error }); ok {
		s.keys = append(s.keys, c)
	}
}

// closeKeys closes the keys kept, once.
func (s *Server) closeKeys() error {
	var err error
	for _, k := range s.keys {
		err = errors.Join(err, k.Close())
	}
	s.keys = nil
	return err
}

// NewLogger builds the process logger from the configuration, writing to
// w (the commands give it os.Stderr through a logbuf.Writer, which keeps
// log writes off the request path).
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	lvl := slog.LevelInfo
	switch c.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
