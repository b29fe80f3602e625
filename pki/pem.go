package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/policyca/policyca/internal/atomicfile"
)

// EncodePEMCerts returns certs as concatenated CERTIFICATE PEM blocks.
func EncodePEMCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		// pem.Encode to a bytes.Buffer cannot fail.
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// WritePEMCert writes certs, in order, to path as PEM (mode 0644:
// certificates are public), creating missing directories with mode 0755.
// The file is replaced atomically.
func WritePEMCert(path string, certs ...*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("pki: no certificates to write")
	}
	for _, c := range certs {
		if c == nil || len(c.Raw) == 0 {
			return errors.New("pki: certificate without DER encoding")
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.Write(path, EncodePEMCerts(certs...), 0o644); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// ReadPEMCerts reads every CERTIFICATE block in path, in order. Other
// block types are an error: a key in a certificate file is a mistake
// worth stopping for.
func ReadPEMCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certs, err := ParsePEMCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return certs, nil
}

// ParsePEMCerts parses every CERTIFICATE block in data.
func ParsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("pki: unexpected PEM block %q in certificate file", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("pki: no certificates found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("pki: trailing data after the last certificate")
	}
	return certs, nil
}
