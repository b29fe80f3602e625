package ra_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/signer"
)

// clientCert loads a client certificate and key from files.
func clientCert(t *testing.T, certPath, keyURI string) *tls.Certificate {
	t.Helper()
	chain, err := pki.ReadPEMCerts(certPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signer.Open(context.Background(), keyURI)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// raw is an mTLS client that speaks the RA API directly, as a compromised
// RA could, with whatever certificate it is given (nil: none).
func (e *env) raw(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// call sends one API request and returns the status and refusal, if any.
func (e *env) call(hc *http.Client, method, path string, body any) (int, *core.Error) {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, e.caURL()+raapi.Prefix+path, rd)
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var eb raapi.ErrorBody
	if resp.StatusCode >= 300 {
		json.NewDecoder(resp.Body).Decode(&eb)
	}
	return resp.StatusCode, eb.Error
}

func raCert(t *testing.T, cfg *ra.Config) *tls.Certificate {
	return clientCert(t, cfg.Path(cfg.ClientCert), cfg.KeyURI(cfg.ClientKey))
}

// signReq is a well-formed sign request for names, with an account key and
// evidence for every name.
func signReq(t *testing.T, prov, account string, names ...string) raapi.SignRequest {
	t.Helper()
	acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, err := jws.MarshalJWK(&jose.JSONWebKey{Key: &acctKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, k)
	if err != nil {
		t.Fatal(err)
	}
	r := raapi.SignRequest{CSR: csr, OrderID: "order-" + account, AccountID: account, Provisioner: prov, AccountKeyJWK: jwk}
	for _, n := range names {
		id := core.Identifier{Type: core.DNS, Value: n}
		r.Identifiers = append(r.Identifiers, id)
		r.Evidence = append(r.Evidence, raapi.Evidence{Identifier: id, Challenge: core.ChallengeHTTP01, Validated: time.Now()})
	}
	return r
}

func TestRAAPIRefusals(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme")
	ok := e.raw(raCert(t, r.cfg))
	if st, perr := e.call(ok, "GET", "/config", nil); st != http.StatusOK {
		t.Fatalf("enrolled RA: %d %v", st, perr)
	}

	t.Run("NoClientCertificate", func(t *testing.T) {
		st, perr := e.call(e.raw(nil), "POST", "/sign", signReq(t, "acme", "a1", "x.site-a.internal"))
		if st != http.StatusUnauthorized || perr == nil || perr.Kind != core.KindUnauthorized {
			t.Fatalf("got %d %v, want 401 unauthorized", st, perr)
		}
	})
	t.Run("CertificateFromAnotherCA", func(t *testing.T) {
		// The admin CA is in the listener's pool too: its certificates
		// pass the TLS handshake and must still not act as an RA.
		admin := clientCert(t, filepath.Join(e.state, "certs", "admin.pem"), "file:"+filepath.Join(e.state, "keys", "admin.key"))
		st, perr := e.call(e.raw(admin), "GET", "/config", nil)
		if st != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "not an RA certificate") {
			t.Fatalf("got %d %v, want 403 not an RA certificate", st, perr)
		}
	})
	t.Run("ProvisionerNotAssigned", func(t *testing.T) {
		for _, call := range []struct {
			path string
			body any
		}{
			{"/sign", signReq(t, "eab", "a2", "x.site-a.internal")},
			{"/eab/bind", raapi.BindRequest{Account: raapi.BindAccount{Provisioner: "eab"}}},
			{"/listener-cert", raapi.ListenerCertRequest{Provisioner: "eab"}},
		} {
			st, perr := e.call(ok, "POST", call.path, call.body)
			if st != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "not assigned") {
				t.Fatalf("%s: got %d %v, want 403 not assigned", call.path, st, perr)
			}
		}
	})
	t.Run("DisabledRA", func(t *testing.T) {
		ctx := context.Background()
		if _, err := raapi.SetDisabled(ctx, e.srv.Store(), "site-a", true); err != nil {
			t.Fatal(err)
		}
		// The same kept-alive client and still-valid certificate.
		st, perr := e.call(ok, "GET", "/config", nil)
		if st != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "disabled") {
			t.Fatalf("disabled RA: got %d %v, want 403 disabled", st, perr)
		}
		if err := r.node.Client().Revoke(ctx, "01", 0); !core.IsKind(err, core.KindUnauthorized) {
			t.Fatalf("disabled RA's client: %v, want unauthorized", err)
		}
		if _, err := raapi.SetDisabled(ctx, e.srv.Store(), "site-a", false); err != nil {
			t.Fatal(err)
		}
		if st, perr := e.call(ok, "GET", "/config", nil); st != http.StatusOK {
			t.Fatalf("enabled again: %d %v", st, perr)
		}
	})
	t.Run("ReplayedToken", func(t *testing.T) {
		tok := e.token("site-b", "acme")
		enrol := func() error {
			_, err := ra.Enroll(context.Background(), ra.EnrollOptions{Token: tok, StateDir: filepath.Join(t.TempDir(), "ra"), Listen: "127.0.0.1:1"})
			return err
		}
		if err := enrol(); err != nil {
			t.Fatalf("first enrolment: %v", err)
		}
		if err := enrol(); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("replayed token: %v, want refused", err)
		}
	})
	t.Run("WrongRootPinned", func(t *testing.T) {
		tok, _ := raapi.ParseToken(e.token("site-c", "acme"))
		tok.RootSHA256 = raapi.Fingerprint([]byte("another root"))
		_, err := ra.Enroll(context.Background(), ra.EnrollOptions{Token: tok.String(), StateDir: filepath.Join(t.TempDir(), "ra"), Listen: "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), "pinned") {
			t.Fatalf("enrolment against an unpinned root: %v", err)
		}
	})
}

// TestMaliciousRA is a compromised RA with a valid certificate: the CA's
// own policy and records decide, and every refusal is logged naming the RA.
func TestMaliciousRA(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme", "eab")
	hc := e.raw(raCert(t, r.cfg))
	ctx := context.Background()
	st := e.srv.Store()
	denied := func(what string) *core.DecisionRecord {
		t.Helper()
		ds, err := st.ListDecisions(ctx, core.DecisionFilter{DeniedOnly: true, Limit: 1})
		if err != nil || len(ds) != 1 || ds[0].RA != "site-a" || ds[0].Stage != core.StageSign {
			t.Fatalf("%s: no denied sign decision naming the RA: %+v, %v", what, ds, err)
		}
		return ds[0]
	}

	t.Run("NameThePolicyDenies", func(t *testing.T) {
		code, perr := e.call(hc, "POST", "/sign", signReq(t, "acme", "acct-1", "www.example.com"))
		if code == http.StatusOK || perr == nil || perr.Kind != core.KindRejectedIdentifier {
			t.Fatalf("got %d %v, want rejectedIdentifier", code, perr)
		}
		d := denied("public name")
		if len(d.Identifiers) != 1 || d.Identifiers[0].Value != "www.example.com" {
			t.Fatalf("decision: %+v", d)
		}
	})
	t.Run("ClaimedEABKey", func(t *testing.T) {
		req := signReq(t, "acme", "acct-2", "x.site-a.internal")
		req.EABKeyID = "kid-forged"
		code, perr := e.call(hc, "POST", "/sign", req)
		if code != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "kid-forged") {
			t.Fatalf("got %d %v, want refused", code, perr)
		}
		if d := denied("forged EAB key"); !strings.Contains(d.Error, "RA claim refused") {
			t.Fatalf("decision: %+v", d)
		}
	})
	t.Run("ClaimedAccountPolicy", func(t *testing.T) {
		// An EAB-bound account whose policy allows .team.internal only.
		k, _ := eab.NewKey("eab", "team", time.Time{}, []byte(`{"allow":{"dns":[".team.internal"]}}`))
		if err := st.CreateEABKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		acct := &core.Account{ID: "acct-3", Provisioner: "eab", KeyThumbprint: "tp-3", KeyJWK: []byte("{}"), Status: core.StatusValid}
		if err := st.CreateAccountBound(ctx, acct, k.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		req := signReq(t, "eab", "acct-3", "db.other.internal")
		req.EABKeyID = k.ID
		req.AccountPolicy = json.RawMessage(`{"allow":{"dns":[".internal"]}}`)
		code, perr := e.call(hc, "POST", "/sign", req)
		if code != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "account policy") {
			t.Fatalf("got %d %v, want refused", code, perr)
		}
		if d := denied("forged account policy"); !strings.Contains(d.Error, "RA claim refused") {
			t.Fatalf("decision: %+v", d)
		}
		// Claiming the true policy gets the request to the sign-time
		// policy, which applies the account layer from the CA's store.
		req.AccountPolicy = json.RawMessage(k.Policy)
		code, perr = e.call(hc, "POST", "/sign", req)
		if perr == nil || perr.Kind != core.KindRejectedIdentifier {
			t.Fatalf("true claims, name outside the account policy: %d %v, want rejectedIdentifier", code, perr)
		}
		denied("account layer")
	})
	t.Run("UnknownAccountWhereEABRequired", func(t *testing.T) {
		// Every account of an EAB provisioner was bound through the CA; an
		// account id the CA does not know would escape the account layer.
		code, perr := e.call(hc, "POST", "/sign", signReq(t, "eab", "acct-ghost", "db.other.internal"))
		if code != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "requires external account binding") {
			t.Fatalf("got %d %v, want refused", code, perr)
		}
		if d := denied("unknown account on an EAB provisioner"); !strings.Contains(d.Error, "RA claim refused") {
			t.Fatalf("decision: %+v", d)
		}
	})
	t.Run("DeactivatedAccount", func(t *testing.T) {
		acct := &core.Account{ID: "acct-gone", Provisioner: "acme", KeyThumbprint: "tp-gone", KeyJWK: []byte("{}"),
			Status: core.StatusValid}
		if err := st.CreateAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
		acct.Status = core.StatusDeactivated
		if err := st.UpdateAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
		code, perr := e.call(hc, "POST", "/sign", signReq(t, "acme", "acct-gone", "x.site-a.internal"))
		if code != http.StatusForbidden || perr == nil || !strings.Contains(perr.Detail, "deactivated on the CA") {
			t.Fatalf("got %d %v, want refused", code, perr)
		}
		denied("deactivated account")
	})
	t.Run("NoEvidence", func(t *testing.T) {
		req := signReq(t, "acme", "acct-4", "x.site-a.internal")
		req.Evidence = nil
		if code, perr := e.call(hc, "POST", "/sign", req); perr == nil || perr.Kind != core.KindMalformed {
			t.Fatalf("got %d %v, want malformed", code, perr)
		}
	})
}

// A retried sign request (the RA lost the CA's answer) returns the
// certificate already issued for the order instead of a second one; a
// request with another key for the same order is a new issuance.
func TestSignRetryIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-r", "acme")
	hc := e.raw(raCert(t, r.cfg))
	req := signReq(t, "acme", "acct-retry", "retry.site-r.internal")
	sign := func(req raapi.SignRequest) raapi.Certificate {
		t.Helper()
		b, _ := json.Marshal(req)
		resp, err := hc.Post(e.caURL()+raapi.Prefix+"/sign", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign: %s", resp.Status)
		}
		var c raapi.Certificate
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, again := sign(req), sign(req)
	if first.Serial == "" || again.Serial != first.Serial {
		t.Fatalf("retry gave serial %q, first %q: want the same certificate", again.Serial, first.Serial)
	}
	certs, err := e.srv.Store().GetCertificatesByOrder(context.Background(), req.OrderID)
	if err != nil || len(certs) != 1 {
		t.Fatalf("certificates of the order: %d %v, want exactly 1", len(certs), err)
	}
	other := signReq(t, "acme", "acct-retry", "retry.site-r.internal")
	if third := sign(other); third.Serial == first.Serial {
		t.Fatal("a new key for the same order got the old certificate")
	}
	// Same order, account and key, other names: not a retry. The answer
	// is a certificate for the names asked for, never the old one.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forNames := func(name string) raapi.SignRequest {
		r := signReq(t, "acme", "acct-names", name)
		var err error
		if r.CSR, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := sign(forNames("a.site-r.internal")), sign(forNames("b.site-r.internal"))
	if b.Serial == a.Serial || len(b.Names) != 1 || b.Names[0].Value != "b.site-r.internal" {
		t.Fatalf("same order and key, other names: got %s %v after %s", b.Serial, b.Names, a.Serial)
	}
}

// RAs are handed the bundle in force, as the CA read it: not what is on the
// CA's disk now (a change not loaded yet, or one the CA refused).
func TestRAsGetTheBundleInForce(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "acme")
	hc := e.raw(raCert(t, r.cfg))
	get := func() []byte {
		t.Helper()
		resp, err := hc.Get(e.caURL() + raapi.Prefix + "/policy/bundle")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("bundle: %s %v", resp.Status, err)
		}
		return b
	}
	before := get()
	dir := e.cfg.Path(e.cfg.Policy.Bundle)
	inForce, err := policy.NewEngine(policy.EngineConfig{Path: dir, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A broken file on the CA's disk, which the CA has not loaded (and
	// would refuse).
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package policyca\n\nx := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := get(); !bytes.Equal(after, before) {
		t.Fatal("the bundle handed to RAs changed with a file the CA has not loaded")
	}
	// What was handed out is a bundle that loads, with the revision in force.
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(file, before, 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := policy.NewEngine(policy.EngineConfig{Path: file, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if eng.Revision() != inForce.Revision() {
		t.Fatalf("revision %q, the CA's %q", eng.Revision(), inForce.Revision())
	}
}
