package challtest_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/policyca/policyca/internal/challtest"
)

// query asks srv over network and returns the rcode and the answer in
// presentation form (type and data only).
func query(t *testing.T, srv *challtest.DNSServer, network, name string, qtype uint16) (string, []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network}
	r, _, err := c.Exchange(m, srv.Addr())
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	var out []string
	for _, rr := range r.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[0]+" "+strings.Join(f[3:], " "))
	}
	return dns.RcodeToString[r.Rcode], out
}

func TestDNSServer(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	srv.SetA("Both.Internal.", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	srv.SetTXT("_acme-challenge.x.internal", "one", "two")
	srv.AddTXT("_acme-challenge.x.internal", "three")
	srv.RemoveTXT("_acme-challenge.x.internal", "one")
	srv.SetTXT("long.internal", strings.Repeat("a", 300))
	srv.SetCNAME("alias.internal", "both.internal")
	srv.SetCNAME("dangling.internal", "nowhere.internal")
	srv.SetTXT("cleared.internal", "x")
	srv.ClearTXT("cleared.internal")
	srv.SetTXT("sf.internal", "x")
	srv.SetServFail("sf.internal", true)

	tests := []struct {
		name      string
		qtype     uint16
		wantRcode string
		want      []string
	}{
		{name: "both.internal", qtype: dns.TypeA, wantRcode: "NOERROR", want: []string{"both.internal. A 127.0.0.1"}},
		{name: "BOTH.internal", qtype: dns.TypeAAAA, wantRcode: "NOERROR", want: []string{"both.internal. AAAA ::1"}},
		{name: "both.internal", qtype: dns.TypeTXT, wantRcode: "NOERROR"},
		{name: "_acme-challenge.x.internal", qtype: dns.TypeTXT, wantRcode: "NOERROR",
			want: []string{`_acme-challenge.x.internal. TXT "two"`, `_acme-challenge.x.internal. TXT "three"`}},
		{name: "long.internal", qtype: dns.TypeTXT, wantRcode: "NOERROR",
			want: []string{`long.internal. TXT "` + strings.Repeat("a", 255) + `" "` + strings.Repeat("a", 45) + `"`}},
		{name: "alias.internal", qtype: dns.TypeA, wantRcode: "NOERROR",
			want: []string{"alias.internal. CNAME both.internal.", "both.internal. A 127.0.0.1"}},
		{name: "alias.internal", qtype: dns.TypeCNAME, wantRcode: "NOERROR", want: []string{"alias.internal. CNAME both.internal."}},
		{name: "dangling.internal", qtype: dns.TypeTXT, wantRcode: "NXDOMAIN", want: []string{"dangling.internal. CNAME nowhere.internal."}},
		{name: "missing.internal", qtype: dns.TypeA, wantRcode: "NXDOMAIN"},
		{name: "cleared.internal", qtype: dns.TypeTXT, wantRcode: "NXDOMAIN"},
		{name: "sf.internal", qtype: dns.TypeTXT, wantRcode: "SERVFAIL"},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+" "+tt.name+" "+dns.TypeToString[tt.qtype], func(t *testing.T) {
				rcode, got := query(t, srv, network, tt.name, tt.qtype)
				if rcode != tt.wantRcode || !slices.Equal(got, tt.want) {
					t.Errorf("got %s %q, want %s %q", rcode, got, tt.wantRcode, tt.want)
				}
			})
		}
	}
}

func TestDNSServerDefaultA(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	srv.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	srv.SetA("own.internal", netip.MustParseAddr("127.0.0.9"))
	tests := []struct {
		name      string
		qtype     uint16
		wantRcode string
		want      []string
	}{
		{name: "anything.internal", qtype: dns.TypeA, wantRcode: "NOERROR", want: []string{"anything.internal. A 127.0.0.1"}},
		{name: "own.internal", qtype: dns.TypeA, wantRcode: "NOERROR", want: []string{"own.internal. A 127.0.0.9"}},
		{name: "anything.internal", qtype: dns.TypeAAAA, wantRcode: "NOERROR"},
		{name: "anything.internal", qtype: dns.TypeTXT, wantRcode: "NOERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+dns.TypeToString[tt.qtype], func(t *testing.T) {
			rcode, got := query(t, srv, "udp", tt.name, tt.qtype)
			if rcode != tt.wantRcode || !slices.Equal(got, tt.want) {
				t.Errorf("got %s %q, want %s %q", rcode, got, tt.wantRcode, tt.want)
			}
		})
	}
}

func TestDNSServerTruncatesUDP(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	vals := make([]string, 100)
	for i := range vals {
		vals[i] = strings.Repeat("v", 40)
	}
	srv.SetTXT("big.internal", vals...)
	m := new(dns.Msg)
	m.SetQuestion("big.internal.", dns.TypeTXT)
	tests := []struct {
		network       string
		wantTruncated bool
		wantAnswers   int
	}{
		{network: "udp", wantTruncated: true},
		{network: "tcp", wantAnswers: 100},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			r, _, err := (&dns.Client{Net: tt.network}).Exchange(m, srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if r.Truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", r.Truncated, tt.wantTruncated)
			}
			if tt.wantAnswers > 0 && len(r.Answer) != tt.wantAnswers {
				t.Errorf("%d answers, want %d", len(r.Answer), tt.wantAnswers)
			}
		})
	}
}
