package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/registration"
	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/core"
)

// A newOrder the policy refuses is a rejectedIdentifier problem with one
// subproblem per refused identifier, whose detail is the policy's reason.
func TestPolicyRefusesOrderWithSubproblems(t *testing.T) {
	tc := startCA(t, nil)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: key}
	if _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	_, err := xc.AuthorizeOrder(ctx, []xacme.AuthzID{
		{Type: "dns", Value: "ok.internal"}, {Type: "dns", Value: "www.example.com"}, {Type: "ip", Value: "8.8.8.8"},
	})
	var ae *xacme.Error
	if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:rejectedIdentifier" || ae.StatusCode != 400 {
		t.Fatalf("newOrder: %v, want a rejectedIdentifier problem", err)
	}
	if len(ae.Subproblems) != 2 {
		t.Fatalf("subproblems %+v, want one per refused identifier (2)", ae.Subproblems)
	}
	got := map[string]string{}
	for _, sp := range ae.Subproblems {
		if sp.Identifier == nil || sp.Type != "urn:ietf:params:acme:error:rejectedIdentifier" {
			t.Fatalf("subproblem %+v", sp)
		}
		got[sp.Identifier.Value] = sp.Detail
	}
	if !strings.Contains(got["www.example.com"], "www.example.com") || !strings.Contains(got["www.example.com"], "authority") {
		t.Errorf("detail for www.example.com: %q", got["www.example.com"])
	}
	if !strings.Contains(got["8.8.8.8"], "8.8.8.8") {
		t.Errorf("detail for 8.8.8.8: %q", got["8.8.8.8"])
	}
	// The refusal is in the decision log.
	ds, err := tc.srv.Store().ListDecisions(ctx, core.DecisionFilter{DeniedOnly: true})
	if err != nil || len(ds) != 1 || ds[0].Stage != "order" || len(ds[0].Violations) != 2 {
		t.Fatalf("decision log: %+v %v", ds, err)
	}
}

// The bundle changes between the order and the finalize: the CA's own
// sign-time decision refuses, and nothing is signed.
func TestPolicySignStageRefusesAfterBundleChange(t *testing.T) {
	tc := startCA(t, nil)
	tc.resp = newHTTP01(t, tc)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: key}
	if _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	const name = "soon-denied.internal"
	order, err := xc.AuthorizeOrder(ctx, xacme.DomainIDs(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := solveHTTP01(ctx, tc, xc, order); err != nil {
		t.Fatal(err)
	}
	// The operator denies the name; the CA picks the bundle up.
	tc.editPolicyData(t, func(d map[string]any) {
		auth := d["policyca"].(map[string]any)["authority"].(map[string]any)
		auth["deny"] = map[string]any{"dns": []string{name}}
	})
	if err := tc.srv.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	_, _, err = xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	var ae *xacme.Error
	if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:rejectedIdentifier" {
		t.Fatalf("finalize after the bundle changed: %v, want rejectedIdentifier", err)
	}
	ds, err := tc.srv.Store().ListDecisions(ctx, core.DecisionFilter{DeniedOnly: true})
	if err != nil || len(ds) != 1 || ds[0].Stage != "sign" {
		t.Fatalf("decision log: %+v %v", ds, err)
	}
	o, err := xc.GetOrder(ctx, order.URI)
	if err != nil || o.Status != xacme.StatusInvalid || o.CertURL != "" {
		t.Fatalf("order after the refusal: %+v %v", o, err)
	}
}

// The lifetime a policy layer caps is the certificate's; the certificate
// record names the sign-time decision and the bundle revision.
func TestPolicyLifetimeCapAndCertificateRecord(t *testing.T) {
	tc := startCA(t, nil)
	tc.editPolicyData(t, func(d map[string]any) {
		d["policyca"].(map[string]any)["provisioners"].(map[string]any)["acme"] = map[string]any{"max_lifetime": "6h"}
	})
	if err := tc.srv.ReloadPolicy(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"short.internal"}, Bundle: true, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.verifyChain(t, res.Certificate, "short.internal")
	// The cap bounds the whole validity period, backdating included.
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 6*time.Hour || d < 6*time.Hour-2*time.Minute {
		t.Fatalf("lifetime %v, want the policy's 6h", d)
	}
	rec, err := tc.srv.Store().GetCertificateBySerial(context.Background(), leaf.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	if rec.DecisionID == "" || rec.PolicyRevision == "" {
		t.Fatalf("certificate record does not name its decision: %+v", rec)
	}
	ds, err := tc.srv.Store().ListDecisions(context.Background(), core.DecisionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range ds {
		found = found || (d.ID == rec.DecisionID && d.Stage == "sign" && d.Allow && d.Revision == rec.PolicyRevision)
	}
	if !found {
		t.Fatalf("decision %s not in the log as an allowed sign decision", rec.DecisionID)
	}
}

// An EAB-bound account with its own name rules: an order inside them is
// issued, one outside is refused with the account layer named, and the
// decision log shows the account layer's verdict.
func TestPolicyAccountLayerFromEAB(t *testing.T) {
	tc := startCA(t, withEABProvisioner)
	ctx := context.Background()
	k, err := tc.adminClient(t).AddEAB(ctx, admin.AddEABRequest{
		Provisioner: "eab", Reference: "web-17",
		Policy: json.RawMessage(`{"allow": {"dns": [".web-17.internal"]}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := tc.legoClientAt(t, tc.eabDir())
	reg, err := c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: k.KID, HmacEncoded: k.HMAC})
	if err != nil {
		t.Fatal(err)
	}
	c.user.Reg = reg
	tc.useHTTP01(t, c.Client)
	res := obtain(t, c.Client, "a.web-17.internal")
	tc.verifyChain(t, res.Certificate, "a.web-17.internal")

	_, err = c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"db.internal"}})
	if err == nil || !strings.Contains(err.Error(), "rejectedIdentifier") || !strings.Contains(err.Error(), "account") {
		t.Fatalf("order outside the account policy: %v, want rejectedIdentifier naming the account layer", err)
	}
	ds, err := tc.srv.Store().ListDecisions(ctx, core.DecisionFilter{DeniedOnly: true})
	if err != nil || len(ds) != 1 {
		t.Fatalf("decision log: %+v %v", ds, err)
	}
	if len(ds[0].Violations) != 1 || ds[0].Violations[0].Layer != "account" || ds[0].Violations[0].Value != "db.internal" {
		t.Fatalf("violations %+v, want the account layer refusing db.internal", ds[0].Violations)
	}
}

// editPolicyData rewrites the state's policy bundle data.json.
func (tc *testCA) editPolicyData(t *testing.T, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(tc.cfg.Path(tc.cfg.Policy.Bundle), "data.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	edit(d)
	if b, err = json.Marshal(d); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
