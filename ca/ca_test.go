package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
)

func verifyChain(t *testing.T, h *hierarchy, leaf *x509.Certificate, at time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(h.root)
	inters := x509.NewCertPool()
	inters.AddCert(h.inter)
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			t.Fatalf("verify for EKU %v: %v", eku, err)
		}
	}
}

func TestSignIssuesAndStores(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 60) + ".internal" // 69 characters: too long for a CN
	tests := []struct {
		name    string
		key     crypto.Signer
		ids     []core.Identifier
		csrCN   string
		wantCN  string
		wantKU  x509.KeyUsage
		wantDNS []string
		wantIPs []string
	}{
		{name: "ECDSA, internal names", key: mustKey(t), ids: dnsIDs("web.internal", "*.apps.lan"), wantCN: "web.internal",
			wantKU: x509.KeyUsageDigitalSignature, wantDNS: []string{"web.internal", "*.apps.lan"}},
		{name: "RSA gets keyEncipherment", key: sharedRSAKey(t), ids: dnsIDs("db.home.arpa"), csrCN: "db.home.arpa", wantCN: "db.home.arpa",
			wantKU: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, wantDNS: []string{"db.home.arpa"}},
		{name: "Ed25519, localhost", key: edKey, ids: dnsIDs("localhost"), wantCN: "localhost",
			wantKU: x509.KeyUsageDigitalSignature, wantDNS: []string{"localhost"}},
		{name: "private IPs only, no CN", key: mustKey(t),
			ids:    []core.Identifier{{Type: core.IP, Value: "10.1.2.3"}, {Type: core.IP, Value: "fd00::1"}, {Type: core.IP, Value: "127.0.0.1"}},
			wantKU: x509.KeyUsageDigitalSignature, wantIPs: []string{"10.1.2.3", "fd00::1", "127.0.0.1"}},
		{name: "long first name is not the CN", key: mustKey(t), ids: dnsIDs(long, "short.internal"), wantCN: "short.internal",
			wantKU: x509.KeyUsageDigitalSignature, wantDNS: []string{long, "short.internal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newTestCA(t, func(o *Options) { o.CRLURL = "http://ca.internal/crl" })
			var dns []string
			var ips []net.IP
			for _, id := range tc.ids {
				if id.Type == core.DNS {
					dns = append(dns, id.Value)
				} else {
					ips = append(ips, net.ParseIP(id.Value))
				}
			}
			req := core.SignRequest{
				CSR: makeCSR(t, tc.key, tc.csrCN, dns, ips), OrderID: "o1", AccountID: "a1", Provisioner: "acme",
				Identifiers: tc.ids, AccountKeyJWK: mustJWK(t, mustKey(t).Public()),
			}
			rec, err := c.Sign(context.Background(), req)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			// Time-ordered, as every object ID (core.NewID).
			if len(rec.ID) != core.IDLen {
				t.Errorf("certificate ID %q: length %d, want core.NewID's %d", rec.ID, len(rec.ID), core.IDLen)
			}
			leaf, err := x509.ParseCertificate(rec.DER)
			if err != nil {
				t.Fatal(err)
			}
			h := testHierarchy(t)
			verifyChain(t, h, leaf, fixedNow)

			if got := leaf.Subject.CommonName; got != tc.wantCN {
				t.Errorf("CN = %q, want %q", got, tc.wantCN)
			}
			if !slices.Equal(leaf.DNSNames, tc.wantDNS) {
				t.Errorf("DNS SANs = %v, want %v", leaf.DNSNames, tc.wantDNS)
			}
			var gotIPs []string
			for _, ip := range leaf.IPAddresses {
				gotIPs = append(gotIPs, ip.String())
			}
			if !slices.Equal(gotIPs, tc.wantIPs) {
				t.Errorf("IP SANs = %v, want %v", gotIPs, tc.wantIPs)
			}
			if leaf.KeyUsage != tc.wantKU {
				t.Errorf("KeyUsage = %v, want %v", leaf.KeyUsage, tc.wantKU)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			if !leaf.BasicConstraintsValid || leaf.IsCA {
				t.Error("want BasicConstraints CA:false")
			}
			if !bytes.Equal(leaf.AuthorityKeyId, h.inter.SubjectKeyId) {
				t.Error("AKI is not the issuer's SKI")
			}
			if want, _ := pki.SubjectKeyID(tc.key.Public()); !bytes.Equal(leaf.SubjectKeyId, want) {
				t.Error("SKI is not the key's RFC 7093 identifier")
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %x is not a positive 128-bit number", leaf.SerialNumber)
			}
			// 24h in all, backdating included.
			if !leaf.NotBefore.Equal(fixedNow.Add(-time.Minute)) || !leaf.NotAfter.Equal(fixedNow.Add(24*time.Hour-time.Minute)) {
				t.Errorf("validity %s – %s, want now-1m – now+23h59m", leaf.NotBefore, leaf.NotAfter)
			}
			if !slices.Equal(leaf.CRLDistributionPoints, []string{"http://ca.internal/crl"}) {
				t.Errorf("CRL DP = %v", leaf.CRLDistributionPoints)
			}

			// The record, as stored and as returned.
			if rec.Serial != leaf.SerialNumber.Text(16) || rec.ID == "" || rec.OrderID != "o1" || rec.AccountID != "a1" || rec.Provisioner != "acme" {
				t.Errorf("record fields wrong: %+v", rec)
			}
			stored, err := st.GetCertificateBySerial(context.Background(), rec.Serial)
			if err != nil {
				t.Fatalf("certificate not stored: %v", err)
			}
			if !bytes.Equal(stored.DER, rec.DER) {
				t.Error("stored DER differs from returned DER")
			}
			chain, err := pki.ParsePEMCerts(rec.ChainPEM)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 || !chain[0].Equal(leaf) || !chain[1].Equal(h.inter) {
				t.Errorf("ChainPEM should be leaf + intermediate, got %d certificates", len(chain))
			}
		})
	}
}

type policyFunc func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error)

func (f policyFunc) CheckSign(ctx context.Context, r core.SignRequest, c *x509.CertificateRequest) (Decision, error) {
	return f(ctx, r, c)
}

func TestSignLifetime(t *testing.T) {
	h := testHierarchy(t)
	allowFor := func(d time.Duration) SignPolicy {
		return policyFunc(func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error) {
			return Decision{Allow: true, Lifetime: d, Revision: "rev-7", DecisionID: "dec-1"}, nil
		})
	}
	prof := map[string]Profile{"acme": {DefaultLifetime: 24 * time.Hour, MaxLifetime: 72 * time.Hour}}
	tests := []struct {
		name          string
		profiles      map[string]Profile
		policy        SignPolicy
		notBefore     time.Time
		notAfter      time.Time
		wantNotBefore time.Time
		wantNotAfter  time.Time
		kind          core.ErrorKind
	}{
		// Every limit bounds notAfter − notBefore, the minute of
		// backdating included: with the default profile (24h, at most
		// 24h) that is now+23h59m.
		{name: "default", wantNotAfter: fixedNow.Add(24*time.Hour - time.Minute)},
		{name: "profile default", profiles: map[string]Profile{"acme": {DefaultLifetime: 6 * time.Hour}}, wantNotAfter: fixedNow.Add(6*time.Hour - time.Minute)},
		{name: "requested within max", profiles: prof, notAfter: fixedNow.Add(48 * time.Hour), wantNotAfter: fixedNow.Add(48 * time.Hour)},
		{name: "requested beyond max is capped", profiles: prof, notAfter: fixedNow.Add(1000 * time.Hour), wantNotAfter: fixedNow.Add(72*time.Hour - time.Minute)},
		{name: "requested shorter", profiles: prof, notAfter: fixedNow.Add(time.Hour), wantNotAfter: fixedNow.Add(time.Hour)},
		{name: "policy caps", profiles: prof, policy: allowFor(2 * time.Hour), notAfter: fixedNow.Add(48 * time.Hour), wantNotAfter: fixedNow.Add(2*time.Hour - time.Minute)},
		{name: "policy cap equal to the request", profiles: prof, policy: allowFor(time.Hour), notAfter: fixedNow.Add(time.Hour), wantNotAfter: fixedNow.Add(time.Hour - time.Minute)},
		// A cap no longer than the backdate: backdating takes half of it.
		{name: "policy cap of a minute", profiles: prof, policy: allowFor(time.Minute),
			wantNotBefore: fixedNow.Add(-30 * time.Second), wantNotAfter: fixedNow.Add(30 * time.Second)},
		{name: "profile as short as the backdate", profiles: map[string]Profile{"acme": {DefaultLifetime: time.Minute}},
			wantNotBefore: fixedNow.Add(-30 * time.Second), wantNotAfter: fixedNow.Add(30 * time.Second)},
		{name: "policy cap above request", profiles: prof, policy: allowFor(100 * time.Hour), wantNotAfter: fixedNow.Add(24 * time.Hour)},
		{name: "future notBefore", profiles: prof, notBefore: fixedNow.Add(10 * time.Hour),
			wantNotBefore: fixedNow.Add(10*time.Hour - time.Minute), wantNotAfter: fixedNow.Add(34 * time.Hour)},
		{name: "past notBefore is not honoured", notBefore: fixedNow.Add(-10 * time.Hour), wantNotAfter: fixedNow.Add(24*time.Hour - time.Minute)},
		{name: "capped at issuer expiry", profiles: map[string]Profile{"acme": {MaxLifetime: 100 * 365 * 24 * time.Hour}},
			notAfter: fixedNow.Add(50 * 365 * 24 * time.Hour), wantNotAfter: h.inter.NotAfter},
		{name: "notAfter in the past", notAfter: fixedNow.Add(-time.Hour), kind: core.KindMalformed},
		// Capped at the issuer's notAfter, the period would end before it starts.
		{name: "notBefore after issuer expiry", profiles: map[string]Profile{"acme": {MaxLifetime: 100 * 365 * 24 * time.Hour}},
			notBefore: h.inter.NotAfter.Add(time.Hour), kind: core.KindMalformed},
		{name: "notBefore too far ahead", profiles: prof, notBefore: fixedNow.Add(100 * time.Hour), kind: core.KindMalformed},
		{name: "unknown provisioner", profiles: map[string]Profile{"other": {}}, kind: core.KindUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newTestCA(t, func(o *Options) { o.Profiles, o.Policy, o.Lint = tc.profiles, tc.policy, false })
			req := request(t, "app.internal")
			req.NotBefore, req.NotAfter = tc.notBefore, tc.notAfter
			rec, err := c.Sign(context.Background(), req)
			if tc.kind != "" {
				wantKind(t, err, tc.kind)
				if st.count() != 0 {
					t.Fatal("a refused request was stored")
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			wantNB := tc.wantNotBefore
			if wantNB.IsZero() {
				wantNB = fixedNow.Add(-time.Minute)
			}
			if !rec.NotBefore.Equal(wantNB) || !rec.NotAfter.Equal(tc.wantNotAfter) {
				t.Errorf("validity %s – %s, want %s – %s", rec.NotBefore, rec.NotAfter, wantNB, tc.wantNotAfter)
			}
			if tc.policy != nil && (rec.PolicyRevision != "rev-7" || rec.DecisionID != "dec-1") {
				t.Errorf("decision not recorded: %q %q", rec.PolicyRevision, rec.DecisionID)
			}
		})
	}
}

func TestSignPolicyDenies(t *testing.T) {
	var sawCSR *x509.CertificateRequest
	tests := []struct {
		name   string
		policy policyFunc
		kind   core.ErrorKind
		detail string
	}{
		{name: "deny", kind: core.KindRejectedIdentifier, detail: "not in the allow list",
			policy: func(_ context.Context, _ core.SignRequest, csr *x509.CertificateRequest) (Decision, error) {
				sawCSR = csr
				return Decision{Allow: false, Reason: "not in the allow list"}, nil
			}},
		{name: "evaluation error fails closed", kind: core.KindServerInternal, detail: "policy evaluation failed",
			policy: func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error) {
				return Decision{Allow: true}, errors.New("rego: timeout")
			}},
		{name: "typed refusal passes through", kind: core.KindRejectedIdentifier, detail: "denied by layer account",
			policy: func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error) {
				return Decision{}, core.Errorf(core.KindRejectedIdentifier, "denied by layer account")
			}},
		{name: "zero decision denies", kind: core.KindRejectedIdentifier, detail: "policy refused",
			policy: func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error) {
				return Decision{}, nil
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newTestCA(t, func(o *Options) { o.Policy = tc.policy })
			_, err := c.Sign(context.Background(), request(t, "app.internal"))
			wantKind(t, err, tc.kind)
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not mention %q", err, tc.detail)
			}
			if st.count() != 0 || st.puts != 0 {
				t.Fatal("a denied certificate reached the store")
			}
		})
	}
	if sawCSR == nil || !slices.Equal(sawCSR.DNSNames, []string{"app.internal"}) {
		t.Error("the policy was not given the parsed CSR")
	}
}

func TestSignRefusesBeforePolicy(t *testing.T) {
	called := false
	c, st := newTestCA(t, func(o *Options) {
		o.Policy = policyFunc(func(context.Context, core.SignRequest, *x509.CertificateRequest) (Decision, error) {
			called = true
			return Decision{Allow: true}, nil
		})
	})
	tests := []struct {
		name string
		edit func(*core.SignRequest)
		kind core.ErrorKind
	}{
		{"no account key", func(r *core.SignRequest) { r.AccountKeyJWK = nil }, core.KindMalformed},
		{"names mismatch", func(r *core.SignRequest) { r.Identifiers = dnsIDs("other.internal") }, core.KindBadCSR},
		{"CSR garbage", func(r *core.SignRequest) { r.CSR = []byte("nope") }, core.KindBadCSR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, "app.internal")
			tc.edit(&req)
			_, err := c.Sign(context.Background(), req)
			wantKind(t, err, tc.kind)
		})
	}
	if called || st.count() != 0 {
		t.Error("policy called or certificate stored for a refused CSR")
	}
}

func TestSignLintRefusal(t *testing.T) {
	// A DNS label longer than 63 octets passes the CSR checks (names are
	// compared, not validated: the front end validates identifiers) but
	// must be stopped by the lints before the real key signs.
	bad := strings.Repeat("x", 64) + ".internal"
	tests := []struct {
		name string
		lint bool
		kind core.ErrorKind
	}{
		{"lint on refuses", true, core.KindServerInternal},
		{"lint off signs", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newTestCA(t, func(o *Options) { o.Lint = tc.lint })
			_, err := c.Sign(context.Background(), request(t, bad))
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				return
			}
			wantKind(t, err, tc.kind)
			var le *LintError
			if !errors.As(err, &le) || !slices.ContainsFunc(le.Failed, func(s string) bool { return strings.HasPrefix(s, "e_dnsname_label_too_long") }) {
				t.Fatalf("want a LintError naming e_dnsname_label_too_long, got %v", err)
			}
			if st.count() != 0 {
				t.Fatal("a certificate that failed lint was stored")
			}
		})
	}
}

func TestSignRetriesDuplicateSerial(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		kind     core.ErrorKind
		puts     int
	}{
		{"one collision", 1, "", 2},
		{"persistent collisions", serialAttempts, core.KindServerInternal, serialAttempts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newTestCA(t, func(o *Options) { o.Lint = false })
			st.dupFailures = tc.failures
			_, err := c.Sign(context.Background(), request(t, "app.internal"))
			if tc.kind == "" && err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if tc.kind != "" {
				wantKind(t, err, tc.kind)
			}
			if st.puts != tc.puts {
				t.Errorf("PutCertificate called %d times, want %d", st.puts, tc.puts)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	h := testHierarchy(t)
	other := newHierarchy(t, pki.ECDSAP256)
	leafKey := mustKey(t)
	leaf, err := pki.IssueTLSServer(h.inter, h.interKey, leafKey.Public(), []string{"x.internal"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Options)
		want string // "" = valid
	}{
		{"valid with chain", func(o *Options) { o.Chain = []*x509.Certificate{h.root} }, ""},
		{"no signer", func(o *Options) { o.Signer = nil }, "Signer"},
		{"no issuer", func(o *Options) { o.Issuer = nil }, "Issuer"},
		{"no store", func(o *Options) { o.Store = nil }, "Store"},
		{"signer mismatch", func(o *Options) { o.Signer = other.interKey }, "does not match"},
		{"issuer not a CA", func(o *Options) { o.Issuer, o.Signer = leaf, leafKey }, "not a CA"},
		{"chain does not sign issuer", func(o *Options) { o.Chain = []*x509.Certificate{other.root} }, "did not sign"},
		{"negative backdate", func(o *Options) { o.Backdate = -time.Second }, "Backdate"},
		{"bad profile", func(o *Options) {
			o.Profiles = map[string]Profile{"p": {DefaultLifetime: 48 * time.Hour, MaxLifetime: time.Hour}}
		}, "MaxLifetime"},
		{"bad CRL URL", func(o *Options) { o.CRLURL = "ldap://x" }, "CRLURL"},
		{"expired issuer", func(o *Options) { o.Now = func() time.Time { return h.inter.NotAfter.Add(time.Hour) } }, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Signer: h.interKey, Issuer: h.inter, Store: newFakeStore()}
			tc.edit(&o)
			c, err := New(o)
			if tc.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				if c.Issuer() != h.inter {
					t.Error("Issuer() is not the configured issuer")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestSignWithRSAIssuerAndChain(t *testing.T) {
	// A three-level hierarchy: root → intermediate (path length 1) →
	// issuing CA; ChainPEM must carry both CA certificates above the leaf.
	rootKey, err := pki.GenerateKey(pki.ECDSAP384)
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.NewRoot(rootKey, pkix.Name{CommonName: "R"}, 1000*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	midKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	mid, err := pki.NewIntermediate(root, rootKey, midKey.Public(), pkix.Name{CommonName: "M"}, 500*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	issKey := sharedRSAKey(t)
	iss, err := pki.NewIntermediate(mid, midKey, issKey.Public(), pkix.Name{CommonName: "I"}, 400*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Signer: issKey, Issuer: iss, Chain: []*x509.Certificate{mid}, Store: newFakeStore(), Lint: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Sign(context.Background(), request(t, "svc.lan"))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	chain, err := pki.ParsePEMCerts(rec.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 || !chain[1].Equal(iss) || !chain[2].Equal(mid) {
		t.Fatalf("ChainPEM has %d certificates, want leaf, issuer, intermediate", len(chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inters := x509.NewCertPool()
	inters.AddCert(iss)
	inters.AddCert(mid)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// failingSigner is an HSM whose token went away: Public works (it was read
// at load time), Sign fails.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("pkcs11: CKR_DEVICE_REMOVED")
}

func TestSignSignerFailureStoresNothing(t *testing.T) {
	c, st := newTestCA(t, func(o *Options) { o.Signer = failingSigner{o.Signer} })
	_, err := c.Sign(context.Background(), request(t, "hsm.internal"))
	wantKind(t, err, core.KindServerInternal)
	if st.count() != 0 {
		t.Fatal("a certificate was stored although the signature failed")
	}
}

// Identifiers that repeat, or differ only in case or form, are one SAN
// each: callers of the RA API pass identifiers one by one or take them
// from a CSR, unlike the ACME front end, which normalises the order.
func TestSignDeduplicatesIdentifiers(t *testing.T) {
	c, _ := newTestCA(t, func(o *Options) { o.Lint = true })
	req := request(t, "app.internal")
	req.CSR = makeCSR(t, mustKey(t), "", []string{"app.internal", "APP.internal"},
		[]net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::ffff:10.0.0.1")})
	req.Identifiers = []core.Identifier{{Type: core.DNS, Value: "app.internal"}, {Type: core.DNS, Value: "APP.internal"},
		{Type: core.IP, Value: "10.0.0.1"}, {Type: core.IP, Value: "::ffff:10.0.0.1"}, {Type: core.DNS, Value: "app.internal"}}
	rec, err := c.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"app.internal"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Fatalf("SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
}
