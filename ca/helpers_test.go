package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store"
)

// fakeStore is an in-memory Store. dupFailures makes the next N
// PutCertificate calls fail with ErrDuplicateSerial.
type fakeStore struct {
	mu          sync.Mutex
	certs       map[string]*core.Certificate
	dupFailures int
	puts        int
	// listing, if set, is called by ListRevoked before it reads.
	listing func()
}

func newFakeStore() *fakeStore { return &fakeStore{certs: map[string]*core.Certificate{}} }

func (s *fakeStore) PutCertificate(_ context.Context, c *core.Certificate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.dupFailures > 0 {
		s.dupFailures--
		return store.ErrDuplicateSerial
	}
	if old, ok := s.certs[c.Serial]; ok && old.ID != c.ID {
		return store.ErrDuplicateSerial
	}
	cp := *c
	s.certs[c.Serial] = &cp
	return nil
}

func (s *fakeStore) GetCertificateBySerial(_ context.Context, serial string) (*core.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[serial]
	if !ok {
		return nil, store.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

func (s *fakeStore) RevokeCertificate(_ context.Context, serial string, reason int, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[serial]
	if !ok {
		return store.ErrNotFound
	}
	if !c.RevokedAt.IsZero() {
		return store.ErrAlreadyRevoked
	}
	c.RevokedAt, c.RevocationReason = at, reason
	return nil
}

func (s *fakeStore) ListRevoked(_ context.Context, at time.Time) ([]*core.Certificate, error) {
	if s.listing != nil {
		s.listing()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*core.Certificate
	for _, c := range s.certs {
		if !c.RevokedAt.IsZero() && c.NotAfter.After(at) {
			cp := *c
			out = append(out, &cp)
		}
	}
	return out, nil
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.certs)
}

// hierarchy is a root and an intermediate made with package pki, as
// `policyca init` makes them.
type hierarchy struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newHierarchy(t testing.TB, spec pki.KeySpec) *hierarchy {
	t.Helper()
	rk, err := pki.GenerateKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.NewRoot(rk, pkix.Name{CommonName: "Test Root"}, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := pki.GenerateKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewIntermediate(root, rk, ik.Public(), pkix.Name{CommonName: "Test Intermediate"}, 5*365*24*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &hierarchy{root: root, inter: inter, rootKey: rk, interKey: ik}
}

var (
	sharedHierOnce sync.Once
	sharedHier     *hierarchy
)

// testHierarchy is shared by tests that do not care about the issuer's
// key, to keep the suite fast under -race.
func testHierarchy(t testing.TB) *hierarchy {
	t.Helper()
	sharedHierOnce.Do(func() { sharedHier = newHierarchy(t, pki.ECDSAP256) })
	return sharedHier
}

// fixedNow is a whole second so that certificate times compare exactly.
var fixedNow = time.Now().UTC().Truncate(time.Second)

func newTestCA(t testing.TB, edit func(*Options)) (*CA, *fakeStore) {
	t.Helper()
	h := testHierarchy(t)
	st := newFakeStore()
	o := Options{
		Signer: h.interKey,
		Issuer: h.inter,
		Chain:  nil,
		Store:  st,
		Lint:   true,
		Now:    func() time.Time { return fixedNow },
	}
	if edit != nil {
		edit(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, st
}

func mustKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustJWK(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	b, err := jose.JSONWebKey{Key: pub}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeCSR signs a CSR with key for the given CN and SANs.
func makeCSR(t testing.TB, key crypto.Signer, cn string, dns []string, ips []net.IP) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dns,
		IPAddresses: ips,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func dnsIDs(names ...string) []core.Identifier {
	out := make([]core.Identifier, len(names))
	for i, n := range names {
		out[i] = core.Identifier{Type: core.DNS, Value: n}
	}
	return out
}

// request builds a valid sign request for the names with a fresh
// certificate key and a distinct account key.
func request(t testing.TB, names ...string) core.SignRequest {
	t.Helper()
	return core.SignRequest{
		CSR:           makeCSR(t, mustKey(t), "", names, nil),
		OrderID:       "order-1",
		AccountID:     "acct-1",
		Provisioner:   "acme",
		Identifiers:   dnsIDs(names...),
		AccountKeyJWK: mustJWK(t, mustKey(t).Public()),
	}
}

func wantKind(t testing.TB, err error, kind core.ErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	var e *core.Error
	if !asCoreError(err, &e) {
		t.Fatalf("got %T %v, want *core.Error of kind %s", err, err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("got kind %s (%v), want %s", e.Kind, err, kind)
	}
}

func asCoreError(err error, target **core.Error) bool {
	e, ok := err.(*core.Error)
	if ok {
		*target = e
	}
	return ok
}

func mustEd25519Pub(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
