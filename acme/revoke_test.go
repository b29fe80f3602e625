package acme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// issueWithKey runs an order whose CSR uses certKey, so tests can revoke
// with the certificate's own key.
func issueWithKey(t *testing.T, c *testClient, certKey crypto.Signer, name string) []byte {
	t.Helper()
	o, u := c.newOrder("dns:" + name)
	o = c.solve(o, u, "")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	if err != nil {
		t.Fatal(err)
	}
	r := c.post(o.Finalize, map[string]string{"csr": base64.RawURLEncoding.EncodeToString(der)})
	if r.status != http.StatusOK {
		t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	r.decode(t, &o)
	return c.certDER(o)
}

func revokeBody(der []byte, reason *int) map[string]any {
	m := map[string]any{"certificate": base64.RawURLEncoding.EncodeToString(der)}
	if reason != nil {
		m["reason"] = *reason
	}
	return m
}

func intp(i int) *int { return &i }

func TestRevoke(t *testing.T) {
	env := newEnv(t)
	revokeURL := env.url("/revoke-cert")
	owner := env.newClient(t)
	owner.register()
	other := env.newClient(t)
	other.register()
	certKey := newKey(t)

	foreign := foreignCert(t)
	tests := []struct {
		name       string
		client     func() *testClient
		cert       func() []byte
		reason     *int
		opts       signOpts
		wantStatus int
		wantType   string
	}{
		{"by owner", func() *testClient { return owner }, func() []byte { return issueWithKey(t, owner, newKey(t), "a.internal") }, intp(4), signOpts{}, 200, ""},
		{"by certificate key", func() *testClient { return &testClient{t: t, hc: owner.hc, dir: owner.dir, key: certKey} },
			func() []byte { return issueWithKey(t, owner, certKey, "b.internal") }, intp(1), signOpts{}, 200, ""},
		{"by another account", func() *testClient { return other }, func() []byte { return issueWithKey(t, owner, newKey(t), "c.internal") }, nil, signOpts{}, 403, "unauthorized"},
		{"by an unrelated jwk", func() *testClient { return &testClient{t: t, hc: owner.hc, dir: owner.dir, key: newKey(t)} },
			func() []byte { return issueWithKey(t, owner, newKey(t), "d.internal") }, nil, signOpts{}, 403, "unauthorized"},
		{"bad reason", func() *testClient { return owner }, func() []byte { return issueWithKey(t, owner, newKey(t), "e.internal") }, intp(2), signOpts{}, 400, "badRevocationReason"},
		{"reason 7", func() *testClient { return owner }, func() []byte { return issueWithKey(t, owner, newKey(t), "f.internal") }, intp(7), signOpts{}, 400, "badRevocationReason"},
		{"unknown certificate", func() *testClient { return owner }, func() []byte { return foreign }, nil, signOpts{}, 404, "malformed"},
		{"not a certificate", func() *testClient { return owner }, func() []byte { return []byte("junk") }, nil, signOpts{}, 400, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := tt.cert()
			c := tt.client()
			r := c.postWith(revokeURL, revokeBody(der, tt.reason), tt.opts)
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := env.store.GetCertificateBySerial(t.Context(), leaf.SerialNumber.Text(16))
			if err != nil || rec.RevokedAt.IsZero() || rec.RevocationReason != *tt.reason {
				t.Errorf("stored = %+v, %v", rec, err)
			}
			// A second revocation is alreadyRevoked.
			c.postWith(revokeURL, revokeBody(der, tt.reason), tt.opts).wantProblem(t, 400, "alreadyRevoked")
		})
	}
}

// foreignCert is a certificate this CA never issued.
func foreignCert(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"x.internal"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// An account that did not order a certificate may revoke it when it holds
// valid authorizations for every name in it (RFC 8555 §7.6), a wildcard
// name needing a wildcard authorization; one that holds them for some
// names only may not.
func TestRevokeByAuthorizationHolder(t *testing.T) {
	env := newEnv(t)
	revokeURL := env.url("/revoke-cert")
	owner, holder := env.newClient(t), env.newClient(t)
	owner.register()
	holder.register()
	revoke := func(c *testClient, ids ...string) *response {
		t.Helper()
		o, _ := owner.issue(ids...)
		return c.post(revokeURL, revokeBody(owner.certDER(o), intp(1)))
	}
	// The holder proves control of one name, then of the other.
	o, u := holder.newOrder("dns:one.internal")
	holder.solve(o, u, core.ChallengeHTTP01)
	if p := revoke(holder, "dns:one.internal", "dns:two.internal").wantProblem(t, http.StatusForbidden, "unauthorized"); !strings.Contains(p.Detail, "two.internal") {
		t.Errorf("detail %q does not name the name without an authorization", p.Detail)
	}
	o, u = holder.newOrder("dns:two.internal")
	holder.solve(o, u, core.ChallengeHTTP01)
	if r := revoke(holder, "dns:one.internal", "dns:two.internal"); r.status != http.StatusOK {
		t.Fatalf("revocation by the holder of both authorizations: %d %s", r.status, r.body)
	}
	// A wildcard name: an authorization for the base name is not enough.
	revoke(holder, "dns:*.one.internal").wantProblem(t, http.StatusForbidden, "unauthorized")
	o, u = holder.newOrder("dns:*.one.internal")
	holder.solve(o, u, core.ChallengeDNS01)
	if r := revoke(holder, "dns:*.one.internal"); r.status != http.StatusOK {
		t.Fatalf("revocation of a wildcard certificate by the holder of the wildcard authorization: %d %s", r.status, r.body)
	}
	// Expired authorizations do not count.
	env.now.Advance(31 * 24 * time.Hour)
	revoke(holder, "dns:one.internal").wantProblem(t, http.StatusForbidden, "unauthorized")
}

// Authorizations held through one provisioner do not reach another's
// certificates: each has its own validation settings and policy.
func TestRevokeByAuthorizationHolderStaysInItsProvisioner(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.Provisioners = append(o.Provisioners, Provisioner{Name: "other", Validator: o.Provisioners[0].Validator})
	})
	owner, holder := env.newClient(t), env.newClient(t)
	owner.register()
	holder.dir = env.base + "/acme/other"
	holder.register()
	o, _ := owner.issue("dns:one.internal")
	der := owner.certDER(o)
	ho, hu := holder.newOrder("dns:one.internal")
	holder.solve(ho, hu, core.ChallengeHTTP01)
	p := holder.post(holder.dir+"/revoke-cert", revokeBody(der, intp(1))).wantProblem(t, http.StatusForbidden, "unauthorized")
	if !strings.Contains(p.Detail, "another provisioner") {
		t.Errorf("detail %q", p.Detail)
	}
}
