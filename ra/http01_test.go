package ra_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/ra"
)

// blockUntilDone answers only when the client has given up.
func blockUntilDone() http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
}

func body(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, s)
	})
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTP01(t *testing.T) {
	dns := challtest.NewDNSServer(t)
	dns.SetA("web.internal", loopback4)
	dns.SetA("v6.internal", netip.MustParseAddr("::1"))
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	resp6 := challtest.NewHTTP01Responder(t, "[::1]:"+strconv.Itoa(resp.Port()))
	// An https server for redirects; its self-signed certificate must not
	// stop the validation.
	tlsSrv := httptest.NewTLSServer(body(keyAuthFor("tohttps") + "\n"))
	t.Cleanup(tlsSrv.Close)
	tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: resp.Port(), TLSALPNPort: tlsPort, Resolvers: []string{dns.Addr()}})
	path := func(tok string) string { return challtest.HTTP01Path + tok }

	tests := []struct {
		name    string
		id      core.Identifier
		token   string
		setup   func(tok string)
		kind    core.ErrorKind
		details []string
		absent  string // must not be in the error
	}{
		{name: "ok", id: dnsID("web.internal"), token: "ok", setup: func(tok string) { resp.Set(tok, keyAuthFor(tok)) }},
		{name: "ok with trailing whitespace", id: dnsID("web.internal"), token: "ws",
			setup: func(tok string) { resp.SetHandler(path(tok), body(keyAuthFor(tok)+" \r\n\t\n")) }},
		{name: "ok upper-case name and trailing dot", id: dnsID("WEB.internal."), token: "caps", setup: func(tok string) { resp.Set(tok, keyAuthFor(tok)) }},
		{name: "ok IPv4 identifier", id: ipID("127.0.0.1"), token: "ip4", setup: func(tok string) { resp.Set(tok, keyAuthFor(tok)) }},
		{name: "ok IPv6 identifier", id: ipID("::1"), token: "ip6", setup: func(tok string) { resp6.Set(tok, keyAuthFor(tok)) }},
		{name: "ok name with only AAAA", id: dnsID("v6.internal"), token: "v6", setup: func(tok string) { resp6.Set(tok, keyAuthFor(tok)) }},
		{name: "ok relative redirect", id: dnsID("web.internal"), token: "rel", setup: func(tok string) {
			resp.SetRedirect(path(tok), "/elsewhere")
			resp.SetHandler("/elsewhere", body(keyAuthFor(tok)))
		}},
		{name: "ok redirect to https on the TLS port", id: dnsID("web.internal"), token: "tohttps", setup: func(tok string) {
			resp.SetRedirect(path(tok), fmt.Sprintf("https://web.internal:%d/x", tlsPort))
		}},
		{name: "wrong body", id: dnsID("web.internal"), token: "wrong", setup: func(tok string) { resp.Set(tok, keyAuthFor("other")) },
			kind: core.KindIncorrectResponse, details: []string{"expected key authorization", keyAuthFor("wrong"), keyAuthFor("other"), "web.internal:"}},
		// Whatever else a server (or the target of a redirect, which may be
		// any internal host) sent is not repeated to the client.
		{name: "a page is not repeated", id: dnsID("web.internal"), token: "page", setup: func(tok string) {
			resp.SetRedirect(path(tok), "/internal-page")
			resp.SetHandler("/internal-page", body("<html>db-password=hunter2</html>"))
		}, kind: core.KindIncorrectResponse, details: []string{"32 bytes that are not a key authorization for this account"},
			absent: "hunter2"},
		{name: "another account's key authorization is not repeated", id: dnsID("web.internal"), token: "acct",
			setup:   func(tok string) { resp.Set(tok, tok+".someone-elses-thumbprint") },
			kind:    core.KindIncorrectResponse,
			details: []string{"not a key authorization for this account"}, absent: "someone-elses"},
		{name: "leading whitespace is not trimmed", id: dnsID("web.internal"), token: "lead",
			setup: func(tok string) { resp.SetHandler(path(tok), body(" "+keyAuthFor(tok))) }, kind: core.KindIncorrectResponse},
		{name: "404", id: dnsID("web.internal"), token: "missing", setup: func(string) {},
			kind: core.KindIncorrectResponse, details: []string{"HTTP 404"}},
		{name: "500 with the right body", id: dnsID("web.internal"), token: "five", setup: func(tok string) {
			resp.SetHandler(path(tok), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, keyAuthFor(tok))
			}))
		}, kind: core.KindIncorrectResponse, details: []string{"HTTP 500"}},
		{name: "body too large", id: dnsID("web.internal"), token: "big",
			setup: func(tok string) { resp.SetHandler(path(tok), body(keyAuthFor(tok)+strings.Repeat(" ", 9000))) },
			kind:  core.KindIncorrectResponse, details: []string{"larger than 8192 bytes"}},
		{name: "redirect loop", id: dnsID("web.internal"), token: "loop", setup: func(tok string) { resp.SetRedirect(path(tok), path(tok)) },
			kind: core.KindIncorrectResponse, details: []string{"more than 10 redirects"}},
		{name: "redirect to ftp", id: dnsID("web.internal"), token: "ftp", setup: func(tok string) { resp.SetRedirect(path(tok), "ftp://web.internal/x") },
			kind: core.KindIncorrectResponse, details: []string{`scheme "ftp"`}},
		{name: "redirect to another port", id: dnsID("web.internal"), token: "port", setup: func(tok string) { resp.SetRedirect(path(tok), "http://web.internal:8080/x") },
			kind: core.KindIncorrectResponse, details: []string{"port 8080 is not allowed"}},
		{name: "redirect to http on the TLS port", id: dnsID("web.internal"), token: "mix", setup: func(tok string) {
			resp.SetRedirect(path(tok), fmt.Sprintf("http://web.internal:%d/x", tlsPort))
		}, kind: core.KindIncorrectResponse, details: []string{"is not allowed for http"}},
		{name: "redirect to an unknown name", id: dnsID("web.internal"), token: "nx", setup: func(tok string) { resp.SetRedirect(path(tok), fmt.Sprintf("http://nowhere.internal:%d/", resp.Port())) },
			kind: core.KindDNS, details: []string{"NXDOMAIN", "nowhere.internal"}},
		{name: "unknown name", id: dnsID("nowhere.internal"), token: "nxd", setup: func(string) {},
			kind: core.KindDNS, details: []string{"NXDOMAIN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(tt.token)
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: core.ChallengeHTTP01, Identifier: tt.id, Token: tt.token, KeyAuthorization: keyAuthFor(tt.token),
			})
			wantResult(t, err, tt.kind, tt.details...)
			if tt.absent != "" && err != nil && strings.Contains(err.Error(), tt.absent) {
				t.Errorf("the error repeats %q: %v", tt.absent, err)
			}
		})
	}
}

func TestHTTP01SendsIdentifierAsHost(t *testing.T) {
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(loopback4)
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	resp6 := challtest.NewHTTP01Responder(t, "[::1]:"+strconv.Itoa(resp.Port()))
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: resp.Port(), Resolvers: []string{dns.Addr()}})
	tests := []struct {
		id       core.Identifier
		on       *challtest.HTTP01Responder
		wantHost string
	}{
		{id: dnsID("host.internal"), on: resp, wantHost: "host.internal"},
		{id: ipID("127.0.0.1"), on: resp, wantHost: "127.0.0.1"},
		{id: ipID("::1"), on: resp6, wantHost: "[::1]"},
	}
	for i, tt := range tests {
		t.Run(tt.wantHost, func(t *testing.T) {
			tok := "host" + strconv.Itoa(i)
			tt.on.Set(tok, keyAuthFor(tok))
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: core.ChallengeHTTP01, Identifier: tt.id, Token: tok, KeyAuthorization: keyAuthFor(tok),
			})
			wantResult(t, err, "")
			reqs := tt.on.Requests()
			last := reqs[len(reqs)-1]
			if last.Host != tt.wantHost || last.Path != challtest.HTTP01Path+tok {
				t.Errorf("request Host %q path %q, want %q %q", last.Host, last.Path, tt.wantHost, challtest.HTTP01Path+tok)
			}
		})
	}
}

func TestHTTP01ConnectionRefused(t *testing.T) {
	p := closedPort(t)
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: p, Resolvers: []string{"127.0.0.1:1"}})
	err := v.Validate(context.Background(), core.ChallengeInput{
		Type: core.ChallengeHTTP01, Identifier: ipID("127.0.0.1"), Token: "t", KeyAuthorization: keyAuthFor("t"),
	})
	wantResult(t, err, core.KindConnection, fmt.Sprintf("127.0.0.1:%d: connection refused", p))
}

// serveOn serves h on addr until the test ends.
func serveOn(t *testing.T, addr string, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// A validation made after a name's A record moved is answered by the host
// the name points to now, not by the one it pointed to at the previous
// validation over a kept-alive connection (RFC 8555 §8.3: the identifier is
// resolved for each validation).
func TestHTTP01FollowsDNSChange(t *testing.T) {
	port := closedPort(t)
	// The former holder of the name answers any token of this account;
	// the current one answers none.
	serveOn(t, "127.0.0.1:"+strconv.Itoa(port), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, keyAuthFor(strings.TrimPrefix(r.URL.Path, challtest.HTTP01Path)))
	}))
	serveOn(t, "127.0.0.2:"+strconv.Itoa(port), http.NotFoundHandler())

	dns := challtest.NewDNSServer(t)
	dns.SetA("moved.internal", loopback4)
	v := newValidator(t, ra.ValidatorConfig{HTTPPort: port, Resolvers: []string{dns.Addr()}})
	in := func(tok string) core.ChallengeInput {
		return core.ChallengeInput{Type: core.ChallengeHTTP01, Identifier: dnsID("moved.internal"), Token: tok, KeyAuthorization: keyAuthFor(tok)}
	}
	wantResult(t, v.Validate(context.Background(), in("first")), "")
	dns.SetA("moved.internal", netip.MustParseAddr("127.0.0.2"))
	wantResult(t, v.Validate(context.Background(), in("second")), core.KindIncorrectResponse, "HTTP 404")
	// And back: the old host answers again once the name points to it.
	dns.SetA("moved.internal", loopback4)
	wantResult(t, v.Validate(context.Background(), in("third")), "")
}
