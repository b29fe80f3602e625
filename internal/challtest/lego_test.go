package challtest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"testing"

	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/miekg/dns"

	"github.com/policyca/policyca/internal/challtest"
)

func txtValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestLegoDNSProvider(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	p := &challtest.LegoDNSProvider{S: srv}
	// Registering the options is what a lego client does with them; it
	// points lego's global resolver list at srv.
	_ = dns01.NewChallenge(nil, nil, p, p.Options()...)
	srv.SetCNAME("_acme-challenge.delegated.internal", "delegated.acme.internal")

	tests := []struct {
		name     string
		domain   string
		keyAuths []string
		at       string
	}{
		{name: "plain", domain: "a.internal", keyAuths: []string{"t1.k"}, at: "_acme-challenge.a.internal"},
		{name: "wildcard and base share the name", domain: "w.internal", keyAuths: []string{"t2.k", "t3.k"}, at: "_acme-challenge.w.internal"},
		{name: "CNAME followed", domain: "delegated.internal", keyAuths: []string{"t4.k"}, at: "delegated.acme.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, ka := range tt.keyAuths {
				if err := p.Present(tt.domain, "", ka); err != nil {
					t.Fatal(err)
				}
				want = append(want, txtValue(ka))
			}
			if got := lookupTXT(t, srv, tt.at); !slices.Equal(got, want) {
				t.Fatalf("after Present: TXT %s = %v, want %v", tt.at, got, want)
			}
			if err := p.CleanUp(tt.domain, "", tt.keyAuths[0]); err != nil {
				t.Fatal(err)
			}
			if got := lookupTXT(t, srv, tt.at); !slices.Equal(got, want[1:]) {
				t.Fatalf("after CleanUp: TXT %s = %v, want %v", tt.at, got, want[1:])
			}
		})
	}
	if timeout, interval := p.Timeout(); timeout <= 0 || interval <= 0 || interval >= timeout {
		t.Errorf("Timeout() = %s, %s", timeout, interval)
	}
}

func lookupTXT(t *testing.T, srv *challtest.DNSServer, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, err := dns.Exchange(m, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, txt.Txt...)
		}
	}
	return out
}
