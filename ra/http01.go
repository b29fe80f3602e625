package ra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/policyca/policyca/core"
)

const (
	// maxHTTP01Body is how much of a response is read. A key authorization
	// is under 100 bytes; anything near this limit is not one.
	maxHTTP01Body = 8 << 10
	// maxRedirects follows RFC 8555 §10.2's advice to bound redirects.
	maxRedirects = 10
	userAgent    = "policyca-validator"
)

// errRedirect marks errors made by checkRedirect, so that they are not
// reported as connection failures of the last hop.
var errRedirect = errors.New("redirect refused")

// validateHTTP01 checks RFC 8555 §8.3: GET
// http://<identifier>:<HTTPPort>/.well-known/acme-challenge/<token> answers
// 200 with the key authorization, trailing whitespace ignored. Redirects
// are followed (see checkRedirect). Non-200 answers and wrong bodies are
// incorrectResponse; failures to reach the target are connection.
func (v *Validator) validateHTTP01(ctx context.Context, in core.ChallengeInput) error {
	host, err := http01Host(in.Identifier)
	if err != nil {
		return err
	}
	u := &url.URL{
		Scheme: "http",
		Host:   net.JoinHostPort(host, strconv.Itoa(v.httpPort)),
		Path:   "/.well-known/acme-challenge/" + in.Token,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return core.Wrap(core.KindMalformed, err, "cannot build request for %s", u)
	}
	// The Host header is the identifier itself, whatever the port: that is
	// the name the client's web server is configured for.
	req.Host = hostHeader(host)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")

	resp, err := v.client.Do(req)
	if err != nil {
		return httpFetchError(err, u)
	}
	defer resp.Body.Close()
	final := resp.Request.URL
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTP01Body+1))
	if err != nil {
		return fetchError(err, core.KindConnection, final.Host)
	}
	if resp.StatusCode != http.StatusOK {
		return core.Errorf(core.KindIncorrectResponse, "%s: invalid response from %s: HTTP %d",
			final.Host, final.Redacted(), resp.StatusCode)
	}
	if len(body) > maxHTTP01Body {
		return core.Errorf(core.KindIncorrectResponse, "%s: response from %s is larger than %d bytes",
			final.Host, final.Redacted(), maxHTTP01Body)
	}
	got := strings.TrimRight(string(body), " \t\r\n")
	if got != in.KeyAuthorization {
		return core.Errorf(core.KindIncorrectResponse, "%s: expected key authorization %q from %s, got %s",
			final.Host, in.KeyAuthorization, final.Redacted(), describeBody(got, in.KeyAuthorization))
	}
	return nil
}

// describeBody says what a wrong http-01 answer was without repeating
// what an arbitrary server sent: the validator runs inside the network and
// follows redirects to any host, so quoting the body would let a client
// read the start of internal pages through the error. Only a key
// authorization of the same account (another token, or stale) is quoted:
// the client knows those already, and it is what helps most to see.
func describeBody(got, want string) string {
	_, thumb, _ := strings.Cut(want, ".")
	token, gotThumb, ok := strings.Cut(got, ".")
	if ok && gotThumb == thumb && len(got) <= 256 && validToken(token) {
		return strconv.Quote(got)
	}
	return fmt.Sprintf("%d bytes that are not a key authorization for this account", len(got))
}

// validToken reports whether s is base64url text, as an ACME token is.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// http01Host returns the URL host for an identifier; wildcard names cannot
// be validated over HTTP (RFC 8555 §7.1.3).
func http01Host(id core.Identifier) (string, error) {
	switch id.Type {
	case core.DNS:
		if strings.HasPrefix(id.Value, "*.") {
			return "", core.Errorf(core.KindMalformed, "a wildcard name can only be validated with dns-01")
		}
		return strings.TrimSuffix(id.Value, "."), nil
	case core.IP:
		ip, err := netip.ParseAddr(id.Value)
		if err != nil {
			return "", core.Errorf(core.KindMalformed, "invalid IP identifier %q", id.Value)
		}
		return ip.Unmap().String(), nil
	}
	return "", core.Errorf(core.KindMalformed, "unsupported identifier type %q", id.Type)
}

// hostHeader brackets an IPv6 literal, as HTTP requires.
func hostHeader(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// checkRedirect decides which redirects an http-01 validation follows.
// RFC 8555 §8.3 lets the server follow redirects and §10.2 warns against
// being steered elsewhere; like public CAs we follow at most 10, only to
// http and https, and only to the standard ports (80, 443) or the ports this
// validator is configured with (HTTPPort for http, TLSALPNPort for https),
// which in test and lab setups are not the standard ones.
func (v *Validator) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects, last to %s", errRedirect, maxRedirects, req.URL.Redacted())
	}
	var allowed []int
	switch req.URL.Scheme {
	case "http":
		allowed = []int{80, v.httpPort}
	case "https":
		allowed = []int{443, v.tlsALPNPort}
	default:
		return fmt.Errorf("%w: redirect to %s: scheme %q is not http or https", errRedirect, req.URL.Redacted(), req.URL.Scheme)
	}
	port := req.URL.Port()
	if port == "" {
		return nil
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("%w: redirect to %s: bad port", errRedirect, req.URL.Redacted())
	}
	for _, a := range allowed {
		if p == a {
			return nil
		}
	}
	list := strconv.Itoa(allowed[0])
	if allowed[1] != allowed[0] {
		list += ", " + strconv.Itoa(allowed[1])
	}
	return fmt.Errorf("%w: redirect to %s: port %d is not allowed for %s (allowed: %s)",
		errRedirect, req.URL.Redacted(), p, req.URL.Scheme, list)
}

// httpFetchError maps an http.Client error. Refused redirects are the
// target's doing, so they are incorrectResponse; TLS failures on an https
// redirect are tls; the rest is connection (or dns, from the resolver).
func httpFetchError(err error, u *url.URL) error {
	if errors.Is(err, errRedirect) {
		var ue *url.Error
		msg := err.Error()
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return core.Wrap(core.KindIncorrectResponse, err, "%s: %s", u.Host, msg)
	}
	var e *core.Error
	if errors.As(err, &e) {
		return e
	}
	host := u.Host
	var ue *url.Error
	if errors.As(err, &ue) {
		if pu, perr := url.Parse(ue.URL); perr == nil {
			host = pu.Host
			if pu.Scheme == "https" && !isNetErr(ue.Err) && !errors.Is(err, context.DeadlineExceeded) {
				return core.Wrap(core.KindTLS, err, "%s: TLS error: %s", host, ue.Err.Error())
			}
		}
	}
	return core.Wrap(core.KindConnection, err, "%s: %s", host, describeNetErr(err))
}

// isNetErr reports whether err is the transport failing rather than TLS
// refusing: crypto/tls reports an alert received from the peer as a
// *net.OpError too, and that one is a TLS verdict.
func isNetErr(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op != "remote error"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
