package acme

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

func pemLeaf(t testing.TB, chain []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM chain: %q", chain)
	}
	return b.Bytes
}

func TestDirectory(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.Provisioners = append(o.Provisioners, Provisioner{
			Name: "eab", Validator: &fakeValidator{}, RequireEAB: true,
			TermsOfService: "https://ca.internal/tos", Website: "https://ca.internal",
			CAAIdentities: []string{"ca.internal"},
		})
	})
	c := env.newClient(t)
	tests := []struct {
		prov     string
		wantMeta *directoryMeta
	}{
		{testProv, nil},
		{"eab", &directoryMeta{TermsOfService: "https://ca.internal/tos", Website: "https://ca.internal",
			CAAIdentities: []string{"ca.internal"}, ExternalAccountRequired: true}},
	}
	for _, tt := range tests {
		t.Run(tt.prov, func(t *testing.T) {
			prefix := env.base + "/acme/" + tt.prov
			r := c.get(prefix + "/directory")
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			var d directoryJSON
			r.decode(t, &d)
			want := directoryJSON{
				NewNonce: prefix + "/new-nonce", NewAccount: prefix + "/new-account", NewOrder: prefix + "/new-order",
				RevokeCert: prefix + "/revoke-cert", KeyChange: prefix + "/key-change",
			}
			if d.NewNonce != want.NewNonce || d.NewAccount != want.NewAccount || d.NewOrder != want.NewOrder ||
				d.RevokeCert != want.RevokeCert || d.KeyChange != want.KeyChange {
				t.Errorf("directory = %+v, want %+v", d, want)
			}
			if (d.Meta == nil) != (tt.wantMeta == nil) || d.Meta != nil && (d.Meta.TermsOfService != tt.wantMeta.TermsOfService ||
				d.Meta.Website != tt.wantMeta.Website || !slices.Equal(d.Meta.CAAIdentities, tt.wantMeta.CAAIdentities) ||
				d.Meta.ExternalAccountRequired != tt.wantMeta.ExternalAccountRequired) {
				t.Errorf("meta = %+v, want %+v", d.Meta, tt.wantMeta)
			}
			if got := r.header.Get("Link"); got != `<`+prefix+`/directory>;rel="index"` {
				t.Errorf("Link = %q", got)
			}
			if r.header.Get("Replay-Nonce") == "" || r.header.Get("X-Request-Id") == "" {
				t.Errorf("missing Replay-Nonce or X-Request-Id: %v", r.header)
			}
		})
	}
	t.Run("unknown provisioner", func(t *testing.T) {
		r := c.get(env.base + "/acme/nope/directory")
		p := r.wantProblem(t, http.StatusNotFound, "malformed")
		if p.Detail != "no such provisioner" || r.header.Get("Replay-Nonce") == "" {
			t.Errorf("problem %+v, headers %v", p, r.header)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		c.get(env.url("/nothing-here")).wantProblem(t, http.StatusNotFound, "malformed")
	})
}

func TestNewNonce(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	tests := []struct {
		method     string
		wantStatus int
	}{
		{http.MethodHead, http.StatusOK},
		{http.MethodGet, http.StatusNoContent},
		{http.MethodPut, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, env.url("/new-nonce"), nil)
			if err != nil {
				t.Fatal(err)
			}
			r := c.do(req)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", r.status, tt.wantStatus)
			}
			if r.header.Get("Replay-Nonce") == "" {
				t.Error("no Replay-Nonce")
			}
			if tt.wantStatus < 300 && r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && r.header.Get("Allow") != "GET, HEAD, POST" {
				t.Errorf("Allow = %q", r.header.Get("Allow"))
			}
		})
	}
}

// The directory and newNonce answer a POST-as-GET as well as a GET (RFC
// 8555 §6.3); a POST there is authenticated like any other and must have an
// empty payload.
func TestPostAsGetDirectoryAndNonce(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	r := c.post(env.url("/directory"), nil)
	if r.status != http.StatusOK || r.header.Get("Replay-Nonce") == "" {
		t.Fatalf("POST-as-GET directory: %d %s", r.status, r.body)
	}
	var d map[string]any
	r.decode(t, &d)
	if d["newOrder"] != env.url("/new-order") {
		t.Errorf("directory: %v", d)
	}
	r = c.post(env.url("/new-nonce"), nil)
	if r.status != http.StatusNoContent || r.header.Get("Replay-Nonce") == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST-as-GET newNonce: %d %v", r.status, r.header)
	}
	c.post(env.url("/directory"), map[string]any{"x": 1}).wantProblem(t, http.StatusBadRequest, "malformed")
	// Unsigned, or signed by no account: refused as any POST would be.
	c.postRaw(env.url("/new-nonce"), []byte("{}"), "application/json").wantProblem(t, http.StatusUnsupportedMediaType, "malformed")
	stranger := env.newClient(t)
	stranger.kid = env.url("/account/nobody")
	stranger.post(env.url("/directory"), nil).wantProblem(t, http.StatusBadRequest, "accountDoesNotExist")
}

func TestIssuanceFlow(t *testing.T) {
	tests := []struct {
		name          string
		ids           []string
		wantAuthzIDs  []core.Identifier
		wantWildcard  []bool
		wantChallType [][]string
	}{
		{
			name:          "dns",
			ids:           []string{"dns:WWW.Example.Internal."},
			wantAuthzIDs:  []core.Identifier{{Type: core.DNS, Value: "www.example.internal"}},
			wantWildcard:  []bool{false},
			wantChallType: [][]string{{"http-01", "dns-01", "tls-alpn-01"}},
		},
		{
			name:          "wildcard",
			ids:           []string{"dns:*.example.internal"},
			wantAuthzIDs:  []core.Identifier{{Type: core.DNS, Value: "example.internal"}},
			wantWildcard:  []bool{true},
			wantChallType: [][]string{{"dns-01"}},
		},
		{
			name:          "ip and dns",
			ids:           []string{"ip:10.0.0.1", "dns:a.internal"},
			wantAuthzIDs:  []core.Identifier{{Type: core.DNS, Value: "a.internal"}, {Type: core.IP, Value: "10.0.0.1"}},
			wantWildcard:  []bool{false, false},
			wantChallType: [][]string{{"http-01", "dns-01", "tls-alpn-01"}, {"http-01", "tls-alpn-01"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			c := env.newClient(t)
			c.register("mailto:admin@example.internal")
			o, orderURL := c.newOrder(tt.ids...)
			if o.Status != core.StatusPending || !strings.HasPrefix(orderURL, env.url("/order/")) || o.Finalize != orderURL+"/finalize" {
				t.Fatalf("order %+v at %s", o, orderURL)
			}
			if len(o.Authorizations) != len(tt.wantAuthzIDs) {
				t.Fatalf("authorizations: %v", o.Authorizations)
			}
			for i, au := range o.Authorizations {
				a := c.authz(au)
				if a.Identifier != tt.wantAuthzIDs[i] || a.Wildcard != tt.wantWildcard[i] || a.Status != core.StatusPending {
					t.Errorf("authz %d = %+v", i, a)
				}
				var types []string
				for _, ch := range a.Challenges {
					types = append(types, ch.Type)
					if len(ch.Token) < 22 || ch.Status != core.StatusPending || !strings.HasPrefix(ch.URL, env.url("/chall/")) {
						t.Errorf("challenge %+v", ch)
					}
				}
				if !slices.Equal(types, tt.wantChallType[i]) {
					t.Errorf("challenge types = %v, want %v", types, tt.wantChallType[i])
				}
			}
			o, _ = c.issue(tt.ids...)
			// The validator got the key authorization of the account key.
			tp, err := jws.Thumbprint(accountJWK(t, c))
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range env.validator.Calls() {
				if call.KeyAuthorization != call.Token+"."+tp {
					t.Errorf("key authorization %q for token %q", call.KeyAuthorization, call.Token)
				}
			}
			r := c.post(o.Certificate, nil)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/pem-certificate-chain" {
				t.Fatalf("certificate: %d %v", r.status, r.header)
			}
			if got := r.header.Values("Link"); !slices.Contains(got, `<`+env.url("/issuer")+`>;rel="up"`) {
				t.Errorf("Link = %v", got)
			}
			leaf, err := x509.ParseCertificate(pemLeaf(t, r.body))
			if err != nil {
				t.Fatal(err)
			}
			if err := leaf.CheckSignatureFrom(env.authority.cert); err != nil {
				t.Error(err)
			}
			iss := c.get(env.url("/issuer"))
			if iss.status != http.StatusOK || iss.header.Get("Content-Type") != "application/pkix-cert" || string(iss.body) != string(env.authority.cert.Raw) {
				t.Errorf("issuer: %d %v", iss.status, iss.header)
			}
			req := env.authority.requests[0]
			if req.AccountID == "" || req.OrderID == "" || req.Provisioner != testProv || len(req.AccountKeyJWK) == 0 {
				t.Errorf("sign request %+v", req)
			}
		})
	}
}

func accountJWK(t testing.TB, c *testClient) *jose.JSONWebKey {
	t.Helper()
	return &jose.JSONWebKey{Key: c.key.Public()}
}
