package capolicy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/policy"
)

func TestCheckSign(t *testing.T) {
	e, err := policy.NewEngine(policy.EngineConfig{Path: "../../policies/rego", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dns   string
		allow bool
	}{
		{"internal name allowed", "a.internal", true},
		{"public name refused", "www.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: tt.dns}, DNSNames: []string{tt.dns}}, k)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			req := core.SignRequest{CSR: der, Provisioner: "acme", AccountID: "a1", Identifiers: []core.Identifier{{Type: core.DNS, Value: tt.dns}}}
			d, err := New(e).CheckSign(context.Background(), req, csr)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow || d.Revision != "default-1" || d.DecisionID == "" || d.Lifetime <= 0 || (d.Reason == "") == !tt.allow {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}
