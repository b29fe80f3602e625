package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
)

// AccountMode says how the generator uses ACME accounts.
type AccountMode string

const (
	// AccountsOne registers one account before the clock starts and shares
	// it between all workers: the load of one busy client (cert-manager
	// with many certificates), which contends on one account row.
	AccountsOne AccountMode = "one"
	// AccountsPerOrder registers a new account for every issuance and counts
	// the registration in its latency: the load of many small clients.
	AccountsPerOrder AccountMode = "per-order"
)

// Defaults of ACMEOptions.
const (
	DefaultIdentifier = "bench-{n}.localhost"
	DefaultTimeout    = 10 * time.Minute
	// The CA answers "processing" with Retry-After: 1 (or more); a client
	// honouring it would measure its own sleep. Polling every 5–20 ms
	// measures how fast the server validates instead.
	DefaultPollMin = 5 * time.Millisecond
	DefaultPollMax = 20 * time.Millisecond
	// requestTimeout bounds a single HTTP request, so one lost response
	// becomes a counted error rather than a worker stuck until the run's
	// time limit.
	requestTimeout = 30 * time.Second
	// maxListeners bounds how many distinct IP identifiers get their own
	// http-01 socket.
	maxListeners = 1024
	// maxNonceRetries is how often a request is resent after badNonce.
	maxNonceRetries = 5
)

// ACMEOptions configure an ACME load run.
type ACMEOptions struct {
	// DirectoryURL is the CA's ACME directory.
	DirectoryURL string
	// Roots verify the CA's TLS certificate and the issued chains; nil
	// means the system roots (chains are then checked for names only).
	Roots *x509.CertPool
	// N issuances in total, by Concurrency workers.
	N           int
	Concurrency int
	Accounts    AccountMode
	// Identifier is a Template ("bench-{n}.localhost" by default).
	Identifier string
	// HTTP01Port is where the generator answers http-01: the CA under test
	// must validate on this port.
	HTTP01Port int
	// HTTP01Host is the address to listen on. Empty means loopback
	// (127.0.0.1 and ::1) plus every IP identifier the template renders;
	// set "0.0.0.0" or "::" when the CA reaches the generator over a network.
	HTTP01Host string
	// EABKeyID and EABHMAC bind every new account (RFC 8555 §7.3.4).
	EABKeyID string
	EABHMAC  []byte
	// Timeout is a hard limit on the whole run: issuances not finished by
	// then are aborted and reported as such.
	Timeout time.Duration
	// PollMin and PollMax bound the authorization polling backoff.
	PollMin, PollMax time.Duration
	// ServerPID, if set, is the CA's process; its CPU time is read from
	// /proc before and after the run (Linux only).
	ServerPID int
}

// Steps of one issuance, in order; they name latencies and error rows.
const (
	StepAccount     = "account"
	StepOrder       = "order"
	StepAuthz       = "authz"
	StepChallenge   = "challenge"
	StepValidation  = "validation"
	StepFinalize    = "finalize"
	StepCertificate = "certificate"
)

var steps = []string{StepAccount, StepOrder, StepAuthz, StepChallenge, StepValidation, StepFinalize, StepCertificate}

// CPUUsage is CPU time spent by one process during a run.
type CPUUsage struct {
	User   time.Duration `json:"user_ns"`
	System time.Duration `json:"system_ns"`
	Total  time.Duration `json:"total_ns"`
	// PerOp is Total divided by the successful operations.
	PerOp time.Duration `json:"per_op_ns"`
}

// ACMEResult is the outcome of Run.
type ACMEResult struct {
	Directory   string      `json:"directory"`
	Accounts    AccountMode `json:"accounts"`
	Concurrency int         `json:"concurrency"`
	Requested   int         `json:"requested"`
	Succeeded   int         `json:"succeeded"`
	Failed      int         `json:"failed"`
	// Aborted issuances were in flight when the time limit hit; NotStarted
	// never began. Neither is an error of the server.
	Aborted    int           `json:"aborted"`
	NotStarted int           `json:"not_started"`
	TimedOut   bool          `json:"timed_out"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// Rate is successful issuances per second of wall time.
	Rate float64 `json:"issuances_per_second"`
	// Latency is over successful issuances, from the first request of the
	// issuance (newAccount in per-order mode, newOrder otherwise) to the
	// checked certificate.
	Latency Latency            `json:"latency"`
	Steps   map[string]Latency `json:"steps"`
	// Polls is the mean number of authorization fetches per issuance
	// while waiting for validation.
	Polls        float64      `json:"polls_per_issuance"`
	NonceRetries int64        `json:"nonce_retries"`
	Errors       []ErrorCount `json:"errors"`
	// Serials of the issued certificates (lower-case hex), in no order.
	Serials   []string  `json:"serials,omitempty"`
	ClientCPU CPUUsage  `json:"client_cpu"`
	ServerCPU *CPUUsage `json:"server_cpu,omitempty"`
}

// stepError is a failed issuance: where, and why.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// certError is an issued certificate that fails the generator's checks.
type certError struct{ msg string }

func (e *certError) Error() string { return e.msg }

type record struct {
	total  time.Duration
	steps  [7]time.Duration
	serial string
	polls  int
}

type generator struct {
	o         ACMEOptions
	tmpl      *Template
	transport *http.Transport
	resp      *responder
	shared    *acme.Client // AccountsOne
	nonceRetr atomic.Int64
	issuers   issuerCache
}

func (o *ACMEOptions) check() error {
	switch {
	case o.DirectoryURL == "":
		return errors.New("bench: no directory URL")
	case o.N < 1:
		return errors.New("bench: N must be at least 1")
	case o.Concurrency < 1:
		return errors.New("bench: concurrency must be at least 1")
	case o.HTTP01Port < 1 || o.HTTP01Port > 65535:
		return fmt.Errorf("bench: http-01 port %d out of range", o.HTTP01Port)
	case (o.EABKeyID == "") != (len(o.EABHMAC) == 0):
		return errors.New("bench: EAB needs both a key id and an HMAC key")
	}
	if o.Accounts == "" {
		o.Accounts = AccountsOne
	}
	if o.Accounts != AccountsOne && o.Accounts != AccountsPerOrder {
		return fmt.Errorf("bench: accounts mode %q: want %q or %q", o.Accounts, AccountsOne, AccountsPerOrder)
	}
	if o.EABKeyID != "" && o.Accounts == AccountsPerOrder {
		// An EAB key binds one account: every account after the first
		// would be refused.
		return fmt.Errorf("bench: an EAB key binds one account; use --accounts %s with --eab-kid", AccountsOne)
	}
	if o.Identifier == "" {
		o.Identifier = DefaultIdentifier
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollMin <= 0 {
		o.PollMin = DefaultPollMin
	}
	if o.PollMax < o.PollMin {
		o.PollMax = max(DefaultPollMax, o.PollMin)
	}
	return nil
}

// Run performs o.N issuances against the CA and reports. Failed
// issuances are counted in the result, not returned: Run returns an error
// only when the run cannot start (bad options, the responder's port is
// taken, the shared account cannot be registered).
func Run(ctx context.Context, o ACMEOptions) (*ACMEResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	tmpl, err := ParseTemplate(o.Identifier)
	if err != nil {
		return nil, err
	}
	g := &generator{o: o, tmpl: tmpl}
	addrs, optional, err := g.listenAddrs()
	if err != nil {
		return nil, err
	}
	if g.resp, err = listenResponder(addrs, optional); err != nil {
		return nil, err
	}
	defer g.resp.close()

	// One transport for every account: keep-alive connections sized for
	// the workers, so the run measures ACME, not TLS handshakes. HTTP/1.1
	// (no ForceAttemptHTTP2), as most ACME clients speak.
	g.transport = &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: o.Roots, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        2*o.Concurrency + 4,
		MaxIdleConnsPerHost: 2*o.Concurrency + 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	defer g.transport.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	if o.Accounts == AccountsOne {
		// Registered before the clock starts: it is setup, not load.
		if g.shared, err = g.newAccount(ctx); err != nil {
			return nil, fmt.Errorf("bench: registering the shared account: %w", err)
		}
	}
	return g.run(ctx), nil
}

// listenAddrs works out where the CA will connect for http-01.
func (g *generator) listenAddrs() ([]string, map[string]bool, error) {
	port := strconv.Itoa(g.o.HTTP01Port)
	if g.o.HTTP01Host != "" {
		return []string{net.JoinHostPort(g.o.HTTP01Host, port)}, nil, nil
	}
	v4 := net.JoinHostPort("127.0.0.1", port)
	v6 := net.JoinHostPort("::1", port)
	addrs := []string{v4}
	// Loopback names are tried on ::1 first; a socket there saves the CA a
	// refused connection per validation. Hosts without IPv6 just skip it.
	optional := map[string]bool{v6: true}
	seen := map[string]bool{v4: true}
	var hasDNS bool
	for n := range g.o.N {
		id := g.tmpl.identifier(n)
		if !id.ip.IsValid() {
			hasDNS = true
			continue
		}
		a := net.JoinHostPort(id.ip.String(), port)
		if seen[a] {
			continue
		}
		if len(seen) >= maxListeners {
			return nil, nil, fmt.Errorf("bench: identifier template renders more than %d distinct IP addresses", maxListeners)
		}
		seen[a] = true
		delete(optional, a)
		addrs = append(addrs, a)
		if !g.tmpl.HasPlaceholder() {
			break
		}
	}
	if hasDNS && !seen[v6] {
		addrs = append(addrs, v6)
	}
	return addrs, optional, nil
}

func (g *generator) client(key *ecdsa.PrivateKey) *acme.Client {
	return &acme.Client{
		Key:          key,
		DirectoryURL: g.o.DirectoryURL,
		HTTPClient:   &http.Client{Transport: g.transport, Timeout: requestTimeout},
		UserAgent:    "policyca-bench",
		RetryBackoff: g.retryBackoff,
	}
}

// retryBackoff resends after badNonce only (which the library reports with
// status 400), at once: every ACME client does that, and it is not a
// failure. 5xx and 429 are not retried, so they show in the histogram
// rather than as hidden latency.
func (g *generator) retryBackoff(n int, _ *http.Request, res *http.Response) time.Duration {
	if res == nil || res.StatusCode != http.StatusBadRequest || n > maxNonceRetries {
		return 0
	}
	g.nonceRetr.Add(1)
	return time.Millisecond
}

func (g *generator) newAccount(ctx context.Context) (*acme.Client, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := g.client(key)
	a := &acme.Account{}
	if g.o.EABKeyID != "" {
		a.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: g.o.EABKeyID, Key: g.o.EABHMAC}
	}
	if _, err := c.Register(ctx, a, acme.AcceptTOS); err != nil {
		return nil, err
	}
	return c, nil
}

func (g *generator) run(ctx context.Context) *ACMEResult {
	o := g.o
	res := &ACMEResult{Directory: o.DirectoryURL, Accounts: o.Accounts, Concurrency: o.Concurrency, Requested: o.N}

	var serverU0, serverS0 time.Duration
	serverOK := false
	if o.ServerPID > 0 {
		var err error
		serverU0, serverS0, err = ProcessCPU(o.ServerPID)
		serverOK = err == nil
	}
	u0, s0 := processCPU()
	start := time.Now()

	var (
		next    atomic.Int64
		mu      sync.Mutex
		records []record
		hist    histogram
		wg      sync.WaitGroup
	)
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if ctx.Err() != nil {
					return
				}
				i := int(next.Add(1)) - 1
				if i >= o.N {
					return
				}
				rec, err := g.issue(ctx, i)
				mu.Lock()
				switch {
				case err == nil:
					records = append(records, rec)
				case ctx.Err() != nil:
					res.Aborted++
				default:
					res.Failed++
					var se *stepError
					step := "unknown"
					if errors.As(err, &se) {
						step = se.step
					}
					hist.add(step, classify(err), err.Error())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	res.Elapsed = time.Since(start)
	u1, s1 := processCPU()
	res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	res.Succeeded = len(records)
	res.NotStarted = o.N - res.Succeeded - res.Failed - res.Aborted
	if res.Elapsed > 0 {
		res.Rate = float64(res.Succeeded) / res.Elapsed.Seconds()
	}
	res.Errors = hist.rows()
	res.NonceRetries = g.nonceRetr.Load()
	res.ClientCPU = cpuUsage(u1-u0, s1-s0, res.Succeeded)
	if serverOK {
		if u, s, err := ProcessCPU(o.ServerPID); err == nil {
			c := cpuUsage(u-serverU0, s-serverS0, res.Succeeded)
			res.ServerCPU = &c
		}
	}

	totals := make([]time.Duration, 0, len(records))
	per := make([][]time.Duration, len(steps))
	polls := 0
	for _, r := range records {
		totals = append(totals, r.total)
		for j, d := range r.steps {
			if d > 0 {
				per[j] = append(per[j], d)
			}
		}
		polls += r.polls
		res.Serials = append(res.Serials, r.serial)
	}
	res.Latency = summarize(totals)
	res.Steps = map[string]Latency{}
	for j, name := range steps {
		if len(per[j]) > 0 {
			res.Steps[name] = summarize(per[j])
		}
	}
	if len(records) > 0 {
		res.Polls = float64(polls) / float64(len(records))
	}
	return res
}

func cpuUsage(user, sys time.Duration, ops int) CPUUsage {
	c := CPUUsage{User: user, System: sys, Total: user + sys}
	if ops > 0 {
		c.PerOp = c.Total / time.Duration(ops)
	}
	return c
}

// issue runs one complete issuance for identifier number n.
func (g *generator) issue(ctx context.Context, n int) (record, error) {
	var rec record
	id := g.tmpl.identifier(n)
	start := time.Now()
	mark := start
	lap := func(step int) {
		now := time.Now()
		rec.steps[step] = now.Sub(mark)
		mark = now
	}
	fail := func(step string, err error) (record, error) {
		return rec, &stepError{step: step, err: err}
	}

	c := g.shared
	if c == nil {
		var err error
		if c, err = g.newAccount(ctx); err != nil {
			return fail(StepAccount, err)
		}
		lap(0)
	}

	ids := acme.DomainIDs(id.value)
	if id.ip.IsValid() {
		ids = acme.IPIDs(id.value)
	}
	order, err := c.AuthorizeOrder(ctx, ids)
	if err != nil {
		return fail(StepOrder, err)
	}
	lap(1)

	for _, u := range order.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return fail(StepAuthz, err)
		}
		lap(2)
		if z.Status == acme.StatusValid {
			// Reused authorization: nothing to prove.
			continue
		}
		var ch *acme.Challenge
		for _, x := range z.Challenges {
			if x.Type == "http-01" {
				ch = x
			}
		}
		if ch == nil {
			return fail(StepAuthz, errors.New("no http-01 challenge offered"))
		}
		ka, err := c.HTTP01ChallengeResponse(ch.Token)
		if err != nil {
			return fail(StepChallenge, err)
		}
		g.resp.set(ch.Token, ka)
		_, err = c.Accept(ctx, ch)
		if err != nil {
			g.resp.del(ch.Token)
			return fail(StepChallenge, err)
		}
		lap(3)
		polls, err := g.pollAuthz(ctx, c, u)
		g.resp.del(ch.Token)
		rec.polls += polls
		if err != nil {
			return fail(StepValidation, err)
		}
		lap(4)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(StepFinalize, err)
	}
	tmpl := &x509.CertificateRequest{}
	if id.ip.IsValid() {
		tmpl.IPAddresses = []net.IP{id.ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{id.value}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fail(StepFinalize, err)
	}
	ders, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return fail(StepFinalize, err)
	}
	lap(5)
	serial, err := g.checkCert(ders, id, key)
	if err != nil {
		return fail(StepCertificate, err)
	}
	lap(6)
	rec.serial = serial
	rec.total = time.Since(start)
	return rec, nil
}

// pollAuthz fetches the authorization until it is final, with a short
// backoff (see DefaultPollMin). It returns how many fetches it took.
func (g *generator) pollAuthz(ctx context.Context, c *acme.Client, u string) (int, error) {
	wait := g.o.PollMin
	for polls := 1; ; polls++ {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return polls, err
		}
		switch z.Status {
		case acme.StatusValid:
			return polls, nil
		case acme.StatusInvalid, acme.StatusDeactivated, acme.StatusExpired, acme.StatusRevoked:
			ae := &acme.AuthorizationError{URI: u, Identifier: z.Identifier.Value}
			for _, ch := range z.Challenges {
				if ch.Error != nil {
					ae.Errors = append(ae.Errors, ch.Error)
				}
			}
			if len(ae.Errors) == 0 {
				ae.Errors = append(ae.Errors, fmt.Errorf("authorization is %s", z.Status))
			}
			return polls, ae
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return polls, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, g.o.PollMax)
	}
}

// checkCert parses the chain, checks that the leaf names the identifier
// and carries the CSR's key, and verifies it to the roots when given.
func (g *generator) checkCert(ders [][]byte, id identifier, key *ecdsa.PrivateKey) (string, error) {
	if len(ders) == 0 {
		return "", &certError{"empty certificate chain"}
	}
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return "", &certError{fmt.Sprintf("certificate %d does not parse: %v", i, err)}
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	if !namesIdentifier(leaf, id) {
		return "", &certError{fmt.Sprintf("certificate names %v %v, want %s", leaf.DNSNames, leaf.IPAddresses, id.value)}
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return "", &certError{"certificate key is not the CSR's key"}
	}
	if g.o.Roots != nil {
		anchors, err := g.issuers.verified(certs[1:], g.o.Roots)
		if err != nil {
			return "", &certError{fmt.Sprintf("certificate does not verify: %v", err)}
		}
		opts := x509.VerifyOptions{Roots: anchors, DNSName: id.value,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			return "", &certError{fmt.Sprintf("certificate does not verify: %v", err)}
		}
	}
	return leaf.SerialNumber.Text(16), nil
}

// issuerCache remembers the issuing certificates already verified to the
// roots, so that each issuance verifies its leaf against them (one
// signature) instead of rebuilding the whole chain: a CA sends the same
// intermediate with every certificate, and the generator's own CPU is
// part of what the benchmark shares out.
type issuerCache struct {
	mu sync.Mutex
	m  map[string]*x509.CertPool // key: the DER of the certificates after the leaf
}

// verified returns a pool of the chain's issuing certificates once the
// first of them is known to chain to roots (through the others) for
// server authentication; the leaf is then verified with that pool as its
// roots. A chain with no certificate after the leaf gets the roots.
func (c *issuerCache) verified(chain []*x509.Certificate, roots *x509.CertPool) (*x509.CertPool, error) {
	if len(chain) == 0 {
		return roots, nil
	}
	var key strings.Builder
	for _, x := range chain {
		key.Write(x.Raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[key.String()]; ok {
		return p, nil
	}
	inter := x509.NewCertPool()
	for _, x := range chain[1:] {
		inter.AddCert(x)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := chain[0].Verify(opts); err != nil {
		return nil, fmt.Errorf("issuing certificate: %w", err)
	}
	p := x509.NewCertPool()
	p.AddCert(chain[0])
	if c.m == nil {
		c.m = make(map[string]*x509.CertPool)
	}
	c.m[key.String()] = p
	return p, nil
}

func namesIdentifier(c *x509.Certificate, id identifier) bool {
	if id.ip.IsValid() {
		for _, ip := range c.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == id.ip {
				return true
			}
		}
		return false
	}
	for _, n := range c.DNSNames {
		if n == id.value {
			return true
		}
	}
	return false
}
