package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		tmpl string
		n    int
		want string
		ip   bool
	}{
		{"bench-{n}.internal", 7, "bench-7.internal", false},
		{"{n}.{n+1}.example", 3, "3.4.example", false},
		{"127.0.0.{n%250+1}", 0, "127.0.0.1", true},
		{"127.0.0.{n%250+1}", 250, "127.0.0.1", true},
		{"127.0.0.{n%250+1}", 251, "127.0.0.2", true},
		{"10.0.{n%4}.9", 6, "10.0.2.9", true},
		{"fixed.localhost", 9, "fixed.localhost", false},
		{"Upper-{n}.Example.", 1, "upper-1.example", false},
		{"::ffff:127.0.0.{n+1}", 0, "127.0.0.1", true},
	} {
		tm, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Errorf("%q: %v", tc.tmpl, err)
			continue
		}
		id := tm.identifier(tc.n)
		if id.value != tc.want || id.ip.IsValid() != tc.ip {
			t.Errorf("%q n=%d: got %q (ip %v), want %q (ip %v)", tc.tmpl, tc.n, id.value, id.ip.IsValid(), tc.want, tc.ip)
		}
	}
	for _, bad := range []string{"a-{n", "a-{m}", "{n%0}", "{n%}", "{n+}", "{n+1x}", "{n*2}", "a}b", "{n}}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSummarize(t *testing.T) {
	if l := summarize(nil); l != (Latency{}) {
		t.Errorf("empty: %+v", l)
	}
	ds := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- { // reversed, so sorting matters
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	want := Latency{Count: 100, Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond,
		P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if l != want {
		t.Errorf("got %+v, want %+v", l, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("summarize sorted its input in place")
	}
	one := summarize([]time.Duration{3 * time.Millisecond})
	if one.P50 != 3*time.Millisecond || one.P99 != 3*time.Millisecond {
		t.Errorf("single sample: %+v", one)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	h.add("finalize", "serverInternal", "first")
	h.add("order", "rateLimited", "x")
	h.add("finalize", "serverInternal", "second")
	rows := h.rows()
	if len(rows) != 2 || rows[0].Class != "serverInternal" || rows[0].Count != 2 || rows[0].Example != "first" {
		t.Errorf("rows %+v", rows)
	}
}

func TestClassify(t *testing.T) {
	prob := func(typ string, code int) *acme.Error { return &acme.Error{ProblemType: typ, StatusCode: code} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{prob(acmeURN+"serverInternal", 500), "serverInternal"},
		{&stepError{StepOrder, prob(acmeURN+"rejectedIdentifier", 400)}, "rejectedIdentifier"},
		{prob("", 502), "http502"},
		{prob("about:blank", 400), "about:blank"},
		{&acme.AuthorizationError{Errors: []error{prob(acmeURN+"connection", 400)}}, "connection"},
		{&acme.AuthorizationError{Errors: []error{errors.New("x")}}, "authorizationInvalid"},
		{&acme.OrderError{Status: "invalid", Problem: prob(acmeURN+"badCSR", 400)}, "badCSR"},
		{&acme.OrderError{Status: "invalid"}, "orderInvalid"},
		{&certError{"bad"}, "badCertificate"},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, "network"},
		{errors.New("acme: error reading order"), "protocol"},
		{errors.New("mystery"), "other"},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// retryBackoff resends only on badNonce (status 400 in the library), and
// a bounded number of times.
func TestRetryBackoff(t *testing.T) {
	g := &generator{}
	res := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	if d := g.retryBackoff(1, nil, res(400)); d <= 0 {
		t.Error("badNonce not retried")
	}
	for _, code := range []int{500, 503, 429} {
		if d := g.retryBackoff(1, nil, res(code)); d > 0 {
			t.Errorf("status %d retried", code)
		}
	}
	if d := g.retryBackoff(maxNonceRetries+1, nil, res(400)); d > 0 {
		t.Error("badNonce retried without bound")
	}
	if g.nonceRetr.Load() != 1 {
		t.Errorf("counted %d retries, want 1", g.nonceRetr.Load())
	}
}

func TestListenAddrs(t *testing.T) {
	mk := func(tmpl string, n int, host string) []string {
		t.Helper()
		tm, err := ParseTemplate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		g := &generator{o: ACMEOptions{N: n, HTTP01Port: 80, HTTP01Host: host}, tmpl: tm}
		a, _, err := g.listenAddrs()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if got := strings.Join(mk("x-{n}.localhost", 5, ""), " "); got != "127.0.0.1:80 [::1]:80" {
		t.Errorf("dns: %s", got)
	}
	if got := strings.Join(mk("127.0.0.{n%3+1}", 10, ""), " "); got != "127.0.0.1:80 127.0.0.2:80 127.0.0.3:80" {
		t.Errorf("ip: %s", got)
	}
	if got := strings.Join(mk("x-{n}.internal", 5, "0.0.0.0"), " "); got != "0.0.0.0:80" {
		t.Errorf("host: %s", got)
	}
	tm, _ := ParseTemplate("fd00::{n}")
	g := &generator{o: ACMEOptions{N: 2000, HTTP01Port: 80}, tmpl: tm}
	if _, _, err := g.listenAddrs(); err == nil {
		t.Error("2000 distinct IPs accepted")
	}
}
