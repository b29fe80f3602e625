package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strconv"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/internal/challtest"
)

// BenchmarkIssuanceHTTP01 measures one complete issuance through the real
// HTTPS server, in-process: newOrder for one DNS name, http-01 validated by
// the CA against a real responder on loopback, finalize with a fresh P-256
// key, certificate download. SQLite with durable commits, zlint on.
//
//	go test -run '^$' -bench BenchmarkIssuanceHTTP01 -benchtime 200x ./server/
func BenchmarkIssuanceHTTP01(b *testing.B) {
	tc := startCABench(b)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: tc.dir, HTTPClient: tc.httpClient(), Key: key}
	if _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := issueHTTP01(ctx, tc, xc, "bench"+strconv.Itoa(i)+".internal"); err != nil {
			b.Fatal(err)
		}
	}
}

func startCABench(b *testing.B) *testCA {
	b.Helper()
	tc := startCA(b, nil)
	tc.resp = newHTTP01(b, tc)
	return tc
}

// issueHTTP01 runs one order answering http-01 with tc.resp, polling
// quickly instead of honouring Retry-After so that the benchmark measures
// the server, not client sleeps.
func issueHTTP01(ctx context.Context, tc *testCA, xc *xacme.Client, name string) error {
	order, err := xc.AuthorizeOrder(ctx, xacme.DomainIDs(name))
	if err != nil {
		return err
	}
	if err := solveHTTP01(ctx, tc, xc, order); err != nil {
		return err
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	if err != nil {
		return err
	}
	ders, _, err := xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return err
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name {
		return fmt.Errorf("certificate for %v, want %s", leaf.DNSNames, name)
	}
	return nil
}

// solveHTTP01 answers every authorization of order with http-01 through
// tc.resp and waits until they are valid.
func solveHTTP01(ctx context.Context, tc *testCA, xc *xacme.Client, order *xacme.Order) error {
	for _, u := range order.AuthzURLs {
		z, err := xc.GetAuthorization(ctx, u)
		if err != nil {
			return err
		}
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, err := xc.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return err
			}
			tc.resp.Set(ch.Token, ka)
			if _, err := xc.Accept(ctx, ch); err != nil {
				return err
			}
		}
		if err := pollAuthz(ctx, xc, u); err != nil {
			return err
		}
	}
	return nil
}

func newHTTP01(t testing.TB, tc *testCA) *challtest.HTTP01Responder {
	return challtest.NewHTTP01Responder(t, "127.0.0.1:"+strconv.Itoa(tc.httpPort))
}

func pollAuthz(ctx context.Context, xc *xacme.Client, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		z, err := xc.GetAuthorization(ctx, u)
		if err != nil {
			return err
		}
		switch z.Status {
		case xacme.StatusValid:
			return nil
		case xacme.StatusInvalid:
			return fmt.Errorf("authorization %s invalid", u)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("authorization %s not valid after 30s", u)
}
