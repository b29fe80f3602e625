package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/sqlite"
)

// testProv is the provisioner every test environment serves.
const testProv = "internal"

// fakeValidator records what it is asked to validate and answers with
// result (nil: success). When gate is set, every validation waits for it to
// be closed, so tests can make validations finish together.
type fakeValidator struct {
	mu     sync.Mutex
	calls  []core.ChallengeInput
	result func(core.ChallengeInput) error
	gate   chan struct{}
}

func (v *fakeValidator) Validate(ctx context.Context, in core.ChallengeInput) error {
	v.mu.Lock()
	v.calls = append(v.calls, in)
	result, gate := v.result, v.gate
	v.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return core.Errorf(core.KindConnection, "timed out")
		}
	}
	if result != nil {
		return result(in)
	}
	return nil
}

func (v *fakeValidator) Calls() []core.ChallengeInput {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]core.ChallengeInput(nil), v.calls...)
}

// fakeAuthority is a throwaway CA that signs with crypto/x509 directly and
// stores what it signs, as the real CA does.
type fakeAuthority struct {
	store   store.Store
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	signs   atomic.Int64
	signErr error
	// requests records the last SignRequest.
	mu       sync.Mutex
	requests []core.SignRequest
}

func newFakeAuthority(t testing.TB, st store.Store) *fakeAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "policyca test issuer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAuthority{store: st, key: key, cert: cert}
}

func (a *fakeAuthority) Issuer() *x509.Certificate { return a.cert }

func (a *fakeAuthority) Sign(ctx context.Context, req core.SignRequest) (*core.Certificate, error) {
	a.signs.Add(1)
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	if a.signErr != nil {
		return nil, a.signErr
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, core.Errorf(core.KindBadCSR, "cannot parse CSR")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	serial.Add(serial, big.NewInt(1))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(12 * time.Hour),
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})...)
	c := &core.Certificate{
		ID:          core.NewID(),
		Serial:      serial.Text(16),
		AccountID:   req.AccountID,
		OrderID:     req.OrderID,
		Provisioner: req.Provisioner,
		DER:         der,
		ChainPEM:    chain,
		NotBefore:   tmpl.NotBefore.UTC().Truncate(time.Second),
		NotAfter:    tmpl.NotAfter.UTC().Truncate(time.Second),
		Names:       req.Identifiers,
		CreatedAt:   now.UTC(),
	}
	if err := a.store.PutCertificate(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (a *fakeAuthority) Revoke(ctx context.Context, serial string, reason int) error {
	err := a.store.RevokeCertificate(ctx, serial, reason, time.Now())
	switch {
	case errors.Is(err, store.ErrAlreadyRevoked):
		return core.Errorf(core.KindAlreadyRevoked, "already revoked")
	case errors.Is(err, store.ErrNotFound):
		return core.Errorf(core.KindNotFound, "no such certificate")
	}
	return err
}

// fakePolicy refuses the identifiers in deny, one subproblem each.
type fakePolicy struct{ deny map[string]bool }

func (p *fakePolicy) CheckOrder(_ context.Context, _ string, _ *core.Account, ids []core.Identifier) error {
	var subs []*core.Error
	for _, id := range ids {
		if p.deny[id.Value] {
			id := id
			subs = append(subs, &core.Error{Kind: core.KindRejectedIdentifier, Detail: "refused by rule test", Identifier: &id})
		}
	}
	if len(subs) == 0 {
		return nil
	}
	return &core.Error{Kind: core.KindRejectedIdentifier, Detail: "policy refused identifiers", Subproblems: subs}
}

// testEnv is a running ACME server on a loopback TLS listener, backed by a
// real SQLite store in a temporary directory.
type testEnv struct {
	srv       *Server
	ts        *httptest.Server
	store     store.Store
	authority *fakeAuthority
	validator *fakeValidator
	base      string
	now       *testClock
}

// testClock is a settable clock for expiry tests.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func openTestStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acme.db"), sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv starts a server; mutate adjusts the options before NewServer.
func newEnv(t testing.TB, mutate ...func(*Options)) *testEnv {
	t.Helper()
	st := openTestStore(t)
	env := &testEnv{store: st, authority: newFakeAuthority(t, st), validator: &fakeValidator{}, now: &testClock{}}
	env.ts = httptest.NewUnstartedServer(nil)
	env.base = "https://" + env.ts.Listener.Addr().String()
	nonces, err := nonce.NewMemory(4096)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		BaseURL:      env.base,
		Provisioners: []Provisioner{{Name: testProv, Validator: env.validator}},
		Store:        st,
		Authority:    env.authority,
		Nonces:       nonces,
		Logger:       discardLogger(),
		Now:          env.now.Now,
	}
	for _, m := range mutate {
		m(&o)
	}
	env.srv, err = NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	env.ts.Config.Handler = env.srv.Handler()
	env.ts.StartTLS()
	t.Cleanup(func() {
		env.ts.Close()
		env.srv.Close()
	})
	return env
}

// noValidationWait makes challenge requests answer "processing" at once,
// for tests that hold validations at a gate.
func noValidationWait(o *Options) { o.ValidationWait = -1 }

// url returns the absolute URL of a path under the test provisioner.
func (e *testEnv) url(path string) string { return e.base + "/acme/" + testProv + path }

func (e *testEnv) httpClient() *http.Client { return e.ts.Client() }

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
