package raapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store/sqlite"
)

// countingSigner counts the signatures of the RA CA's key.
type countingSigner struct {
	crypto.Signer
	n atomic.Int32
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, o crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, digest, o)
}

// Only a token that can enrol makes the RA CA sign: a wrong secret, a used
// or an expired token is refused before anything is signed.
func TestEnrolmentRefusedBeforeSigning(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ra.db"), sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	caKey := fuzzKey(t)
	clientCA, err := pki.NewRoot(caKey, pkix.Name{CommonName: "RA client CA"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signer := &countingSigner{Signer: caKey}
	h, err := NewHandler(Options{Store: st, Authority: fuzzAuthority{clientCA}, Binder: fuzzBinder{},
		ClientCA: clientCA, ClientCASigner: signer, Provisioners: map[string]ProvisionerInfo{"acme": {Name: "acme"}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tok := range []*core.RAToken{
		{ID: "live", RAName: "ra1", Provisioners: []string{"acme"}, SecretHash: HashSecret("s3cret"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{ID: "old", RAName: "ra2", Provisioners: []string{"acme"}, SecretHash: HashSecret("s3cret"), CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
	} {
		if err := st.CreateRAToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, fuzzKey(t))
	if err != nil {
		t.Fatal(err)
	}
	enrol := func(id, secret string) int {
		body, _ := json.Marshal(EnrollRequest{TokenID: id, Secret: secret, CSR: csr})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Prefix+"/enroll", bytes.NewReader(body)))
		return w.Code
	}
	for _, c := range []struct{ name, id, secret string }{
		{"wrong secret", "live", "guess"}, {"expired", "old", "s3cret"}, {"unknown", "nope", "s3cret"},
	} {
		if code := enrol(c.id, c.secret); code == http.StatusOK || signer.n.Load() != 0 {
			t.Fatalf("%s: status %d, %d signatures", c.name, code, signer.n.Load())
		}
	}
	if code := enrol("live", "s3cret"); code != http.StatusOK || signer.n.Load() != 1 {
		t.Fatalf("enrolment: status %d, %d signatures", code, signer.n.Load())
	}
	if code := enrol("live", "s3cret"); code == http.StatusOK || signer.n.Load() != 1 {
		t.Fatalf("used token: status %d, %d signatures", code, signer.n.Load())
	}
}

func TestSuperseded(t *testing.T) {
	enrolled := time.Date(2026, 11, 29, 6, 0, 0, 123456000, time.UTC)
	ra := &core.RA{Name: "site-a", EnrolledAt: enrolled, CertSerial: "abc"}
	cert := func(mark string, notBefore time.Time) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore,
			Subject: pkix.Name{CommonName: "site-a", SerialNumber: mark}}
	}
	// What pki.IssueClient puts in a certificate issued at t.
	issuedAt := func(t time.Time) time.Time { return t.Add(-pki.Backdate).Truncate(time.Second) }
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"current enrolment", cert(enrolmentMark(enrolled), issuedAt(enrolled)), true},
		{"current enrolment, a certificate a renewal replaced", cert(enrolmentMark(enrolled), issuedAt(enrolled.Add(time.Hour))), true},
		{"earlier enrolment", cert(enrolmentMark(enrolled.Add(-time.Hour)), issuedAt(enrolled.Add(-time.Hour))), false},
		{"earlier enrolment, renewed since", cert(enrolmentMark(enrolled.Add(-time.Hour)), issuedAt(enrolled.Add(time.Hour))), false},
		{"a microsecond apart", cert(enrolmentMark(enrolled.Add(time.Microsecond)), issuedAt(enrolled)), false},
		// Certificates from before marks existed.
		{"no mark, issued at the enrolment", cert("", issuedAt(enrolled)), true},
		{"no mark, renewed since", cert("", issuedAt(enrolled.Add(48*time.Hour))), true},
		{"no mark, from an earlier enrolment", cert("", issuedAt(enrolled.Add(-2*time.Minute))), false},
	} {
		if why := superseded(c.cert, ra); (why == "") != c.ok {
			t.Errorf("%s: superseded = %q", c.name, why)
		}
	}
}
