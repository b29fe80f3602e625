package challtest_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
)

func TestHTTP01Responder(t *testing.T) {
	r := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	r.Set("tok", "tok.thumb")
	r.Set("gone", "gone.thumb")
	r.Delete("gone")
	r.SetRedirect("/moved", "/elsewhere")
	r.SetRedirect("/unmoved", "/x")
	r.SetRedirect("/unmoved", "")
	r.SetHandler("/teapot", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(client.CloseIdleConnections)

	tests := []struct {
		path         string
		wantStatus   int
		wantBody     string
		wantLocation string
	}{
		{path: challtest.HTTP01Path + "tok", wantStatus: http.StatusOK, wantBody: "tok.thumb"},
		{path: challtest.HTTP01Path + "gone", wantStatus: http.StatusNotFound},
		{path: challtest.HTTP01Path + "other", wantStatus: http.StatusNotFound},
		{path: "/moved", wantStatus: http.StatusFound, wantLocation: "/elsewhere"},
		{path: "/unmoved", wantStatus: http.StatusNotFound},
		{path: "/teapot", wantStatus: http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://"+r.Addr()+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "name.internal"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Location") != tt.wantLocation {
				t.Errorf("status %d location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.wantStatus, tt.wantLocation)
			}
			if tt.wantBody != "" && string(b) != tt.wantBody {
				t.Errorf("body %q, want %q", b, tt.wantBody)
			}
			reqs := r.Requests()
			if last := reqs[len(reqs)-1]; last != (challtest.HTTPRequest{Host: "name.internal", Path: tt.path}) {
				t.Errorf("recorded %+v", last)
			}
		})
	}
}

func TestTLSALPNResponder(t *testing.T) {
	r := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	dnsName := core.Identifier{Type: core.DNS, Value: "alpn.internal"}
	ip := core.Identifier{Type: core.IP, Value: "127.0.0.1"}
	gone := core.Identifier{Type: core.DNS, Value: "gone.internal"}
	r.Set(dnsName, "a.thumb")
	r.Set(ip, "b.thumb")
	r.Set(gone, "c.thumb")
	r.Delete(gone)

	tests := []struct {
		name    string
		sni     string
		protos  []string
		wantErr bool
		wantKA  string
		check   func(t *testing.T, st tls.ConnectionState)
	}{
		{name: "dns", sni: "alpn.internal", protos: []string{challtest.ACMETLS1Protocol}, wantKA: "a.thumb",
			check: func(t *testing.T, st tls.ConnectionState) {
				if got := st.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "alpn.internal" {
					t.Errorf("DNS SANs %v", got)
				}
			}},
		{name: "ip via reverse name", sni: challtest.SNIFor(ip), protos: []string{challtest.ACMETLS1Protocol}, wantKA: "b.thumb",
			check: func(t *testing.T, st tls.ConnectionState) {
				got := st.PeerCertificates[0].IPAddresses
				if a, _ := netip.AddrFromSlice(got[0]); len(got) != 1 || a.Unmap() != netip.MustParseAddr("127.0.0.1") {
					t.Errorf("IP SANs %v", got)
				}
			}},
		{name: "deleted", sni: "gone.internal", protos: []string{challtest.ACMETLS1Protocol}, wantErr: true},
		{name: "client without acme-tls/1", sni: "alpn.internal", protos: []string{"http/1.1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", r.Addr(), &tls.Config{
				ServerName: tt.sni, NextProtos: tt.protos,
				InsecureSkipVerify: true, //nolint:gosec // the certificate is checked by content below
			})
			if tt.wantErr {
				if err == nil {
					_ = conn.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.NegotiatedProtocol != challtest.ACMETLS1Protocol {
				t.Errorf("ALPN %q", st.NegotiatedProtocol)
			}
			tt.check(t, st)
			sum := sha256.Sum256([]byte(tt.wantKA))
			want, _ := asn1.Marshal(sum[:])
			found := false
			for _, e := range st.PeerCertificates[0].Extensions {
				if e.Id.Equal(challtest.OIDACMEIdentifier) {
					found = e.Critical && bytes.Equal(e.Value, want)
				}
			}
			if !found {
				t.Error("no critical acmeIdentifier extension with the key authorization digest")
			}
		})
	}
	want := []string{"alpn.internal", "1.0.0.127.in-addr.arpa", "gone.internal", "alpn.internal"}
	if got := r.ServerNames(); !slices.Equal(got, want) {
		t.Errorf("ServerNames %v, want %v", got, want)
	}
}

func TestTLSALPNResponderWithoutALPN(t *testing.T) {
	r := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	id := core.Identifier{Type: core.DNS, Value: "plain.internal"}
	r.Set(id, "k.thumb")
	r.SetNextProtos()
	conn, err := tls.Dial("tcp", r.Addr(), &tls.Config{
		ServerName: "plain.internal", NextProtos: []string{challtest.ACMETLS1Protocol},
		InsecureSkipVerify: true, //nolint:gosec // test of ALPN only
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("negotiated %q, want no ALPN", p)
	}
}
