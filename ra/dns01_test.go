package ra_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/ra"
)

// dnsValue is the RFC 8555 §8.4 TXT value for keyAuth.
func dnsValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestDNS01(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	broken := challtest.NewDNSServer(t)
	v := newValidator(t, ra.ValidatorConfig{Resolvers: []string{srv.Addr()}})

	tests := []struct {
		name    string
		id      string
		token   string
		setup   func(want string)
		kind    core.ErrorKind
		details []string
	}{
		{name: "ok", id: "a.internal", token: "ok", setup: func(w string) { srv.SetTXT("_acme-challenge.a.internal", w) }},
		{name: "ok wildcard at base name", id: "*.w.internal", token: "wild", setup: func(w string) { srv.SetTXT("_acme-challenge.w.internal", w) }},
		{name: "ok among other values", id: "m.internal", token: "many", setup: func(w string) { srv.SetTXT("_acme-challenge.m.internal", "stale", w, "other") }},
		{name: "ok through a CNAME", id: "c.internal", token: "cname", setup: func(w string) {
			srv.SetCNAME("_acme-challenge.c.internal", "c.acme.internal")
			srv.SetTXT("c.acme.internal", w)
		}},
		{name: "ok through a CNAME chain", id: "cc.internal", token: "chain", setup: func(w string) {
			srv.SetCNAME("_acme-challenge.cc.internal", "one.internal")
			srv.SetCNAME("one.internal", "two.internal")
			srv.SetTXT("two.internal", w)
		}},
		{name: "ok over TCP when UDP is truncated", id: "big.internal", token: "tcp", setup: func(w string) {
			vals := make([]string, 0, 120)
			for i := range 119 {
				vals = append(vals, dnsValue(strconv.Itoa(i)))
			}
			srv.SetTXT("_acme-challenge.big.internal", append(vals, w)...)
		}},
		{name: "wrong TXT", id: "x.internal", token: "wrong", setup: func(string) { srv.SetTXT("_acme-challenge.x.internal", "nope") },
			kind: core.KindIncorrectResponse, details: []string{`found "nope"`, "_acme-challenge.x.internal"}},
		{name: "wrong TXT behind a CNAME", id: "xc.internal", token: "wrongc", setup: func(string) {
			srv.SetCNAME("_acme-challenge.xc.internal", "xc.acme.internal")
			srv.SetTXT("xc.acme.internal", "nope")
		}, kind: core.KindIncorrectResponse},
		{name: "NXDOMAIN", id: "gone.internal", token: "nx", setup: func(string) {},
			kind: core.KindDNS, details: []string{"NXDOMAIN", "_acme-challenge.gone.internal"}},
		{name: "CNAME to nowhere", id: "dangling.internal", token: "dangle", setup: func(string) {
			srv.SetCNAME("_acme-challenge.dangling.internal", "nothing.internal")
		}, kind: core.KindDNS, details: []string{"NXDOMAIN"}},
		{name: "no TXT record", id: "nodata.internal", token: "nodata", setup: func(string) {
			srv.SetA("_acme-challenge.nodata.internal", loopback4)
		}, kind: core.KindDNS, details: []string{"no TXT record"}},
		{name: "TXT removed", id: "cleared.internal", token: "cleared", setup: func(w string) {
			srv.SetTXT("_acme-challenge.cleared.internal", w)
			srv.ClearTXT("_acme-challenge.cleared.internal")
		}, kind: core.KindDNS, details: []string{"NXDOMAIN"}},
		{name: "CNAME loop", id: "loop.internal", token: "loop", setup: func(string) {
			srv.SetCNAME("_acme-challenge.loop.internal", "l1.internal")
			srv.SetCNAME("l1.internal", "_acme-challenge.loop.internal")
		}, kind: core.KindDNS, details: []string{"CNAME loop"}},
		{name: "SERVFAIL", id: "sf.internal", token: "sf", setup: func(string) { srv.SetServFail("_acme-challenge.sf.internal", true) },
			kind: core.KindDNS, details: []string{"SERVFAIL", srv.Addr()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := keyAuthFor(tt.token)
			tt.setup(dnsValue(ka))
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: core.ChallengeDNS01, Identifier: dnsID(tt.id), Token: tt.token, KeyAuthorization: ka,
			})
			wantResult(t, err, tt.kind, tt.details...)
		})
	}

	t.Run("next server after SERVFAIL", func(t *testing.T) {
		ka := keyAuthFor("failover")
		broken.SetServFail("_acme-challenge.f.internal", true)
		srv.SetTXT("_acme-challenge.f.internal", dnsValue(ka))
		v2 := newValidator(t, ra.ValidatorConfig{Resolvers: []string{broken.Addr(), srv.Addr()}})
		err := v2.Validate(context.Background(), core.ChallengeInput{
			Type: core.ChallengeDNS01, Identifier: dnsID("f.internal"), Token: "failover", KeyAuthorization: ka,
		})
		wantResult(t, err, "")
	})
}

func TestDNSResolverLookupIP(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	srv.SetA("both.internal", loopback4, netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.2"))
	srv.SetA("txtonly.internal")
	srv.SetTXT("txtonly.internal", "x")
	srv.SetCNAME("alias.internal", "both.internal")
	r, err := ra.NewDNSResolver([]string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want []netip.Addr
		kind core.ErrorKind
	}{
		{host: "both.internal", want: []netip.Addr{netip.MustParseAddr("::1"), loopback4, netip.MustParseAddr("127.0.0.2")}},
		{host: "alias.internal", want: []netip.Addr{netip.MustParseAddr("::1"), loopback4, netip.MustParseAddr("127.0.0.2")}},
		{host: "txtonly.internal", kind: core.KindDNS},
		{host: "missing.internal", kind: core.KindDNS},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := r.LookupIP(context.Background(), tt.host)
			if tt.kind != "" {
				wantResult(t, err, tt.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("LookupIP(%s) = %v, want %v (IPv6 first)", tt.host, got, tt.want)
			}
		})
	}
}

func TestNewDNSResolverRefuses(t *testing.T) {
	tests := [][]string{nil, {"127.0.0.1"}, {":53"}, {"127.0.0.1:"}}
	for _, servers := range tests {
		if _, err := ra.NewDNSResolver(servers); err == nil {
			t.Errorf("NewDNSResolver(%q) accepted", servers)
		}
	}
}

func TestDNSResolverTimeout(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	r, err := ra.NewDNSResolver([]string{silent.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.LookupTXT(ctx, "x.internal")
	wantResult(t, err, core.KindDNS)
}

func TestSystemResolver(t *testing.T) {
	srv := challtest.NewDNSServer(t)
	srv.SetA("both.internal", loopback4, netip.MustParseAddr("::1"))
	srv.SetCNAME("_acme-challenge.c.internal", "target.internal")
	srv.SetTXT("target.internal", "v1", "v2")
	// The pure-Go resolver, dialing only the test server: the system's
	// resolver code path without the system's DNS servers.
	var d net.Dialer
	r := ra.NewSystemResolver(&net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, srv.Addr())
	}})

	ips, err := r.LookupIP(context.Background(), "both.internal")
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("::1"), loopback4}; !slices.Equal(ips, want) {
		t.Errorf("LookupIP = %v, want %v", ips, want)
	}
	txts, err := r.LookupTXT(context.Background(), "_acme-challenge.c.internal")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(txts)
	if want := []string{"v1", "v2"}; !slices.Equal(txts, want) {
		t.Errorf("LookupTXT = %v, want %v", txts, want)
	}
	_, err = r.LookupIP(context.Background(), "missing.internal")
	wantResult(t, err, core.KindDNS, "no such host")
	_, err = r.LookupTXT(context.Background(), "missing.internal")
	wantResult(t, err, core.KindDNS, "missing.internal")
}
