package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	xacme "golang.org/x/crypto/acme"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/internal/pgtest"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/store/postgres"
)

// startNode starts `policyca ca --state state --listen listen`: one node of
// several sharing the state directory's configuration and database.
func startNode(t testing.TB, bin, state, listen string) *caProcess {
	t.Helper()
	return startCA(t, bin, state, "--listen", listen)
}

// kill is kill -9: no shutdown, requests in flight are cut off.
func (p *caProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// runCLI runs a policyca subcommand and returns its stdout.
func runCLI(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("policyca %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// responderProvider answers lego's http-01 challenges through the shared
// challtest responder, so lego and the x/crypto/acme clients use one port.
type responderProvider struct{ r *challtest.HTTP01Responder }

func (p responderProvider) Present(_, token, keyAuth string) error {
	p.r.Set(token, keyAuth)
	return nil
}
func (p responderProvider) CleanUp(_, token, _ string) error { p.r.Delete(token); return nil }

type legoAccount struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *legoAccount) GetEmail() string                        { return "" }
func (u *legoAccount) GetRegistration() *registration.Resource { return u.reg }
func (u *legoAccount) GetPrivateKey() crypto.PrivateKey        { return u.key }

// TestMultiNodePostgres runs shape 3 of DESIGN.md with the real binary: two
// `policyca ca` nodes on one PostgreSQL database behind a round-robin TCP
// proxy, one state directory. Requests of one client alternate between the
// nodes (a nonce from one is redeemed by the other), one node is killed
// with SIGKILL in the middle of a burst of issuances, and afterwards no
// certificate a client received is missing from the database, no order is
// stuck in processing, and the clients that retried got their certificates.
func TestMultiNodePostgres(t *testing.T) {
	start := time.Now()
	phase := func(name string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), name) }
	bin := policycaBinary(t)
	phase("binary built")
	dbURL := pgtest.StartCluster(t).CreateDatabase(t)
	proxy := newRRProxy(t)
	resp := challtest.NewHTTP01Responder(t, "127.0.0.1:0")
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	state := t.TempDir() + "/state"
	listenA, listenB := listenAddr(testutil.FreePort(t)), listenAddr(testutil.FreePort(t))
	external := fmt.Sprintf("https://127.0.0.1:%d", proxy.port())

	res := runInit(t, bin, state, listenA, "--db", dbURL, "--external-url", external,
		"--http01-port", fmt.Sprint(resp.Port()), "--resolver", dns.Addr())
	if want := external + "/acme/acme/directory"; res.DirectoryURL != want {
		t.Fatalf("directory URL %s, want %s (from --external-url)", res.DirectoryURL, want)
	}
	runCLI(t, bin, "provisioner", "add", "eab", "--require-eab", "--state", state, "--http01-port", fmt.Sprint(resp.Port()),
		"--resolver", dns.Addr())
	// A short stale_processing, so that the restarted node's recovery
	// sweep at start settles what the killed one left in processing; and
	// debug logs, where every refused request shows its problem type.
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.Driver != "postgres" {
		t.Fatalf("init --db wrote driver %q", cfg.Database.Driver)
	}
	cfg.StaleProcessing = config.Duration(3 * time.Second)
	cfg.Log.Level = "debug"
	if err := cfg.Write(res.Config); err != nil {
		t.Fatal(err)
	}
	var eabKey struct {
		KID  string `json:"kid"`
		HMAC string `json:"hmac"`
	}
	if err := json.Unmarshal(runCLI(t, bin, "eab", "add", "--state", state, "--provisioner", "eab", "--reference", "race", "--json"), &eabKey); err != nil {
		t.Fatal(err)
	}

	phase("initialised")
	pool, _ := rootPool(t, res.Root)
	nodeA := startNode(t, bin, state, listenA)
	nodeB := startNode(t, bin, state, listenB)
	waitHealthy(t, nodeA, httpsClient(pool), listenA)
	waitHealthy(t, nodeB, httpsClient(pool), listenB)
	proxy.start(listenA, listenB)
	phase("nodes healthy")
	// httpsClient opens a connection per request: the proxy then sends
	// consecutive requests of one client to alternate nodes.
	client := httpsClient(pool)
	getDirectory(t, client, res.DirectoryURL)

	// lego, through the proxy.
	legoKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &legoAccount{key: legoKey}
	lc := lego.NewConfig(u)
	lc.CADirURL = res.DirectoryURL
	lc.HTTPClient = client
	lcl, err := lego.NewClient(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := lcl.Challenge.SetHTTP01Provider(responderProvider{resp}); err != nil {
		t.Fatal(err)
	}
	if u.reg, err = lcl.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lego-1.internal", "lego-2.internal"} {
		if _, err := lcl.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{name}, Bundle: true}); err != nil {
			t.Fatalf("lego through two nodes: %v", err)
		}
	}
	if c := proxy.counts(); c[0] < 5 || c[1] < 5 {
		t.Fatalf("connections per node %v: requests did not alternate between the nodes", c)
	}
	for _, n := range []*caProcess{nodeA, nodeB} {
		if out := n.output.String(); strings.Contains(out, "badNonce") {
			t.Fatalf("a node refused a nonce issued by the other:\n%s", out)
		}
	}

	phase("lego done")
	// Two nodes racing on one EAB key: one account.
	hmacKey, err := base64.RawURLEncoding.DecodeString(eabKey.HMAC)
	if err != nil {
		t.Fatal(err)
	}
	eabDir := strings.Replace(res.DirectoryURL, "/acme/acme/", "/acme/eab/", 1)
	var bound, refused atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			xc := &xacme.Client{DirectoryURL: eabDir, HTTPClient: httpsClient(pool), Key: key}
			_, err := xc.Register(t.Context(), &xacme.Account{ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: eabKey.KID, Key: hmacKey}}, xacme.AcceptTOS)
			var ae *xacme.Error
			switch {
			case err == nil:
				bound.Add(1)
			case errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:unauthorized":
				refused.Add(1)
			default:
				t.Errorf("EAB race: %v", err)
			}
		})
	}
	wg.Wait()
	if bound.Load() != 1 || refused.Load() != 7 {
		t.Fatalf("EAB race over two nodes: %d accounts, %d refused; want 1 and 7", bound.Load(), refused.Load())
	}

	phase("EAB race done")
	// The burst, with node B killed once a quarter of it is issued.
	const orders, workers = 40, 8
	b := &burst{pool: pool, dir: res.DirectoryURL, resp: resp}
	names := make(chan string, orders)
	for i := range orders {
		names <- fmt.Sprintf("burst-%02d.internal", i)
	}
	close(names)
	var killOnce sync.Once
	var killedAt time.Time
	for range workers {
		wg.Go(func() {
			xc, err := b.client(t.Context())
			if err != nil {
				t.Errorf("account: %v", err)
				return
			}
			for name := range names {
				if err := b.issue(t.Context(), xc, name); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if b.issuedCount() >= orders/4 {
					killOnce.Do(func() {
						nodeB.kill()
						killedAt = time.Now()
					})
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if killedAt.IsZero() {
		t.Fatal("node B was never killed")
	}
	if got := b.issuedCount(); got != orders {
		t.Fatalf("%d certificates issued, want %d", got, orders)
	}

	phase("burst done")
	// Restart node B once whatever it left in processing is stale: its
	// recovery sweep at start settles those orders.
	time.Sleep(time.Until(killedAt.Add(time.Duration(cfg.StaleProcessing) + 500*time.Millisecond)))
	nodeB = startNode(t, bin, state, listenB)
	waitHealthy(t, nodeB, httpsClient(pool), listenB)

	phase("node B restarted")
	st, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	serials := map[string]bool{}
	for _, c := range b.received() {
		serial := c.SerialNumber.Text(16)
		if serials[serial] {
			t.Fatalf("serial %s handed out twice", serial)
		}
		serials[serial] = true
		stored, err := st.GetCertificateBySerial(ctx, serial)
		if err != nil {
			t.Fatalf("certificate %s (%v) received by a client is not in the database: %v", serial, c.DNSNames, err)
		}
		if !bytes.Equal(stored.DER, c.Raw) {
			t.Fatalf("certificate %s in the database differs from the one the client got", serial)
		}
	}
	if stale, err := st.ListStaleProcessingOrders(ctx, time.Now().Add(time.Hour)); err != nil || len(stale) != 0 {
		t.Fatalf("orders still processing after recovery: %d, %v", len(stale), err)
	}
	for _, id := range b.orderIDs() {
		o, err := st.GetOrder(ctx, id)
		if err != nil {
			t.Fatalf("order %s: %v", id, err)
		}
		switch o.Status {
		case core.StatusValid:
			if _, err := st.GetCertificate(ctx, o.CertificateID); err != nil {
				t.Fatalf("valid order %s has no certificate: %v", id, err)
			}
		case core.StatusPending, core.StatusReady, core.StatusInvalid:
		default:
			t.Fatalf("order %s is %s after recovery", id, o.Status)
		}
	}
	t.Logf("burst: %d certificates, %d orders (%d retried), connections per node %v", len(serials), len(b.orderIDs()), b.retries.Load(), proxy.counts())

	// The restarted node serves again.
	before := proxy.counts()[1]
	xc, err := b.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.issue(ctx, xc, "after-restart.internal"); err != nil {
		t.Fatal(err)
	}
	if proxy.counts()[1] == before {
		t.Fatal("the restarted node got no requests")
	}
}

// burst runs x/crypto/acme clients through the proxy and remembers every
// order they placed and every certificate they received.
type burst struct {
	pool    *x509.CertPool
	dir     string
	resp    *challtest.HTTP01Responder
	retries atomic.Int32

	mu     sync.Mutex
	orders []string
	certs  []*x509.Certificate
}

func (b *burst) client(ctx context.Context) (*xacme.Client, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	xc := &xacme.Client{DirectoryURL: b.dir, HTTPClient: httpsClient(b.pool), Key: key,
		// Retry 5xx quickly: a dead node's requests are retried by the
		// client through the proxy, which sends them to a live node.
		RetryBackoff: func(n int, _ *http.Request, _ *http.Response) time.Duration {
			if n > 5 {
				return -1
			}
			return 50 * time.Millisecond
		}}
	err := b.retry(func() error { _, err := xc.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); return err })
	if errors.Is(err, xacme.ErrAccountAlreadyExists) {
		err = nil // the first try was committed, its answer lost with the node
	}
	return xc, err
}

// retry repeats one ACME call cut off by the killed node (a reset
// connection is no HTTP answer, so the client library does not retry it).
func (b *burst) retry(f func() error) error {
	var err error
	for range 5 {
		if err = f(); err == nil {
			return nil
		}
		var ae *xacme.Error
		if errors.As(err, &ae) && ae.StatusCode < 500 {
			return err
		}
		b.retries.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func (b *burst) issuedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.certs)
}

func (b *burst) received() []*x509.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*x509.Certificate(nil), b.certs...)
}

func (b *burst) orderIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.orders...)
}

// issue gets a certificate for name, placing a new order when one is lost
// (e.g. left in processing by the killed node).
func (b *burst) issue(ctx context.Context, xc *xacme.Client, name string) error {
	var err error
	for range 4 {
		if err = b.tryOrder(ctx, xc, name); err == nil {
			return nil
		}
		b.retries.Add(1)
	}
	return err
}

func (b *burst) tryOrder(ctx context.Context, xc *xacme.Client, name string) error {
	var order *xacme.Order
	if err := b.retry(func() (err error) { order, err = xc.AuthorizeOrder(ctx, xacme.DomainIDs(name)); return err }); err != nil {
		return fmt.Errorf("newOrder: %w", err)
	}
	b.mu.Lock()
	b.orders = append(b.orders, path.Base(order.URI))
	b.mu.Unlock()
	for _, u := range order.AuthzURLs {
		var z *xacme.Authorization
		if err := b.retry(func() (err error) { z, err = xc.GetAuthorization(ctx, u); return err }); err != nil {
			return err
		}
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" || z.Status == xacme.StatusValid {
				continue
			}
			ka, err := xc.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return err
			}
			b.resp.Set(ch.Token, ka)
			if err := b.retry(func() error { _, err := xc.Accept(ctx, ch); return err }); err != nil {
				return fmt.Errorf("accept: %w", err)
			}
		}
		if err := b.retry(func() error { _, err := xc.WaitAuthorization(ctx, u); return err }); err != nil {
			return fmt.Errorf("authorization: %w", err)
		}
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	if err != nil {
		return err
	}
	ders, _, err := xc.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		// The answer may have been lost after the order completed: ask
		// another node what became of it.
		var o *xacme.Order
		if gerr := b.retry(func() (err error) { o, err = xc.GetOrder(ctx, order.URI); return err }); gerr != nil || o.Status != xacme.StatusValid {
			return fmt.Errorf("finalize: %w", err)
		}
		if err := b.retry(func() (err error) { ders, err = xc.FetchCert(ctx, o.CertURL, true); return err }); err != nil {
			return fmt.Errorf("fetch certificate: %w", err)
		}
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.certs = append(b.certs, leaf)
	b.mu.Unlock()
	return nil
}
