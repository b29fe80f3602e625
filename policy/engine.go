package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/policyca/policyca/core"
)

// EngineConfig configures an Engine. Exactly one of Path and URL is set.
type EngineConfig struct {
	// Path is a bundle directory or .tar.gz file.
	Path string
	// URL serves a bundle .tar.gz over HTTP(S); it is polled with ETags.
	URL string
	// HTTPClient fetches URL (nil = a client with a 30s timeout).
	HTTPClient *http.Client
	// VerificationKeys, when not empty, make signatures mandatory: an
	// unsigned bundle, or one whose files do not match its signature, is
	// refused. Keyed by key id (the "kid" of the signature).
	VerificationKeys map[string]VerificationKey
	// PollInterval is how often Watch looks for a changed bundle
	// (0 = 10s).
	PollInterval time.Duration
	// EvalTimeout bounds one evaluation (0 = 2s); a timeout denies.
	EvalTimeout time.Duration
	// MaxBundleBytes bounds bundle files and downloads
	// (0 = DefaultMaxBundleBytes).
	MaxBundleBytes int64
	// Sink receives every decision (nil = no decision log).
	Sink DecisionSink
	// Accounts looks up EAB and account policy for the adapters (nil = no
	// EAB information and no account layer).
	Accounts AccountInfo
	// Node names this process in decision records.
	Node string
	// OnLoad is called after every load attempt (err nil on success),
	// e.g. to count failures in metrics; nameRulesInGo says whether the
	// loaded bundle's name rules run in Go (NameRulesInGo).
	OnLoad func(revision string, nameRulesInGo bool, err error)
	// OnDecision is called after every decision.
	OnDecision func(d Decision, err error)
	Logger     *slog.Logger
	// Now is the clock (nil = time.Now).
	Now func() time.Time
}

// Engine evaluates the current bundle and replaces it when a new one loads.
// A bundle that fails to load, verify, compile or pass the smoke
// evaluation never replaces a working one. It is safe for concurrent use.
type Engine struct {
	src         source
	url         string
	client      *http.Client
	vc          *bundle.VerificationConfig
	maxBytes    int64
	poll        time.Duration
	evalTimeout time.Duration
	sink        DecisionSink
	accounts    AccountInfo
	node        string
	onLoad      func(string, bool, error)
	onDecision  func(Decision, error)
	log         *slog.Logger
	now         func() time.Time

	cur      atomic.Pointer[compiled]
	policies policyCache
	failures atomic.Uint64

	// reloadMu serialises loads so that two reloads cannot race to
	// install an older bundle over a newer one.
	reloadMu sync.Mutex
	etag     string // of the loaded URL bundle
	seen     string // fingerprint of the last Path content tried

	healthMu sync.Mutex
	lastErr  error
	lastLoad time.Time
}

// NewEngine loads the bundle and returns an engine, or the load error (with
// file and line for compile errors).
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if (cfg.Path == "") == (cfg.URL == "") {
		return nil, errors.New("policy: exactly one of Path and URL must be set")
	}
	vc, err := verificationConfig(cfg.VerificationKeys)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	e := &Engine{
		src: source{name: cfg.Path}, url: cfg.URL, client: cfg.HTTPClient, vc: vc,
		maxBytes: cfg.MaxBundleBytes, poll: cfg.PollInterval, evalTimeout: cfg.EvalTimeout,
		sink: cfg.Sink, accounts: cfg.Accounts, node: cfg.Node, onLoad: cfg.OnLoad,
		onDecision: cfg.OnDecision, log: cfg.Logger, now: cfg.Now,
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: 30 * time.Second}
	}
	// A bundle is fetched over https only, redirects included: one
	// followed to http would let anyone on that path supply the policy of
	// a CA whose bundles are not signed.
	client := *e.client
	next := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("policy: bundle URL redirected to %s, which is not https", shownURL(req.URL.String()))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("policy: stopped after 10 redirects")
		}
		return nil
	}
	e.client = &client
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultMaxBundleBytes
	}
	if e.poll <= 0 {
		e.poll = 10 * time.Second
	}
	if e.evalTimeout <= 0 {
		e.evalTimeout = 2 * time.Second
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if err := e.Reload(context.Background()); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload loads the bundle again. On any failure the current bundle stays in
// force, the failure is logged and counted, and the error is returned. An
// unchanged URL bundle (HTTP 304) is not a failure.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	c, etag, err := e.load(ctx)
	if errors.Is(err, errNotModified) {
		// The bundle in force is still the one published: whatever failed
		// before (the server, the network) is over.
		e.healthMu.Lock()
		e.lastErr = nil
		e.healthMu.Unlock()
		return nil
	}
	rev, inGo := "", false
	if c != nil {
		rev, inGo = c.revision, c.fast != nil
	}
	if e.onLoad != nil {
		e.onLoad(rev, inGo, err)
	}
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	if err != nil {
		e.failures.Add(1)
		e.lastErr = err
		kept := ""
		if old := e.cur.Load(); old != nil {
			kept = old.revision
		}
		e.log.ErrorContext(ctx, "policy bundle refused; keeping the last good one", "source", e.sourceName(),
			"kept_revision", kept, "err", err)
		return err
	}
	e.cur.Store(c)
	e.etag = etag
	e.lastErr = nil
	e.lastLoad = e.now()
	// name_rules says whether the default name rules run in Go (names.go)
	// or, for a bundle that changes them, in Rego.
	nameRules := "rego"
	if c.fast != nil {
		nameRules = "go"
	}
	e.log.InfoContext(ctx, "policy bundle loaded", "source", e.sourceName(), "revision", c.revision, "name_rules", nameRules,
		"rules_in_go", strings.Join(c.goRules, ","))
	return nil
}

func (e *Engine) sourceName() string {
	if e.url != "" {
		return shownURL(e.url)
	}
	return e.src.name
}

// shownURL is the bundle URL as logs, errors and /healthz show it: without
// the password of its user info and without its query, where a private
// bundle server's credentials are usually given.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the bundle URL"
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.Redacted()
}

// load reads, verifies, compiles and smoke-tests the bundle.
func (e *Engine) load(ctx context.Context) (*compiled, string, error) {
	src, etag := e.src, ""
	if e.url != "" {
		data, tag, err := e.fetch(ctx)
		if err != nil {
			return nil, "", err
		}
		src, etag = source{name: shownURL(e.url), data: data}, tag
	} else if fp, err := fingerprint(e.src.name, e.maxBytes); err == nil {
		// Remember what was tried, so that Watch does not retry a broken
		// bundle on every tick.
		e.seen = fp
	}
	b, raw, err := readBundleRaw(src, e.vc, e.maxBytes)
	if err != nil {
		return nil, "", err
	}
	c, err := compile(ctx, src.name, b)
	if err != nil {
		return nil, "", err
	}
	if err := c.smoke(ctx); err != nil {
		return nil, "", fmt.Errorf("bundle %s (revision %q): smoke test: %w", src.name, c.revision, err)
	}
	c.raw = raw
	return c, etag, nil
}

// FetchedBundle returns the bundle in force as a .tar.gz, exactly as it was
// read, verified and compiled (as fetched from the URL, the file, or a
// snapshot of the directory), signatures included; nil when none is
// loaded.
func (e *Engine) FetchedBundle() []byte {
	if c := e.cur.Load(); c != nil {
		return c.raw
	}
	return nil
}

// smokeInput is a fixed, plausible request; a bundle must produce a
// well-formed decision for it (allow or deny) before it may replace the
// current one. This catches a policy that is undefined or malformed for
// ordinary requests, which would otherwise deny everything in production.
func smokeInput() Input {
	return Input{
		Stage:       StageSign,
		Provisioner: ProvisionerInfo{Name: "acme", Type: "acme"},
		Account:     AccountInput{ID: "smoke-test"},
		Identifiers: []core.Identifier{{Type: core.DNS, Value: "smoke-test.policyca.internal"}},
		CSR: &CSRInfo{
			Subject: Subject{CommonName: "smoke-test.policyca.internal"},
			SANs:    SANs{DNS: []string{"smoke-test.policyca.internal"}},
			Key:     KeyInfo{Type: "ecdsa", Curve: "P-256"},
		},
		Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (c *compiled) smoke(ctx context.Context) error {
	in := smokeInput()
	v, err := in.value(in.Time, &policyCache{})
	if err != nil {
		return err
	}
	// Both queries must work (names.go): a bundle that breaks either is
	// refused.
	for _, pq := range []*rego.PreparedEvalQuery{&c.pq, c.fast} {
		if pq == nil {
			continue
		}
		if _, err := c.eval(ctx, pq, v, in.Time, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// Revision is the current bundle's revision.
func (e *Engine) Revision() string {
	if c := e.cur.Load(); c != nil {
		return c.revision
	}
	return ""
}

// NameRulesInGo reports whether the bundle in force has the default name
// rules, which the engine then evaluates in Go (names.go).
func (e *Engine) NameRulesInGo() bool {
	c := e.cur.Load()
	return c != nil && c.fast != nil
}

// Health is the state of an Engine's bundle.
type Health struct {
	// Revision is the bundle revision in force.
	Revision string
	// LastErr is the error of the last load attempt, nil if it succeeded.
	LastErr error
	// LastLoad is the time of the last successful load.
	LastLoad time.Time
}

// Health reports the revision in force and how the last load went.
func (e *Engine) Health() Health {
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	return Health{Revision: e.Revision(), LastErr: e.lastErr, LastLoad: e.lastLoad}
}

// LoadFailures counts refused bundles since the engine started.
func (e *Engine) LoadFailures() uint64 { return e.failures.Load() }
