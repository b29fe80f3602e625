package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseKeySpec(t *testing.T) {
	tests := []struct {
		in   string
		want KeySpec
		ok   bool
	}{
		{"ecdsa-p256", ECDSAP256, true},
		{" ECDSA-P384 ", ECDSAP384, true},
		{"rsa-2048", RSA2048, true},
		{"rsa-3072", RSA3072, true},
		{"rsa-4096", RSA4096, true},
		{"rsa-1024", "", false},
		{"ed25519", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseKeySpec(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseKeySpec(%q) = %q, %v", tc.in, got, err)
			}
			if err != nil && !strings.Contains(err.Error(), "ecdsa-p256") {
				t.Errorf("error %q does not list the valid specs", err)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		spec  KeySpec
		check func(crypto.PublicKey) bool
	}{
		{ECDSAP256, func(p crypto.PublicKey) bool {
			k, ok := p.(*ecdsa.PublicKey)
			return ok && k.Curve.Params().Name == "P-256"
		}},
		{ECDSAP384, func(p crypto.PublicKey) bool {
			k, ok := p.(*ecdsa.PublicKey)
			return ok && k.Curve.Params().Name == "P-384"
		}},
		{RSA2048, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 }},
	}
	for _, tc := range tests {
		t.Run(string(tc.spec), func(t *testing.T) {
			k, err := GenerateKey(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(k.Public()) {
				t.Fatalf("wrong key %T", k.Public())
			}
		})
	}
	if _, err := GenerateKey("dsa-1024"); err == nil {
		t.Fatal("GenerateKey accepted an unknown spec")
	}
}

type tree struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newTree(t *testing.T, spec KeySpec) *tree {
	t.Helper()
	rk, err := GenerateKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	root, err := NewRoot(rk, pkix.Name{CommonName: "policyca root", Organization: []string{"Example"}}, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(root, rk, ik.Public(), pkix.Name{CommonName: "policyca intermediate"}, 5*365*24*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &tree{root: root, inter: inter, rootKey: rk, interKey: ik}
}

func verify(t *testing.T, tr *tree, leaf *x509.Certificate, eku x509.ExtKeyUsage, dns string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(tr.root)
	inters := x509.NewCertPool()
	inters.AddCert(tr.inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{eku}, DNSName: dns}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestHierarchy(t *testing.T) {
	for _, spec := range []KeySpec{ECDSAP256, ECDSAP384, RSA2048} {
		t.Run(string(spec), func(t *testing.T) {
			tr := newTree(t, spec)
			r, i := tr.root, tr.inter
			if !r.IsCA || !r.BasicConstraintsValid || r.MaxPathLen != -1 || r.MaxPathLenZero {
				t.Errorf("root basic constraints: CA=%v pathlen=%d zero=%v", r.IsCA, r.MaxPathLen, r.MaxPathLenZero)
			}
			if !i.IsCA || i.MaxPathLen != 0 || !i.MaxPathLenZero {
				t.Errorf("intermediate should have pathlen 0: %d %v", i.MaxPathLen, i.MaxPathLenZero)
			}
			for _, c := range []*x509.Certificate{r, i} {
				if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
					t.Errorf("%s key usage %v", c.Subject.CommonName, c.KeyUsage)
				}
				if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
					t.Errorf("serial %x", c.SerialNumber)
				}
			}
			if want, _ := SubjectKeyID(r.PublicKey); !bytes.Equal(r.SubjectKeyId, want) {
				t.Error("root SKI")
			}
			if !bytes.Equal(i.AuthorityKeyId, r.SubjectKeyId) {
				t.Error("intermediate AKI is not the root's SKI")
			}
			if err := i.CheckSignatureFrom(r); err != nil {
				t.Fatal(err)
			}

			lk, err := GenerateKey(ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := IssueTLSServer(i, tr.interKey, lk.Public(), []string{"ca.internal", "localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 90*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			verify(t, tr, srv, x509.ExtKeyUsageServerAuth, "ca.internal")
			if srv.Subject.CommonName != "ca.internal" || srv.IsCA || !slices.Equal(srv.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("server cert: CN %q CA %v EKU %v", srv.Subject.CommonName, srv.IsCA, srv.ExtKeyUsage)
			}
			if srv.KeyUsage != x509.KeyUsageDigitalSignature || !bytes.Equal(srv.AuthorityKeyId, i.SubjectKeyId) {
				t.Errorf("server cert KU %v / AKI", srv.KeyUsage)
			}

			cli, err := IssueClient(i, tr.interKey, lk.Public(), pkix.Name{CommonName: "ra-office"}, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			verify(t, tr, cli, x509.ExtKeyUsageClientAuth, "")
			if cli.Subject.CommonName != "ra-office" || !slices.Equal(cli.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("client cert: CN %q EKU %v", cli.Subject.CommonName, cli.ExtKeyUsage)
			}
			// A client certificate must not work as a server certificate.
			roots := x509.NewCertPool()
			roots.AddCert(tr.root)
			inters := x509.NewCertPool()
			inters.AddCert(tr.inter)
			if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters}); err == nil {
				t.Error("client certificate verified for serverAuth")
			}
		})
	}
}

func TestRSALeafKeyUsage(t *testing.T) {
	tr := newTree(t, ECDSAP256)
	rk, err := GenerateKey(RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	c, err := IssueTLSServer(tr.inter, tr.interKey, rk.Public(), []string{"x.internal"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Fatalf("RSA leaf key usage %v", c.KeyUsage)
	}
}

func TestIssuanceErrors(t *testing.T) {
	tr := newTree(t, ECDSAP256)
	other := newTree(t, ECDSAP256)
	lk, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := IssueTLSServer(tr.inter, tr.interKey, lk.Public(), []string{"x.internal"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"root without CN", func() error { _, err := NewRoot(tr.rootKey, pkix.Name{}, time.Hour); return err }, "CommonName"},
		{"root zero validity", func() error { _, err := NewRoot(tr.rootKey, pkix.Name{CommonName: "r"}, 0); return err }, "positive"},
		{"root nil signer", func() error { _, err := NewRoot(nil, pkix.Name{CommonName: "r"}, time.Hour); return err }, "nil signer"},
		{"intermediate outlives root", func() error {
			_, err := NewIntermediate(tr.root, tr.rootKey, lk.Public(), pkix.Name{CommonName: "i"}, 20*365*24*time.Hour, 0)
			return err
		}, "after its issuer"},
		{"wrong issuer key", func() error {
			_, err := NewIntermediate(tr.root, other.rootKey, lk.Public(), pkix.Name{CommonName: "i"}, time.Hour, 0)
			return err
		}, "does not hold"},
		{"leaf as issuer", func() error {
			_, err := IssueClient(leaf, lk, lk.Public(), pkix.Name{CommonName: "c"}, time.Hour)
			return err
		}, "not a CA"},
		{"server without names", func() error {
			_, err := IssueTLSServer(tr.inter, tr.interKey, lk.Public(), nil, nil, time.Hour)
			return err
		}, "at least one"},
		{"client without CN", func() error {
			_, err := IssueClient(tr.inter, tr.interKey, lk.Public(), pkix.Name{}, time.Hour)
			return err
		}, "CommonName"},
		{"unsupported public key", func() error {
			_, err := IssueClient(tr.inter, tr.interKey, "not a key", pkix.Name{CommonName: "c"}, time.Hour)
			return err
		}, "unsupported public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPEMFiles(t *testing.T) {
	tr := newTree(t, ECDSAP256)
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "chain.pem")
	if err := WritePEMCert(p, tr.inter, tr.root); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	got, err := ReadPEMCerts(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(tr.inter) || !got[1].Equal(tr.root) {
		t.Fatalf("read back %d certificates in the wrong order", len(got))
	}
	// Overwriting a certificate file is allowed (renewal of the TLS cert).
	if err := WritePEMCert(p, tr.root); err != nil {
		t.Fatal(err)
	}

	bad := map[string]string{
		"empty":    "",
		"key":      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"garbage":  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"trailing": string(EncodePEMCerts(tr.root)) + "junk",
	}
	tests := []struct {
		name, want string
	}{
		{"empty", "no certificates"},
		{"key", "unexpected PEM block"},
		{"garbage", "parse certificate 1"},
		{"trailing", "trailing data"},
		{"missing", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.name+".pem")
			if c, ok := bad[tc.name]; ok {
				if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ReadPEMCerts(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if err := WritePEMCert(filepath.Join(dir, "none.pem")); err == nil {
		t.Error("WritePEMCert with no certificates succeeded")
	}
}

func TestRandomSerial(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, err := RandomSerial()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Fatalf("serial %x out of range", s)
		}
		if seen[s.String()] {
			t.Fatal("duplicate serial")
		}
		seen[s.String()] = true
	}
}
