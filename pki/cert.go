package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Backdate is subtracted from "now" for NotBefore of the certificates made
// here, so that peers whose clocks are a little behind accept them.
const Backdate = time.Minute

// RandomSerial returns a positive serial number with 128 bits of entropy
// from crypto/rand (CABF BR §7.1 asks for at least 64; RFC 5280 allows up
// to 20 octets, and 16 random octets encode in at most 17).
func RandomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("pki: random serial: %w", err)
		}
		n := new(big.Int).SetBytes(b)
		// Zero is not a valid serial (RFC 5280 §4.1.2.2); vanishingly
		// unlikely, but cheap to exclude.
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SubjectKeyID computes a key identifier per RFC 7093 §2 method 1: the
// leftmost 160 bits of the SHA-256 of the subjectPublicKey bit string.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("pki: parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// LeafKeyUsage returns the key usage for an end-entity certificate with
// this public key: keyEncipherment only makes sense for RSA (TLS 1.2 RSA
// key exchange), and RFC 8813 forbids it for ECDSA.
func LeafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return nil
	case nil:
		return errors.New("pki: nil public key")
	}
	return fmt.Errorf("pki: unsupported public key type %T", pub)
}

// NewRoot makes a self-signed root certificate for signer's key, valid for
// validity from now. The root has no path length constraint so that the
// hierarchy below it can change without a new root.
func NewRoot(signer crypto.Signer, subject pkix.Name, validity time.Duration) (*x509.Certificate, error) {
	if signer == nil {
		return nil, errors.New("pki: nil signer")
	}
	if validity <= 0 {
		return nil, errors.New("pki: validity must be positive")
	}
	pub := signer.Public()
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(pub, subject, time.Now(), validity)
	if err != nil {
		return nil, err
	}
	tmpl.MaxPathLen = -1
	return create(tmpl, tmpl, pub, signer)
}

// NewIntermediate makes a CA certificate for pub, signed by the root (or
// another intermediate). maxPathLen 0 means it may only sign leaf
// certificates, which is what policyca needs; a negative value leaves the
// path length unconstrained. The validity may not extend past the
// issuer's.
func NewIntermediate(issuer *x509.Certificate, issuerSigner crypto.Signer, pub crypto.PublicKey, subject pkix.Name, validity time.Duration, maxPathLen int) (*x509.Certificate, error) {
	if err := checkIssuer(issuer, issuerSigner); err != nil {
		return nil, err
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(pub, subject, time.Now(), validity)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(issuer.NotAfter) {
		return nil, fmt.Errorf("pki: intermediate would expire %s, after its issuer (%s)",
			tmpl.NotAfter.UTC().Format(time.RFC3339), issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	switch {
	case maxPathLen == 0:
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	case maxPathLen > 0:
		tmpl.MaxPathLen = maxPathLen
	default:
		tmpl.MaxPathLen = -1
	}
	return create(tmpl, issuer, pub, issuerSigner)
}

// IssueTLSServer makes the certificate for the CA's own HTTPS listener
// (ACME directory, RA API). The first DNS name, if any, is also the CN.
func IssueTLSServer(issuer *x509.Certificate, issuerSigner crypto.Signer, pub crypto.PublicKey, dnsNames []string, ips []net.IP, validity time.Duration) (*x509.Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("pki: a TLS server certificate needs at least one DNS name or IP address")
	}
	var cn string
	if len(dnsNames) > 0 && len(dnsNames[0]) <= 64 {
		cn = dnsNames[0]
	}
	tmpl, err := leafTemplate(issuer, issuerSigner, pub, pkix.Name{CommonName: cn}, validity)
	if err != nil {
		return nil, err
	}
	tmpl.DNSNames = dnsNames
	tmpl.IPAddresses = ips
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return create(tmpl, issuer, pub, issuerSigner)
}

// IssueClient makes a TLS client certificate (admin API users, RAs). The
// subject identifies the client: the CA reads its CommonName.
func IssueClient(issuer *x509.Certificate, issuerSigner crypto.Signer, pub crypto.PublicKey, subject pkix.Name, validity time.Duration) (*x509.Certificate, error) {
	if subject.CommonName == "" {
		return nil, errors.New("pki: a client certificate needs a CommonName")
	}
	tmpl, err := leafTemplate(issuer, issuerSigner, pub, subject, validity)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return create(tmpl, issuer, pub, issuerSigner)
}

func checkIssuer(issuer *x509.Certificate, s crypto.Signer) error {
	if issuer == nil || s == nil {
		return errors.New("pki: nil issuer certificate or signer")
	}
	if !issuer.IsCA || !issuer.BasicConstraintsValid || issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("pki: issuer is not a CA certificate allowed to sign certificates")
	}
	if k, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(issuer.PublicKey) {
		return errors.New("pki: issuer signer does not hold the issuer certificate's key")
	}
	return nil
}

func baseTemplate(pub crypto.PublicKey, subject pkix.Name, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if validity <= 0 {
		return nil, errors.New("pki: validity must be positive")
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(validity).UTC().Truncate(time.Second),
		SubjectKeyId:          ski,
		BasicConstraintsValid: true,
	}, nil
}

func caTemplate(pub crypto.PublicKey, subject pkix.Name, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if subject.CommonName == "" {
		return nil, errors.New("pki: a CA certificate needs a CommonName")
	}
	t, err := baseTemplate(pub, subject, now, validity)
	if err != nil {
		return nil, err
	}
	t.IsCA = true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return t, nil
}

func leafTemplate(issuer *x509.Certificate, s crypto.Signer, pub crypto.PublicKey, subject pkix.Name, validity time.Duration) (*x509.Certificate, error) {
	if err := checkIssuer(issuer, s); err != nil {
		return nil, err
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	t, err := baseTemplate(pub, subject, time.Now(), validity)
	if err != nil {
		return nil, err
	}
	if t.NotAfter.After(issuer.NotAfter) {
		return nil, fmt.Errorf("pki: certificate would expire after its issuer (%s)", issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	t.KeyUsage = LeafKeyUsage(pub)
	return t, nil
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, s crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, s)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new certificate: %w", err)
	}
	return c, nil
}
