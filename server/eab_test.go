package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/signer/soft"
)

// withEABProvisioner adds a provisioner "eab" that requires EAB, as
// `policyca provisioner add eab --require-eab` does (config and policy data).
func withEABProvisioner(c *config.Config) {
	p := c.Provisioners[0]
	p.Name = "eab"
	p.RequireEAB = true
	c.Provisioners = append(c.Provisioners, p)
	if err := admin.AddProvisionerToBundle(c.Path(c.Policy.Bundle), "eab"); err != nil {
		panic(err)
	}
}

func (tc *testCA) eabDir() string { return strings.Replace(tc.dir, "/acme/acme/", "/acme/eab/", 1) }

// adminClient talks to the admin API with the operator certificate init made.
func (tc *testCA) adminClient(t *testing.T) *admin.Client {
	t.Helper()
	state := filepath.Dir(tc.cfg.File())
	certs, err := pki.ReadPEMCerts(filepath.Join(state, "certs", "admin.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := soft.LoadKey(filepath.Join(state, "keys", "admin.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tc.adminClientWith(tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: key})
}

func (tc *testCA) adminClientWith(cert tls.Certificate) *admin.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.pool}}
	if cert.PrivateKey != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	return &admin.Client{BaseURL: strings.TrimSuffix(tc.dir, "/acme/acme/directory"), HTTPClient: &http.Client{Transport: tr}}
}

func TestEABWithLego(t *testing.T) {
	port := testutil.FreePort(t)
	tc := startCA(t, func(c *config.Config) {
		withEABProvisioner(c)
		c.Metrics = &config.Metrics{Listen: "127.0.0.1:" + strconv.Itoa(port)}
	})
	ctx := context.Background()
	ac := tc.adminClient(t)
	k, err := ac.AddEAB(ctx, admin.AddEABRequest{Provisioner: "eab", Reference: "web-17"})
	if err != nil {
		t.Fatal(err)
	}

	// The directory says EAB is required, and a client without it is refused.
	c := tc.legoClientAt(t, tc.eabDir())
	if !c.GetExternalAccountRequired() {
		t.Fatal("directory meta.externalAccountRequired is not true")
	}
	if _, err := c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err == nil || !strings.Contains(err.Error(), "externalAccountRequired") {
		t.Fatalf("registration without EAB: %v", err)
	}
	// A wrong HMAC is refused and creates nothing.
	wrong := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if _, err := c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: k.KID, HmacEncoded: wrong}); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("registration with a wrong HMAC: %v", err)
	}
	reg, err := c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: k.KID, HmacEncoded: k.HMAC})
	if err != nil {
		t.Fatal(err)
	}
	c.user.Reg = reg
	tc.useHTTP01(t, c.Client)
	res := obtain(t, c.Client, "web-17.eng.internal")
	tc.verifyChain(t, res.Certificate, "web-17.eng.internal")

	keys, err := ac.ListEAB(ctx, "eab")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].BoundAccount == "" || keys[0].BoundAt == nil {
		t.Fatalf("listing after binding: %+v", keys)
	}

	// The key binds once: another client with the same key is refused.
	c2 := tc.legoClientAt(t, tc.eabDir())
	if _, err := c2.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: k.KID, HmacEncoded: k.HMAC}); err == nil {
		t.Fatal("a bound key bound a second account")
	}
	// Revoking with --deactivate-account deactivates the bound account.
	if _, err := ac.RevokeEAB(ctx, k.KID, true); err != nil {
		t.Fatal(err)
	}
	acct, err := tc.srv.Store().GetAccount(ctx, keys[0].BoundAccount)
	if err != nil || acct.Status != core.StatusDeactivated {
		t.Fatalf("account after revoke --deactivate-account: %v %v", acct, err)
	}

	// The binding's store operations are counted: one account bound (the
	// wrong HMAC and the second binding were refused before any write).
	body := scrape(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics")
	for _, want := range []string{
		`policyca_store_operation_duration_seconds_count{op="create_account_bound",result="ok"} 1`,
		`policyca_store_operation_duration_seconds_count{op="get_eab_key",result="ok"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Twenty clients racing with one key id: exactly one account.
func TestEABRaceOneAccount(t *testing.T) {
	tc := startCA(t, withEABProvisioner)
	ctx := context.Background()
	k, err := tc.adminClient(t).AddEAB(ctx, admin.AddEABRequest{Provisioner: "eab", Reference: "race"})
	if err != nil {
		t.Fatal(err)
	}
	hmacKey, err := base64.RawURLEncoding.DecodeString(k.HMAC)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, refused int
	var other []error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			xc := &xacme.Client{DirectoryURL: tc.eabDir(), HTTPClient: tc.httpClient(), Key: key}
			_, err := xc.Register(ctx, &xacme.Account{ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: k.KID, Key: hmacKey}}, xacme.AcceptTOS)
			mu.Lock()
			defer mu.Unlock()
			var ae *xacme.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:unauthorized":
				refused++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != n-1 || len(other) != 0 {
		t.Fatalf("%d accounts, %d refused, other errors %v; want 1 and %d", ok, refused, other, n-1)
	}
}

func TestAdminAPIRequiresAdminCertificate(t *testing.T) {
	tc := startCA(t, withEABProvisioner)
	ctx := context.Background()
	// No client certificate.
	if _, err := tc.adminClientWith(tls.Certificate{}).ListEAB(ctx, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no client certificate: %v", err)
	}
	// A certificate issued over ACME (clientAuth EKU, chains to the CA's
	// root) is not an operator: the TLS handshake refuses it, since the
	// admin CA is a root of its own.
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res := obtainWithKey(t, c, leafKey, "operator.internal")
	leaf := tc.verifyChain(t, res.Certificate, "operator.internal")
	_, err := tc.adminClientWith(tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: leafKey}).ListEAB(ctx, "")
	if err == nil {
		t.Fatal("an ACME-issued certificate was accepted as an admin certificate")
	}
	// The admin certificate works, and listings never carry the secret.
	ac := tc.adminClient(t)
	k, err := ac.AddEAB(ctx, admin.AddEABRequest{Provisioner: "eab", Reference: "x", Policy: []byte(`{"allow":{"dns":[".eng.internal"]},"max_lifetime":"72h"}`)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ac.ListEAB(ctx, "")
	if err != nil || len(keys) != 1 || keys[0].PolicySummary != "1 allow, 0 deny, max 72h" {
		t.Fatalf("list: %+v %v", keys, err)
	}
	if strings.Contains(string(mustJSON(t, keys)), k.HMAC) {
		t.Fatal("the HMAC key appears in a listing")
	}
	// Bad input is a 400 naming the problem; unknown provisioner too.
	if _, err := ac.AddEAB(ctx, admin.AddEABRequest{Provisioner: "eab", Reference: "x", Policy: []byte(`{"alow":{}}`)}); !errors.Is(err, admin.ErrInvalid) || !strings.Contains(err.Error(), "alow") {
		t.Fatalf("typo in policy: %v", err)
	}
	if _, err := ac.AddEAB(ctx, admin.AddEABRequest{Provisioner: "nope", Reference: "x"}); !errors.Is(err, admin.ErrInvalid) {
		t.Fatalf("unknown provisioner: %v", err)
	}
	if _, err := ac.RevokeEAB(ctx, "kid-unknown", false); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("unknown kid: %v", err)
	}
}

type legoClientAt struct {
	*lego.Client
	user *testutil.LegoUser
}

// legoClientAt is a lego client for a directory, not yet registered.
func (tc *testCA) legoClientAt(t *testing.T, dir string) legoClientAt {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &testutil.LegoUser{Key: key}
	lc := lego.NewConfig(u)
	lc.CADirURL = dir
	lc.HTTPClient = tc.httpClient()
	c, err := lego.NewClient(lc)
	if err != nil {
		t.Fatal(err)
	}
	return legoClientAt{c, u}
}

func obtainWithKey(t *testing.T, c *lego.Client, key crypto.PrivateKey, names ...string) *certificate.Resource {
	t.Helper()
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: names, PrivateKey: key, Bundle: true})
	if err != nil {
		t.Fatalf("obtain %v: %v", names, err)
	}
	return res
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
