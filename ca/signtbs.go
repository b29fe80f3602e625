package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Signing what was linted. The lint certificate is the certificate the
// template describes, built by x509.CreateCertificate with a throw-away key
// of the issuer key's type (so the same signature algorithm) and a copy of
// the issuer (so the same issuer name and authority key identifier). Its
// TBSCertificate is therefore the one the issuer would sign. signLinted
// signs exactly those bytes with the issuer key, so that the certificate
// handed out is, byte for byte, the one zlint passed, instead of a second
// encoding of the same template.

// signatureHashes maps the signature algorithms x509.CreateCertificate
// chooses for the issuer key types policyca supports to the digest the
// signer is given (0: the message itself, Ed25519).
var signatureHashes = map[string]crypto.Hash{
	"1.2.840.10045.4.3.2":   crypto.SHA256, // ecdsa-with-SHA256 (P-256)
	"1.2.840.10045.4.3.3":   crypto.SHA384, // ecdsa-with-SHA384 (P-384)
	"1.2.840.10045.4.3.4":   crypto.SHA512, // ecdsa-with-SHA512 (P-521)
	"1.2.840.113549.1.1.11": crypto.SHA256, // sha256WithRSAEncryption
	"1.2.840.113549.1.1.12": crypto.SHA384, // sha384WithRSAEncryption
	"1.2.840.113549.1.1.13": crypto.SHA512, // sha512WithRSAEncryption
	"1.3.101.112":           0,             // Ed25519
}

// signLinted returns the certificate whose TBSCertificate and signature
// algorithm are those of lintDER, signed by signer, and checks the
// signature against the issuer's public key, as x509.CreateCertificate
// checks its own, so that a faulty signer (or HSM) cannot hand out a
// certificate that does not verify.
func signLinted(lintDER []byte, signer crypto.Signer, issuer *x509.Certificate) ([]byte, *x509.Certificate, error) {
	tbs, sigAlg, err := splitCertificate(lintDER)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: lint certificate: %w", err)
	}
	h, err := signatureHash(sigAlg)
	if err != nil {
		return nil, nil, err
	}
	msg := []byte(tbs)
	if h != 0 {
		d := h.New()
		d.Write(msg)
		msg = d.Sum(nil)
	}
	sig, err := signer.Sign(rand.Reader, msg, h)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: signing: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("ca: encoding the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: parsing the signed certificate: %w", err)
	}
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return nil, nil, fmt.Errorf("ca: the signer's signature does not verify with the issuer's key: %w", err)
	}
	return der, leaf, nil
}

// splitCertificate returns the TBSCertificate and signatureAlgorithm
// elements (tag and length included) of a DER certificate.
func splitCertificate(der []byte) (tbs, sigAlg cryptobyte.String, err error) {
	in := cryptobyte.String(der)
	var cert cryptobyte.String
	if !in.ReadASN1(&cert, asn1.SEQUENCE) || !in.Empty() ||
		!cert.ReadASN1Element(&tbs, asn1.SEQUENCE) ||
		!cert.ReadASN1Element(&sigAlg, asn1.SEQUENCE) ||
		!cert.SkipASN1(asn1.BIT_STRING) || !cert.Empty() {
		return nil, nil, errors.New("malformed certificate")
	}
	return tbs, sigAlg, nil
}

// signatureHash is the digest for an AlgorithmIdentifier element.
func signatureHash(sigAlg cryptobyte.String) (crypto.Hash, error) {
	var body cryptobyte.String
	var oid encasn1.ObjectIdentifier
	if !sigAlg.ReadASN1(&body, asn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&oid) {
		return 0, errors.New("ca: lint certificate: malformed signature algorithm")
	}
	h, ok := signatureHashes[oid.String()]
	if !ok {
		return 0, fmt.Errorf("ca: signature algorithm %s is not supported", oid)
	}
	return h, nil
}
