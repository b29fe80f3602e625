package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/challenge/tlsalpn01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/internal/testutil"
)

// testCA is a CA node started in-process on loopback, as `policyca init`
// followed by `policyca ca` would start it.
type testCA struct {
	dir      string // ACME directory URL
	root     *x509.Certificate
	pool     *x509.CertPool
	srv      *Server
	cfg      *config.Config
	dns      *challtest.DNSServer
	httpPort int
	alpnPort int
	resp     *challtest.HTTP01Responder // set by tests that answer http-01 themselves
}

func startCA(t testing.TB, mutate func(*config.Config)) *testCA {
	t.Helper()
	return startCAWith(t, nil, mutate)
}

// startCAWith is startCA with a say in how the state is initialised.
func startCAWith(t testing.TB, initOpts func(*bootstrap.Options), mutate func(*config.Config)) *testCA {
	t.Helper()
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	tc := &testCA{dns: dns, httpPort: testutil.FreePort(t), alpnPort: testutil.FreePort(t)}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	o := bootstrap.Options{
		StateDir:      state,
		Listen:        ln.Addr().String(),
		HTTP01Port:    tc.httpPort,
		TLSALPN01Port: tc.alpnPort,
		Resolvers:     []string{dns.Addr()},
	}
	if initOpts != nil {
		initOpts(&o)
	}
	res, err := bootstrap.Init(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
		// Operator commands read the file: keep it what the node runs.
		if err := cfg.Write(res.Config); err != nil {
			t.Fatal(err)
		}
	}
	tc.cfg = cfg
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	tc.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	tc.root = srv.Root()
	tc.pool = x509.NewCertPool()
	tc.pool.AddCert(tc.root)
	tc.dir = res.DirectoryURL
	return tc
}

func (tc *testCA) httpClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.pool}},
	}
}

// legoClient registers a new account with lego and sets up all three
// challenge solvers against the test CA's ports and DNS server.
func (tc *testCA) legoClient(t *testing.T) (*lego.Client, *testutil.LegoUser) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &testutil.LegoUser{Key: key}
	lc := lego.NewConfig(u)
	lc.CADirURL = tc.dir
	lc.HTTPClient = tc.httpClient()
	c, err := lego.NewClient(lc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	u.Reg = reg
	return c, u
}

func (tc *testCA) useHTTP01(t *testing.T, c *lego.Client) {
	t.Helper()
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(tc.httpPort))); err != nil {
		t.Fatal(err)
	}
}

func (tc *testCA) useTLSALPN01(t *testing.T, c *lego.Client) {
	t.Helper()
	if err := c.Challenge.SetTLSALPN01Provider(tlsalpn01.NewProviderServer("127.0.0.1", strconv.Itoa(tc.alpnPort))); err != nil {
		t.Fatal(err)
	}
}

func (tc *testCA) useDNS01(t *testing.T, c *lego.Client) {
	t.Helper()
	err := c.Challenge.SetDNS01Provider(&challtest.LegoDNSProvider{S: tc.dns},
		dns01.AddRecursiveNameservers([]string{tc.dns.Addr()}),
		dns01.WrapPreCheck(func(_, _, _ string, _ dns01.PreCheckFunc) (bool, error) { return true, nil }))
	if err != nil {
		t.Fatal(err)
	}
}

// verifyChain checks a PEM chain from the CA against its root for a name.
func (tc *testCA) verifyChain(t *testing.T, chainPEM []byte, name string) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: tc.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip, err := netip.ParseAddr(name); err == nil {
		opts.DNSName = ip.String()
	} else {
		opts.DNSName = name
	}
	if _, err := certs[0].Verify(opts); err != nil {
		t.Fatalf("chain does not verify for %s: %v", name, err)
	}
	return certs[0]
}

func obtain(t *testing.T, c *lego.Client, names ...string) *certificate.Resource {
	t.Helper()
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: names, Bundle: true})
	if err != nil {
		t.Fatalf("obtain %v: %v", names, err)
	}
	return res
}
