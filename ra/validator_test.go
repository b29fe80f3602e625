package ra_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/ra"
)

const thumbprint = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"

func keyAuthFor(token string) string { return token + "." + thumbprint }

var loopback4 = netip.MustParseAddr("127.0.0.1")

// newValidator builds a validator whose connections are closed with the
// test.
func newValidator(t *testing.T, cfg ra.ValidatorConfig) *ra.Validator {
	t.Helper()
	v, err := ra.NewValidator(cfg)
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

// wantResult checks err against an expected kind ("" for success) and
// substrings of its detail.
func wantResult(t *testing.T, err error, kind core.ErrorKind, details ...string) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("Validate: unexpected error: %v", err)
		}
		return
	}
	var e *core.Error
	if !errors.As(err, &e) {
		t.Fatalf("Validate: got %v (%T), want a *core.Error of kind %s", err, err, kind)
	}
	t.Logf("%s: %s", e.Kind, e.Detail)
	if e.Kind != kind {
		t.Fatalf("Validate: kind %s (%s), want %s", e.Kind, e.Detail, kind)
	}
	for _, d := range details {
		if !strings.Contains(e.Detail, d) {
			t.Errorf("Validate: detail %q does not mention %q", e.Detail, d)
		}
	}
}

func dnsID(name string) core.Identifier { return core.Identifier{Type: core.DNS, Value: name} }
func ipID(ip string) core.Identifier    { return core.Identifier{Type: core.IP, Value: ip} }

func TestNewValidatorConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ra.ValidatorConfig
		wantErr string
	}{
		{name: "defaults", cfg: ra.ValidatorConfig{}},
		{name: "resolvers", cfg: ra.ValidatorConfig{Resolvers: []string{"127.0.0.1:53", "[::1]:5353"}}},
		{name: "bad http port", cfg: ra.ValidatorConfig{HTTPPort: 70000}, wantErr: "HTTPPort"},
		{name: "negative tls port", cfg: ra.ValidatorConfig{TLSALPNPort: -1}, wantErr: "TLSALPNPort"},
		{name: "negative timeout", cfg: ra.ValidatorConfig{Timeout: -time.Second}, wantErr: "Timeout"},
		{name: "resolver without port", cfg: ra.ValidatorConfig{Resolvers: []string{"127.0.0.1"}}, wantErr: "Resolvers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ra.NewValidator(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewValidator: %v", err)
				}
				if v == nil {
					t.Fatal("NewValidator returned no validator")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewValidator: err %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestValidateRefusesBadInput(t *testing.T) {
	v := newValidator(t, ra.ValidatorConfig{Resolvers: []string{"127.0.0.1:1"}})
	tok := "tok_en-1"
	tests := []struct {
		name string
		in   core.ChallengeInput
	}{
		{name: "unknown type", in: core.ChallengeInput{Type: "http-02", Identifier: dnsID("a.internal"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "token with slash", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("a.internal"), Token: "../x", KeyAuthorization: keyAuthFor("../x")}},
		{name: "empty token", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("a.internal"), KeyAuthorization: keyAuthFor("")}},
		{name: "key authorization of another token", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("a.internal"), Token: tok, KeyAuthorization: keyAuthFor("other")}},
		{name: "identifier type", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: core.Identifier{Type: "email", Value: "a@b"}, Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "bad IP", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: ipID("300.1.1.1"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "host with port", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("a.internal:81"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "wildcard for http-01", in: core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("*.a.internal"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "wildcard for tls-alpn-01", in: core.ChallengeInput{Type: core.ChallengeTLSALPN01, Identifier: dnsID("*.a.internal"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
		{name: "IP for dns-01", in: core.ChallengeInput{Type: core.ChallengeDNS01, Identifier: ipID("127.0.0.1"), Token: tok, KeyAuthorization: keyAuthFor(tok)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(context.Background(), tt.in)
			wantResult(t, err, core.KindMalformed)
			var e *core.Error
			errors.As(err, &e)
			if e.Identifier == nil || *e.Identifier != tt.in.Identifier {
				t.Errorf("error identifier %v, want %v", e.Identifier, tt.in.Identifier)
			}
		})
	}
}

// countingDialer counts and records the connections it opens.
type countingDialer struct {
	d     net.Dialer
	mu    sync.Mutex
	addrs []string
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	c.addrs = append(c.addrs, addr)
	c.mu.Unlock()
	return c.d.DialContext(ctx, network, addr)
}

func (c *countingDialer) dials() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.addrs...)
}

// Each http-01 validation, and each redirect hop within one, resolves the
// name again and opens its own connection: a kept-alive connection would
// skip the lookup (RFC 8555 §8.3; see TestHTTP01FollowsDNSChange).
func TestHTTP01ResolvesAndDialsEveryRequest(t *testing.T) {
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	res := &fakeResolver{ips: map[string][]netip.Addr{"web.internal": {loopback4}}}
	dialer := &countingDialer{}
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: resp.Port(), Resolver: res, Dialer: dialer})
	for _, tok := range []string{"first", "second", "third"} {
		resp.Set(tok, keyAuthFor(tok))
		err := v.Validate(context.Background(), core.ChallengeInput{
			Type: core.ChallengeHTTP01, Identifier: dnsID("web.internal"), Token: tok, KeyAuthorization: keyAuthFor(tok),
		})
		wantResult(t, err, "")
	}
	if got := dialer.dials(); len(got) != 3 {
		t.Errorf("three validations of one host opened %d connections (%v), want 3", len(got), got)
	}
	// A redirect to the same name is a new request: new lookup, new
	// connection.
	resp.SetRedirect(challtest.HTTP01Path+"hop", "/next")
	resp.SetHandler("/next", body(keyAuthFor("hop")))
	err := v.Validate(context.Background(), core.ChallengeInput{
		Type: core.ChallengeHTTP01, Identifier: dnsID("web.internal"), Token: "hop", KeyAuthorization: keyAuthFor("hop"),
	})
	wantResult(t, err, "")
	if got := dialer.dials(); len(got) != 5 {
		t.Errorf("after a validation with one redirect, %d connections in all (%v), want 5", len(got), got)
	}
	res.mu.Lock()
	asked := append([]string(nil), res.asked...)
	res.mu.Unlock()
	if len(asked) != 5 {
		t.Errorf("resolver asked %v, want one lookup of web.internal per request (5)", asked)
	}
	for _, q := range asked {
		if q != "IP web.internal" {
			t.Errorf("resolver asked %q, want only \"IP web.internal\"", q)
		}
	}
}

// fakeResolver answers from a map and records the questions.
type fakeResolver struct {
	mu    sync.Mutex
	ips   map[string][]netip.Addr
	txt   map[string][]string
	asked []string
}

func (f *fakeResolver) LookupIP(_ context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "IP "+host)
	if ips, ok := f.ips[host]; ok {
		return ips, nil
	}
	return nil, core.Errorf(core.KindDNS, "NXDOMAIN looking up %s", host)
}

func (f *fakeResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "TXT "+name)
	return f.txt[name], nil
}

func TestInjectedResolverAndDialer(t *testing.T) {
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	resp.Set("tok", keyAuthFor("tok"))
	alpn := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	alpn.Set(dnsID("fake.test"), keyAuthFor("tok"))
	// 127.0.0.2 is loopback but nothing listens there: the validator must
	// go on to the next address, in the resolver's order.
	res := &fakeResolver{
		ips: map[string][]netip.Addr{"fake.test": {netip.MustParseAddr("127.0.0.2"), loopback4}},
		txt: map[string][]string{"_acme-challenge.fake.test": {"x", dnsValue(keyAuthFor("tok"))}},
	}
	dialer := &countingDialer{}
	v := newValidator(t, ra.ValidatorConfig{
		HTTPPort: resp.Port(), TLSALPNPort: alpn.Port(), Dialer: dialer, Resolver: res,
		Resolvers: []string{"127.0.0.1:1"}, // ignored: Resolver wins
	})
	for _, typ := range []string{core.ChallengeHTTP01, core.ChallengeTLSALPN01, core.ChallengeDNS01} {
		err := v.Validate(context.Background(), core.ChallengeInput{
			Type: typ, Identifier: dnsID("fake.test"), Token: "tok", KeyAuthorization: keyAuthFor("tok"),
		})
		wantResult(t, err, "")
	}
	wantDials := []string{
		"127.0.0.2:" + strconv.Itoa(resp.Port()), "127.0.0.1:" + strconv.Itoa(resp.Port()),
		"127.0.0.2:" + strconv.Itoa(alpn.Port()), "127.0.0.1:" + strconv.Itoa(alpn.Port()),
	}
	if got := dialer.dials(); strings.Join(got, " ") != strings.Join(wantDials, " ") {
		t.Errorf("dials %v, want %v", got, wantDials)
	}
	wantAsked := "IP fake.test,IP fake.test,TXT _acme-challenge.fake.test"
	if got := strings.Join(res.asked, ","); got != wantAsked {
		t.Errorf("resolver asked %s, want %s", got, wantAsked)
	}
}

func TestValidateHonoursContext(t *testing.T) {
	// A DNS "server" that never answers and an HTTP server that never
	// responds: both must give up when the caller's context ends.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	resp.SetHandler(challtest.HTTP01Path+"slow", blockUntilDone())

	tests := []struct {
		name string
		cfg  ra.ValidatorConfig
		in   core.ChallengeInput
		kind core.ErrorKind
	}{
		{
			name: "dns-01 silent resolver",
			cfg:  ra.ValidatorConfig{Resolvers: []string{silent.LocalAddr().String()}},
			in:   core.ChallengeInput{Type: core.ChallengeDNS01, Identifier: dnsID("a.internal"), Token: "slow", KeyAuthorization: keyAuthFor("slow")},
			kind: core.KindDNS,
		},
		{
			name: "http-01 server never answers",
			cfg:  ra.ValidatorConfig{HTTPPort: resp.Port(), Resolvers: []string{silent.LocalAddr().String()}},
			in:   core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: ipID("127.0.0.1"), Token: "slow", KeyAuthorization: keyAuthFor("slow")},
			kind: core.KindConnection,
		},
		{
			name: "validator timeout",
			cfg:  ra.ValidatorConfig{HTTPPort: resp.Port(), Timeout: 50 * time.Millisecond},
			in:   core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: ipID("127.0.0.1"), Token: "slow", KeyAuthorization: keyAuthFor("slow")},
			kind: core.KindConnection,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newValidator(t, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			wantResult(t, v.Validate(ctx, tt.in), tt.kind, "timeout")
		})
	}
}

func TestConnectionErrorNamesEveryAddress(t *testing.T) {
	p := closedPort(t)
	res := &fakeResolver{ips: map[string][]netip.Addr{
		"two.test": {netip.MustParseAddr("::1"), loopback4},
	}}
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: p, TLSALPNPort: p, Resolver: res})
	for _, typ := range []string{core.ChallengeHTTP01, core.ChallengeTLSALPN01} {
		t.Run(typ, func(t *testing.T) {
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: typ, Identifier: dnsID("two.test"), Token: "t", KeyAuthorization: keyAuthFor("t"),
			})
			wantResult(t, err, core.KindConnection,
				"[::1]:"+strconv.Itoa(p)+": connection refused; 127.0.0.1:"+strconv.Itoa(p)+": connection refused")
		})
	}
}

func TestConcurrentValidations(t *testing.T) {
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(loopback4)
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	alpn := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: resp.Port(), TLSALPNPort: alpn.Port(), Resolvers: []string{dns.Addr()}})
	types := []string{core.ChallengeHTTP01, core.ChallengeDNS01, core.ChallengeTLSALPN01}
	errs := make(chan error, 24)
	var wg sync.WaitGroup
	for i := range cap(errs) {
		tok := "c" + strconv.Itoa(i)
		name := "host" + strconv.Itoa(i%4) + ".internal"
		typ := types[i%len(types)]
		switch typ {
		case core.ChallengeHTTP01:
			resp.Set(tok, keyAuthFor(tok))
		case core.ChallengeDNS01:
			dns.AddTXT("_acme-challenge."+name, dnsValue(keyAuthFor(tok)))
		case core.ChallengeTLSALPN01:
			// One certificate per name: use a name of its own.
			name = tok + ".alpn.internal"
			alpn.Set(dnsID(name), keyAuthFor(tok))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- v.Validate(context.Background(), core.ChallengeInput{
				Type: typ, Identifier: dnsID(name), Token: tok, KeyAuthorization: keyAuthFor(tok),
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantResult(t, err, "")
	}
}

// Localhost names (RFC 6761 §6.3) are loopback without asking DNS, so a
// client on the CA's own machine can validate "myhost.localhost".
func TestLocalhostNamesAreLoopback(t *testing.T) {
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	resp.Set("tok", keyAuthFor("tok"))
	res := &fakeResolver{ips: map[string][]netip.Addr{}, txt: map[string][]string{}}
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: resp.Port(), Resolver: res, Dialer: &countingDialer{}})
	for _, name := range []string{"localhost", "myhost.localhost", "A.B.LOCALHOST."} {
		err := v.Validate(context.Background(), core.ChallengeInput{
			Type: core.ChallengeHTTP01, Identifier: dnsID(name), Token: "tok", KeyAuthorization: keyAuthFor("tok"),
		})
		wantResult(t, err, "")
	}
	if len(res.asked) != 0 {
		t.Errorf("resolver was asked %v for localhost names", res.asked)
	}
	// Not a localhost name: the resolver is asked (and knows nothing).
	err := v.Validate(context.Background(), core.ChallengeInput{
		Type: core.ChallengeHTTP01, Identifier: dnsID("localhost.example"), Token: "tok", KeyAuthorization: keyAuthFor("tok"),
	})
	if err == nil {
		t.Fatal("localhost.example validated without DNS records")
	}
}
