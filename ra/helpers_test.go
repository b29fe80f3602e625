package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/server"
)

// env is a CA started in-process on loopback (as `policyca init` and
// `policyca ca` would), with the DNS server and http-01 port the RAs of a
// test validate against.
type env struct {
	t        *testing.T
	cfg      *config.Config
	state    string
	addr     string
	srv      *server.Server
	root     *x509.Certificate
	stop     func()
	dns      *challtest.DNSServer
	httpPort int
}

func newEnv(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	e := &env{t: t, dns: challtest.NewDNSServer(t), httpPort: testutil.FreePort(t)}
	e.dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	e.addr = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	e.state = filepath.Join(t.TempDir(), "ca")
	res, err := bootstrap.Init(bootstrap.Options{StateDir: e.state, Listen: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Provisioners = append(cfg.Provisioners, config.Provisioner{Name: "eab", Type: "acme", RequireEAB: true,
		DefaultLifetime: cfg.Provisioners[0].DefaultLifetime, MaxLifetime: cfg.Provisioners[0].MaxLifetime,
		Validation: cfg.Provisioners[0].Validation})
	if err := admin.AddProvisionerToBundle(cfg.Path(cfg.Policy.Bundle), "eab"); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Write(res.Config); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	e.start()
	t.Cleanup(func() { e.stop() })
	return e
}

// start runs the CA (again, after stop) on the same address and state.
func (e *env) start() {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, e.cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", e.addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e.srv, e.root = srv, srv.Root()
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("CA serve: %v", err)
		}
		srv.Close()
	}
}

func (e *env) caURL() string { return "https://" + e.addr }

// token creates an enrolment token on the CA.
func (e *env) token(name string, provs ...string) string {
	e.t.Helper()
	tok, _, err := raapi.CreateToken(context.Background(), e.srv.Store(), raapi.TokenOptions{
		Name: name, Provisioners: provs, Known: []string{"acme", "eab"}, CAURL: e.caURL(), Root: e.root,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.String()
}

// raNode is an enrolled RA serving on loopback.
type raNode struct {
	node *ra.Node
	cfg  *ra.Config
	base string
}

// enrolRA enrols and starts an RA that validates against the env's DNS
// server and http-01 port.
func (e *env) enrolRA(name string, provs ...string) *raNode {
	e.t.Helper()
	return e.enrolRAWith(name, nil, provs...)
}

// enrolRAWith is enrolRA with a say in the enrolment options.
func (e *env) enrolRAWith(name string, mutate func(*ra.EnrollOptions), provs ...string) *raNode {
	t := e.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	eo := ra.EnrollOptions{
		Token: e.token(name, provs...), StateDir: filepath.Join(t.TempDir(), "ra-"+name), Listen: ln.Addr().String(),
		Validation: config.Validation{HTTP01Port: e.httpPort, TLSALPN01Port: 443, Resolvers: []string{e.dns.Addr()},
			Timeout: config.Duration(5 * time.Second)},
	}
	if mutate != nil {
		mutate(&eo)
	}
	cfg, err := ra.Enroll(context.Background(), eo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := ra.NewNode(ctx, cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("RA serve: %v", err)
		}
		n.Close()
	})
	return &raNode{node: n, cfg: cfg, base: cfg.BaseURL()}
}

func (e *env) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.root)
	return p
}

// lego returns a lego client for a directory, registered (with EAB if
// kid is set), solving http-01 on the env's port.
func (e *env) lego(dir, kid, hmac string) *lego.Client {
	t := e.t
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &testutil.LegoUser{Key: key}
	lc := lego.NewConfig(u)
	lc.CADirURL = dir
	lc.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool()}}}
	c, err := lego.NewClient(lc)
	if err != nil {
		t.Fatal(err)
	}
	var reg *registration.Resource
	if kid != "" {
		reg, err = c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: hmac})
	} else {
		reg, err = c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	u.Reg = reg
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(e.httpPort))); err != nil {
		t.Fatal(err)
	}
	return c
}
