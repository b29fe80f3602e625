package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/pki"
)

// TestSignLintedSignsTheLintedBytes: for each issuer key type, the
// certificate handed out carries the lint certificate's TBSCertificate
// byte for byte, verifies with the issuer's key, and is the certificate
// x509.CreateCertificate would have made (same fields).
func TestSignLintedSignsTheLintedBytes(t *testing.T) {
	for _, spec := range []pki.KeySpec{pki.ECDSAP256, pki.ECDSAP384, pki.RSA2048} {
		t.Run(string(spec), func(t *testing.T) {
			h := newHierarchy(t, spec)
			c, _ := newTestCA(t, func(o *Options) { o.Signer, o.Issuer = h.interKey, h.inter })
			pub := mustKey(t).Public()
			tmpl, lintDER := lintedCertificate(t, c, h, pub, "app.internal", "www.app.internal")
			lintTBS, _, err := splitCertificate(lintDER)
			if err != nil {
				t.Fatal(err)
			}
			der, leaf, err := signLinted(lintDER, h.interKey, h.inter)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(leaf.RawTBSCertificate, lintTBS) || !bytes.Equal(leaf.Raw, der) {
				t.Fatal("the signed certificate is not the linted one")
			}
			if err := leaf.CheckSignatureFrom(h.inter); err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(h.root)
			inters := x509.NewCertPool()
			inters.AddCert(h.inter)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "www.app.internal",
				CurrentTime: fixedNow.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// What x509.CreateCertificate makes of the same template with
			// the issuer key differs only in the signature.
			want, err := x509.CreateCertificate(zeroReader{}, tmpl, h.inter, pub, h.interKey)
			if err != nil {
				t.Fatal(err)
			}
			wantCert, err := x509.ParseCertificate(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wantCert.RawTBSCertificate, lintTBS) {
				t.Fatal("the lint certificate's TBS differs from the issuer's own encoding of the template")
			}
		})
	}
}

// lintedCertificate returns c's template for names and pub, with a serial,
// and the lint certificate built from it under h's issuer.
func lintedCertificate(t *testing.T, c *CA, h *hierarchy, pub crypto.PublicKey, names ...string) (*x509.Certificate, []byte) {
	t.Helper()
	tmpl, err := c.template(pub, dnsIDs(names...), fixedNow, fixedNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = pki.RandomSerial(); err != nil {
		t.Fatal(err)
	}
	lintDER, err := lintCertificate(tmpl, h.inter, pub, c.lintKey)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, lintDER
}

// zeroReader is enough randomness for x509.CreateCertificate's signature
// in a test that does not look at it.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// wrongSigner signs with another key of the same type than the issuer's.
type wrongSigner struct {
	crypto.Signer
	other crypto.Signer
}

func (w wrongSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return w.other.Sign(r, d, o)
}

// TestSignLintedRefusesABadSignature: a signer whose signature does not
// verify with the issuer's key (a faulty HSM, the wrong key) yields an
// error, not a certificate.
func TestSignLintedRefusesABadSignature(t *testing.T) {
	h := testHierarchy(t)
	c, _ := newTestCA(t, nil)
	_, lintDER := lintedCertificate(t, c, h, mustKey(t).Public(), "app.internal")
	_, _, err := signLinted(lintDER, wrongSigner{Signer: h.interKey, other: mustKey(t)}, h.inter)
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("err = %v", err)
	}
	for _, bad := range [][]byte{nil, lintDER[:len(lintDER)-1], append(bytes.Clone(lintDER), 0)} {
		if _, _, err := signLinted(bad, h.interKey, h.inter); err == nil {
			t.Fatalf("signLinted accepted %d malformed bytes", len(bad))
		}
	}
}

// digestRecorder remembers the digests a signer is asked to sign.
type digestRecorder struct {
	crypto.Signer
	digests [][]byte
}

func (d *digestRecorder) Sign(r io.Reader, digest []byte, o crypto.SignerOpts) ([]byte, error) {
	d.digests = append(d.digests, bytes.Clone(digest))
	return d.Signer.Sign(r, digest, o)
}

// TestSignSignsWhatWasLinted goes through CA.Sign: the issuer key signs
// once, and exactly the digest of the TBSCertificate that the lint key
// signed for zlint, which is the TBSCertificate of the certificate handed
// out.
func TestSignSignsWhatWasLinted(t *testing.T) {
	h := testHierarchy(t)
	issuer := &digestRecorder{Signer: h.interKey}
	c, _ := newTestCA(t, func(o *Options) { o.Signer = issuer })
	lint := &digestRecorder{Signer: c.lintKey}
	c.lintKey = lint
	rec, err := c.Sign(t.Context(), request(t, "app.internal"))
	if err != nil {
		t.Fatal(err)
	}
	if len(issuer.digests) != 1 || len(lint.digests) != 1 {
		t.Fatalf("issuer key signed %d times, lint key %d times", len(issuer.digests), len(lint.digests))
	}
	if !bytes.Equal(issuer.digests[0], lint.digests[0]) {
		t.Fatal("the issuer key signed other bytes than the ones that were linted")
	}
	leaf, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		t.Fatal(err)
	}
	sum := crypto.SHA256.New()
	sum.Write(leaf.RawTBSCertificate)
	if !bytes.Equal(sum.Sum(nil), issuer.digests[0]) {
		t.Fatal("the certificate handed out is not the one signed")
	}
}
