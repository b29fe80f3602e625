package ra

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/policyca/policyca/acme"
	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/httpserve"
	"github.com/policyca/policyca/internal/tick"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/signer"
	"github.com/policyca/policyca/store/sqlite"
)

// Node is a running `policyca ra`: the same ACME front end as the CA, with
// its own store, validators and order-time policy, relaying to the CA.
type Node struct {
	cfg      *Config
	log      *slog.Logger
	store    *sqlite.Store
	client   *Client
	policy   *policy.Engine
	acme     *acme.Server
	root     *x509.Certificate
	key      crypto.Signer // client key
	listener atomic.Pointer[tls.Certificate]
	mux      *http.ServeMux
}

// renewAt is the part of a certificate's lifetime after which it is renewed.
const renewAt = 2.0 / 3

// NewNode loads the RA's state. The CA need not be reachable: with the
// cached bundle, issuer and configuration the RA serves its directory,
// accounts and orders, and finalize fails with a retryable error until the
// CA is back.
func NewNode(ctx context.Context, cfg *Config, log *slog.Logger) (n *Node, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n = &Node{cfg: cfg, log: log.With("ra", cfg.Name)}
	roots, err := pki.ReadPEMCerts(cfg.Path(cfg.CARoot))
	if err != nil {
		return nil, fmt.Errorf("ca_root: %w", err)
	}
	n.root = roots[0]
	chain, err := pki.ReadPEMCerts(cfg.Path(cfg.ClientCert))
	if err != nil {
		return nil, fmt.Errorf("client_cert: %w", err)
	}
	if n.key, err = signer.Open(ctx, cfg.KeyURI(cfg.ClientKey)); err != nil {
		return nil, fmt.Errorf("client_key: %w", err)
	}
	if err := n.loadListener(ctx); err != nil {
		return nil, err
	}
	var issuer *x509.Certificate
	if c, err := pki.ReadPEMCerts(cfg.Path(cfg.Issuer)); err == nil {
		issuer = c[0]
	}
	st, err := sqlite.Open(ctx, cfg.Path(cfg.Database))
	if err != nil {
		return nil, err
	}
	n.store = st
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	n.client, err = NewClient(ClientOptions{CAURL: cfg.CAURL, Root: n.root, Cert: tlsCert(chain, n.key), Store: st,
		Issuer: issuer, Logger: n.log})
	if err != nil {
		return nil, err
	}
	n.refresh(ctx)
	if _, err := os.Stat(cfg.Path(cfg.PolicyBundle)); err != nil {
		return nil, fmt.Errorf("no policy bundle (the CA was never reached?): %w", err)
	}
	keys := map[string]policy.VerificationKey{}
	for id, k := range cfg.VerificationKeys {
		b, err := os.ReadFile(cfg.Path(k.Key))
		if err != nil {
			return nil, fmt.Errorf("verification_keys.%s: %w", id, err)
		}
		keys[id] = policy.VerificationKey{PEM: string(b), Alg: k.Alg}
	}
	n.policy, err = policy.NewEngine(policy.EngineConfig{
		Path: cfg.Path(cfg.PolicyBundle), VerificationKeys: keys, PollInterval: 2 * time.Second,
		Sink: decisionSink{st: st, ra: cfg.Name}, Accounts: n.client, Node: "ra/" + cfg.Name, Logger: n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	v, err := NewValidator(ValidatorConfig{
		HTTPPort: cfg.Validation.HTTP01Port, TLSALPNPort: cfg.Validation.TLSALPN01Port,
		Resolvers: cfg.Validation.Resolvers, Timeout: cfg.Validation.Timeout.D(),
	})
	if err != nil {
		return nil, err
	}
	var provs []acme.Provisioner
	for _, p := range cfg.Provisioners {
		provs = append(provs, acme.Provisioner{
			Name: p.Name, Validator: v, Policy: n.policy.OrderPolicy(), RequireEAB: p.RequireEAB,
			TermsOfService: p.TermsOfService, Website: p.Website, CAAIdentities: p.CAAIdentities,
		})
	}
	nonces, err := nonce.NewMemory(1 << 16)
	if err != nil {
		return nil, err
	}
	n.acme, err = acme.NewServer(acme.Options{
		BaseURL: cfg.BaseURL(), Provisioners: provs, Store: st, Authority: n.client, Nonces: nonces,
		Binder: n.client, Logger: n.log,
	})
	if err != nil {
		return nil, err
	}
	n.mux = http.NewServeMux()
	n.mux.Handle("/acme/", n.acme.Handler())
	n.mux.HandleFunc("GET /healthz", n.healthz)
	n.mux.HandleFunc("GET /roots.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: n.root.Raw})
	})
	return n, nil
}

// refresh asks the CA (briefly) for its issuer, this RA's provisioners and
// the policy bundle; whatever fails keeps the cached value.
func (n *Node) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if iss, err := n.client.FetchIssuer(ctx); err == nil {
		pki.WritePEMCert(n.cfg.Path(n.cfg.Issuer), iss)
	} else {
		n.log.Warn("CA unreachable at start: using the cached issuer", "err", err)
		return
	}
	if info, err := n.client.Config(ctx); err == nil && len(info.Provisioners) > 0 {
		n.cfg.Provisioners = info.Provisioners
	}
	if _, err := syncBundle(ctx, n.client, n.cfg.Path(n.cfg.PolicyBundle)); err != nil {
		n.log.Warn("cannot fetch the policy bundle: keeping the cached one", "err", err)
	}
}

func (n *Node) loadListener(ctx context.Context) error {
	chain, err := pki.ReadPEMCerts(n.cfg.Path(n.cfg.ListenerCert))
	if err != nil {
		return fmt.Errorf("listener_cert: %w", err)
	}
	key, err := signer.Open(ctx, n.cfg.KeyURI(n.cfg.ListenerKey))
	if err != nil {
		return fmt.Errorf("listener_key: %w", err)
	}
	tc := tlsCert(chain, key)
	n.listener.Store(&tc)
	return nil
}

// Handler is the RA's HTTP handler (tests bring their own listener).
func (n *Node) Handler() http.Handler { return n.mux }

// Client is the RA's CA client.
func (n *Node) Client() *Client { return n.client }

// Store is the RA's own store.
func (n *Node) Store() *sqlite.Store { return n.store }

// TLSConfig serves the current listener certificate (renewed in place).
func (n *Node) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return n.listener.Load(), nil
	}}
}

func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	ph := n.policy.Health()
	w.Header().Set("Content-Type", "application/json")
	status := "ok"
	if ph.LastErr != nil {
		status = "degraded"
	}
	fmt.Fprintf(w, "{\"status\":%q,\"ra\":%q,\"policy_revision\":%q}\n", status, n.cfg.Name, ph.Revision)
}

// Run serves on the configured address until ctx is done.
func (n *Node) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return err
	}
	return n.Serve(ctx, ln)
}

// Serve serves TLS on ln until ctx is done, renewing certificates and
// following the CA's policy bundle in the background.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: n.mux, TLSConfig: n.TLSConfig(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	n.acme.SweepStaleOrders(bg, 5*time.Minute)
	go n.policy.Watch(bg)
	go n.loop(bg)
	n.log.Info("RA serving", "listen", ln.Addr().String(), "base_url", n.cfg.BaseURL(), "ca", n.cfg.CAURL)
	return httpserve.RunTLS(ctx, srv, ln, 15*time.Second, n.acme.Close)
}

// loop fetches the bundle every poll interval and renews certificates
// when they reach two thirds of their lifetime.
func (n *Node) loop(ctx context.Context) {
	tick.Every(ctx, n.cfg.pollInterval(), n.housekeep)
}

// housekeep is one turn of loop.
func (n *Node) housekeep(ctx context.Context) {
	if _, err := syncBundle(ctx, n.client, n.cfg.Path(n.cfg.PolicyBundle)); err != nil && ctx.Err() == nil {
		n.log.Warn("cannot fetch the policy bundle: keeping the last good one", "err", err)
	}
	if err := n.RenewIfDue(ctx, time.Now()); err != nil && ctx.Err() == nil {
		n.log.Warn("certificate renewal failed; will retry", "err", err)
	}
	if _, err := n.acme.RecoverStaleOrders(ctx, 5*time.Minute); err != nil && ctx.Err() == nil {
		n.log.Error("recovering stale orders", "err", err)
	}
}

func due(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.After(c.NotBefore.Add(time.Duration(float64(life) * renewAt)))
}

// RenewIfDue renews the client and listener certificates that reached two
// thirds of their lifetime (as of now).
func (n *Node) RenewIfDue(ctx context.Context, now time.Time) error {
	var errs []error
	if cur := n.client.cert.Load(); cur != nil && due(cur.Leaf, now) {
		errs = append(errs, n.renewClient(ctx))
	}
	if cur := n.listener.Load(); cur != nil && due(cur.Leaf, now) {
		if err := renewListener(ctx, n.client, n.cfg, n.listener.Load().PrivateKey.(crypto.Signer)); err != nil {
			errs = append(errs, fmt.Errorf("listener certificate: %w", err))
		} else {
			errs = append(errs, n.loadListener(ctx))
			n.log.Info("listener certificate renewed")
		}
	}
	return errors.Join(errs...)
}

// renewClient gets a new client certificate for the same key (a PKCS#11
// key never leaves its token) and uses it for new connections.
func (n *Node) renewClient(ctx context.Context) error {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, n.key)
	if err != nil {
		return err
	}
	resp, err := n.client.Renew(ctx, csr)
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	chain, err := pki.ParsePEMCerts(resp.ChainPEM)
	if err != nil {
		return err
	}
	if err := pki.WritePEMCert(n.cfg.Path(n.cfg.ClientCert), chain...); err != nil {
		return err
	}
	n.client.SetCertificate(tlsCert(chain, n.key))
	n.client.CloseIdle()
	n.log.Info("client certificate renewed", "not_after", chain[0].NotAfter)
	return nil
}

// Close releases the store.
func (n *Node) Close() error { return n.store.Close() }

// decisionSink keeps the RA's order-time decisions in its own store.
type decisionSink struct {
	st *sqlite.Store
	ra string
}

func (d decisionSink) RecordDecision(ctx context.Context, r policy.DecisionRecord) error {
	rec := r.Core()
	rec.RA = d.ra
	return d.st.RecordDecisions(ctx, []*core.DecisionRecord{rec})
}
