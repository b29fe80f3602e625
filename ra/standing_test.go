package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/eab"
)

// An account the operator deactivates on the CA (revoking its EAB key with
// deactivate_account) gets nothing more through an RA, whose local copy of
// the account still says valid: the CA refuses to sign.
func TestAccountDeactivatedOnTheCAThroughRA(t *testing.T) {
	e := newEnv(t, nil)
	r := e.enrolRA("site-a", "eab")
	ctx := context.Background()
	k, _ := eab.NewKey("eab", "team-a", time.Time{}, nil)
	if err := e.srv.Store().CreateEABKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	c := e.lego(r.base+"/acme/eab/directory", k.ID, eab.EncodeHMAC(k.HMACKey))
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"app.team-a.internal"}}); err != nil {
		t.Fatal(err)
	}
	v, err := (&admin.Service{Store: e.srv.Store()}).RevokeEAB(ctx, k.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if acct, err := e.srv.Store().GetAccount(ctx, v.BoundAccount); err != nil || acct.Status != core.StatusDeactivated {
		t.Fatalf("account on the CA: %+v %v", acct, err)
	}
	// Refused at newOrder already, as unauthorized (not as a policy
	// failure the client would retry).
	_, err = c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"app2.team-a.internal"}})
	if err == nil || !strings.Contains(err.Error(), "deactivated on the CA") || !strings.Contains(err.Error(), "new-order") ||
		!strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("obtain after the account was deactivated on the CA: %v", err)
	}
}

// After the operator revokes an EAB key and deactivates its account, the
// key holder (who still has the HMAC key and the account key) cannot bind
// again at another RA by presenting it as a retry of the first binding.
func TestRevokedKeyDoesNotRebindAtAnotherRA(t *testing.T) {
	e := newEnv(t, nil)
	a, b, c := e.enrolRA("site-a", "eab"), e.enrolRA("site-b", "eab"), e.enrolRA("site-c", "eab")
	ctx := context.Background()
	k, _ := eab.NewKey("eab", "team-a", time.Time{}, nil)
	if err := e.srv.Store().CreateEABKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	binding := &xacme.Account{ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: k.ID, Key: k.HMACKey}}
	ca := &xacme.Client{Key: key, DirectoryURL: a.base + "/acme/eab/directory", HTTPClient: e.httpClient()}
	if _, err := ca.Register(ctx, binding, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	// The same binding at the other RA is a retry, and answered as one.
	cb := &xacme.Client{Key: key, DirectoryURL: b.base + "/acme/eab/directory", HTTPClient: e.httpClient()}
	if _, err := cb.Register(ctx, binding, xacme.AcceptTOS); err != nil {
		t.Fatalf("the same binding again, before the revocation: %v", err)
	}
	if _, err := (&admin.Service{Store: e.srv.Store()}).RevokeEAB(ctx, k.ID, true); err != nil {
		t.Fatal(err)
	}
	cc := &xacme.Client{Key: key, DirectoryURL: c.base + "/acme/eab/directory", HTTPClient: e.httpClient()}
	acct, err := cc.Register(ctx, binding, xacme.AcceptTOS)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("binding again after revoke + deactivate: %+v %v", acct, err)
	}
}
