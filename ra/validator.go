package ra

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/policyca/policyca/core"
)

// Dialer opens the TCP connections used by http-01 and tls-alpn-01. It is
// injectable so that tests, and RAs with unusual routing, can control how
// validation targets are reached. *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Resolver answers the DNS questions asked during validation. Errors should
// be *core.Error of kind dns; anything else is reported as a dns error too.
type Resolver interface {
	// LookupIP returns the addresses of host, IPv6 first, then IPv4, in the
	// order they are to be tried.
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
	// LookupTXT returns the TXT records at name, following CNAMEs. The
	// strings of one record are concatenated.
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// ValidatorConfig configures a Validator. Zero values mean the defaults.
type ValidatorConfig struct {
	// HTTPPort is where http-01 is fetched (default 80).
	HTTPPort int
	// TLSALPNPort is where tls-alpn-01 connects (default 443). It is also
	// the port an http-01 redirect may name for https, besides 443.
	TLSALPNPort int
	// Resolvers are "host:port" DNS servers queried directly, so that an
	// RA sees its own network's DNS. Empty means the system resolver.
	Resolvers []string
	// Timeout bounds one validation (default 10s).
	Timeout time.Duration
	// Dialer defaults to a *net.Dialer.
	Dialer Dialer
	// Resolver defaults to one built from Resolvers.
	Resolver Resolver
}

// Defaults of ValidatorConfig.
const (
	DefaultHTTPPort    = 80
	DefaultTLSALPNPort = 443
	DefaultTimeout     = 10 * time.Second
)

// Validator checks ACME challenges (http-01, dns-01, tls-alpn-01). It is
// safe for concurrent use. Every validation, and every redirect hop of an
// http-01 validation, resolves its target afresh and opens its own
// connection: no connection is kept alive between requests (see
// NewValidator).
type Validator struct {
	httpPort    int
	tlsALPNPort int
	timeout     time.Duration
	dialer      Dialer
	resolver    Resolver
	client      *http.Client
}

// NewValidator checks cfg and builds a Validator.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	v := &Validator{
		httpPort:    cfg.HTTPPort,
		tlsALPNPort: cfg.TLSALPNPort,
		timeout:     cfg.Timeout,
		dialer:      cfg.Dialer,
		resolver:    cfg.Resolver,
	}
	if v.httpPort == 0 {
		v.httpPort = DefaultHTTPPort
	}
	if v.tlsALPNPort == 0 {
		v.tlsALPNPort = DefaultTLSALPNPort
	}
	if v.httpPort < 0 || v.httpPort > 65535 {
		return nil, fmt.Errorf("ValidatorConfig.HTTPPort: %d is not a TCP port", cfg.HTTPPort)
	}
	if v.tlsALPNPort < 0 || v.tlsALPNPort > 65535 {
		return nil, fmt.Errorf("ValidatorConfig.TLSALPNPort: %d is not a TCP port", cfg.TLSALPNPort)
	}
	if v.timeout < 0 {
		return nil, fmt.Errorf("ValidatorConfig.Timeout: %s is negative", cfg.Timeout)
	}
	if v.timeout == 0 {
		v.timeout = DefaultTimeout
	}
	if v.dialer == nil {
		v.dialer = &net.Dialer{KeepAlive: 30 * time.Second}
	}
	if v.resolver == nil {
		if len(cfg.Resolvers) == 0 {
			v.resolver = systemResolver{r: net.DefaultResolver}
		} else {
			r, err := NewDNSResolver(cfg.Resolvers)
			if err != nil {
				return nil, fmt.Errorf("ValidatorConfig.Resolvers: %w", err)
			}
			v.resolver = r
		}
	}
	transport := &http.Transport{
		// Never a proxy from the environment: the validation must reach the
		// target itself, from this network.
		Proxy:       nil,
		DialContext: v.dialContext,
		// No keep-alive. RFC 8555 §8.3 has the server resolve the
		// identifier and fetch from it each time; http.Transport pools idle
		// connections by host:port, so a pooled connection would let a name
		// that now points elsewhere be answered by the host it used to point
		// to, without a DNS lookup. Fresh resolution beats connection reuse:
		// every request (redirect hops included, http and https alike) dials
		// through dialContext, which resolves the name again.
		DisableKeepAlives: true,
		// RFC 8555 §8.3 and Let's Encrypt practice: an https redirect target
		// is not authenticated; the client may not have a certificate yet,
		// and control is shown by the response body alone.
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // see above
		TLSHandshakeTimeout:    v.timeout,
		ResponseHeaderTimeout:  v.timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
	}
	v.client = &http.Client{
		Transport:     transport,
		CheckRedirect: v.checkRedirect,
	}
	return v, nil
}

// Validate checks one challenge. It returns nil when the challenge is
// fulfilled, or a *core.Error of kind malformed (an input the validator
// cannot check), connection, dns, tls, incorrectResponse or unauthorized.
// The error carries the identifier.
func (v *Validator) Validate(ctx context.Context, in core.ChallengeInput) error {
	if err := checkInput(in); err != nil {
		return withIdentifier(err, in.Identifier)
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	var err error
	switch in.Type {
	case core.ChallengeHTTP01:
		err = v.validateHTTP01(ctx, in)
	case core.ChallengeDNS01:
		err = v.validateDNS01(ctx, in)
	case core.ChallengeTLSALPN01:
		err = v.validateTLSALPN01(ctx, in)
	default:
		err = core.Errorf(core.KindMalformed, "unsupported challenge type %q", in.Type)
	}
	return withIdentifier(err, in.Identifier)
}

// checkInput refuses inputs that are not safe to put on the wire: the token
// becomes a URL path segment and the identifier a host name.
func checkInput(in core.ChallengeInput) error {
	if in.Token == "" || strings.TrimLeft(in.Token, base64URLAlphabet) != "" {
		return core.Errorf(core.KindMalformed, "challenge token %q is not base64url", in.Token)
	}
	if !strings.HasPrefix(in.KeyAuthorization, in.Token+".") {
		return core.Errorf(core.KindMalformed, "key authorization does not start with the token")
	}
	switch in.Identifier.Type {
	case core.DNS:
		name := strings.TrimPrefix(in.Identifier.Value, "*.")
		if name == "" || strings.ContainsAny(name, "/:[]@ \t\r\n*") {
			return core.Errorf(core.KindMalformed, "invalid DNS identifier %q", in.Identifier.Value)
		}
	case core.IP:
		if _, err := netip.ParseAddr(in.Identifier.Value); err != nil {
			return core.Errorf(core.KindMalformed, "invalid IP identifier %q", in.Identifier.Value)
		}
	default:
		return core.Errorf(core.KindMalformed, "unsupported identifier type %q", in.Identifier.Type)
	}
	return nil
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func withIdentifier(err error, id core.Identifier) error {
	if err == nil {
		return nil
	}
	e := core.AsError(err)
	if e.Identifier == nil {
		idc := id
		e.Identifier = &idc
	}
	return e
}

// targetAddrs returns the addresses to try for a host name or IP literal.
func (v *Validator) targetAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	if isLocalhostName(host) {
		// RFC 6761 §6.3: localhost names always mean the loopback
		// interface and are never sent to DNS. This is what lets a
		// client on the CA's own machine (make run, the README's
		// certbot example) validate myhost.localhost.
		return []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
	}
	ips, err := v.resolver.LookupIP(ctx, host)
	if err != nil {
		var e *core.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, core.Wrap(core.KindDNS, err, "looking up %s: %s", host, describeNetErr(err))
	}
	if len(ips) == 0 {
		return nil, core.Errorf(core.KindDNS, "no A or AAAA records found for %s", host)
	}
	return ips, nil
}

// dialContext resolves addr's host through the Validator's Resolver and
// dials the addresses in order through its Dialer, so that both stay
// injectable even inside http.Transport.
func (v *Validator) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, core.Wrap(core.KindMalformed, err, "bad address %q", addr)
	}
	ips, err := v.targetAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	var failures []string
	var lastErr error
	for i, ip := range ips {
		target := net.JoinHostPort(ip.String(), port)
		// When there are several addresses, an unreachable first one must
		// not eat the whole budget: each attempt gets a fair share.
		attemptCtx, cancel := ctx, context.CancelFunc(func() {})
		if left := len(ips) - i; left > 1 {
			if dl, ok := ctx.Deadline(); ok {
				attemptCtx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(left))
			}
		}
		conn, err := v.dialer.DialContext(attemptCtx, "tcp", target)
		cancel()
		if err == nil {
			return conn, nil
		}
		lastErr = err
		failures = append(failures, target+": "+describeNetErr(err))
		if ctx.Err() != nil {
			break
		}
	}
	// Every address tried is named: an operator needs to see that, say,
	// the IPv6 address timed out and the IPv4 one refused.
	return nil, core.Wrap(core.KindConnection, lastErr, "%s", strings.Join(failures, "; "))
}

// describeNetErr turns a network error into the short reason an operator
// looks for.
func describeNetErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network is unreachable"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// fetchError maps an error from a network exchange with the validation
// target to a *core.Error, keeping a typed error from the dial or resolver.
func fetchError(err error, kind core.ErrorKind, target string) error {
	var e *core.Error
	if errors.As(err, &e) {
		return e
	}
	return core.Wrap(kind, err, "%s: %s", target, describeNetErr(err))
}

// quoteTruncated quotes what a validation target sent, cut short, so that a
// detail stays readable and safe to show.
func quoteTruncated(s string, n int) string {
	if len(s) > n {
		return fmt.Sprintf("%q (truncated)", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// isLocalhostName reports whether host is "localhost" or a name below it.
func isLocalhostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}
