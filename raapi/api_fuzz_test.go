package raapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store/sqlite"
)

// fuzzAuthority stands in for the CA: it refuses what does not parse as a
// CSR and knows no certificate to revoke.
type fuzzAuthority struct{ issuer *x509.Certificate }

func (a fuzzAuthority) Sign(_ context.Context, req core.SignRequest) (*core.Certificate, error) {
	if _, err := x509.ParseCertificateRequest(req.CSR); err != nil {
		return nil, core.Errorf(core.KindBadCSR, "CSR does not parse")
	}
	return &core.Certificate{Serial: "01", OrderID: req.OrderID, AccountID: req.AccountID, Provisioner: req.Provisioner}, nil
}

func (fuzzAuthority) Revoke(context.Context, string, int) error {
	return core.Errorf(core.KindNotFound, "no such certificate")
}

func (a fuzzAuthority) Issuer() *x509.Certificate { return a.issuer }

// fuzzBinder refuses every binding, as a binding the fuzzer could make
// valid would need the EAB key's HMAC.
type fuzzBinder struct{}

func (fuzzBinder) CreateBoundAccount(context.Context, *core.Account, []byte, *jose.JSONWebKey, string) error {
	return core.Errorf(core.KindMalformed, "binding refused")
}

func fuzzKey(tb testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// FuzzAPI sends fuzzed bodies to every POST endpoint of the RA API, as an
// enrolled RA (over its verified client certificate) and, for enrolment,
// as anyone: whatever the body, the answer is a success or an error body
// whose kind matches the HTTP status, never a server error.
func FuzzAPI(f *testing.F) {
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "ra.db"), sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	caKey := fuzzKey(f)
	clientCA, err := pki.NewRoot(caKey, pkix.Name{CommonName: "RA client CA"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	h, err := NewHandler(Options{
		Store: st, Authority: fuzzAuthority{clientCA}, Binder: fuzzBinder{},
		ClientCA: clientCA, ClientCASigner: caKey,
		Provisioners: map[string]ProvisionerInfo{"acme": {Name: "acme"}},
	})
	if err != nil {
		f.Fatal(err)
	}

	// Enrol one RA through the API, for the client certificate that the
	// other endpoints require.
	ctx := context.Background()
	tok := &core.RAToken{ID: "tok", RAName: "ra1", Provisioners: []string{"acme"}, SecretHash: HashSecret("s3cret"),
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.CreateRAToken(ctx, tok); err != nil {
		f.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, fuzzKey(f))
	if err != nil {
		f.Fatal(err)
	}
	body, _ := json.Marshal(EnrollRequest{TokenID: "tok", Secret: "s3cret", CSR: csr})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Prefix+"/enroll", bytes.NewReader(body)))
	var cc ClientCertResponse
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &cc) != nil {
		f.Fatalf("enrol: %d %s", w.Code, w.Body)
	}
	chain, err := pki.ParsePEMCerts(cc.ChainPEM)
	if err != nil || len(chain) == 0 {
		f.Fatalf("enrolment chain: %v", err)
	}
	verified := &tls.ConnectionState{PeerCertificates: chain[:1], VerifiedChains: [][]*x509.Certificate{{chain[0], clientCA}}}

	paths := []string{"/enroll", "/renew", "/listener-cert", "/sign", "/revoke", "/eab/bind"}
	seeds := [][]byte{
		body, []byte(`{}`), []byte(``), []byte(`null`), []byte(`[]`), []byte(`{"csr":"AAAA"}`),
		mustJSON(f, RenewRequest{CSR: csr}), mustJSON(f, ListenerCertRequest{CSR: csr, Provisioner: "acme"}),
		[]byte(`{"csr":"","order_id":"o","account_id":"a","provisioner":"acme","identifiers":[{"type":"dns","value":"a.internal"}],` +
			`"evidence":[{"identifier":{"type":"dns","value":"a.internal"},"challenge":"http-01","validated":"2026-01-01T00:00:00Z"}]}`),
		[]byte(`{"serial":"01","reason":1}`), []byte(`{"serial":"zz","reason":99}`),
		[]byte(`{"account":{"id":"a","provisioner":"acme"},"binding":{},"outer_key_jwk":{},"url":"https://ra/acme/acme/new-account"}`),
	}
	for i := range paths {
		for _, s := range seeds {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		path := Prefix + paths[int(endpoint)%len(paths)]
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.TLS = verified
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 400 {
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%s: server error %d: %s", path, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: Content-Type %q for status %d", path, ct, w.Code)
		}
		var eb ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s: error body %s: %v", path, w.Body, err)
		}
		if eb.Error.Kind == "" || eb.Error.Detail == "" || statusOf(eb.Error.Kind) != w.Code {
			t.Fatalf("%s: status %d with error %+v", path, w.Code, eb.Error)
		}
	})
}

func mustJSON(tb testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
