package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeySpec names a key algorithm and size for generated CA keys.
type KeySpec string

// Supported key specs. Ed25519 is deliberately absent: most TLS clients
// still cannot verify Ed25519 signatures on certificates.
const (
	ECDSAP256 KeySpec = "ecdsa-p256"
	ECDSAP384 KeySpec = "ecdsa-p384"
	RSA2048   KeySpec = "rsa-2048"
	RSA3072   KeySpec = "rsa-3072"
	RSA4096   KeySpec = "rsa-4096"
)

// KeySpecs lists the supported specs, the recommended one first.
var KeySpecs = []KeySpec{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}

// ParseKeySpec parses s case-insensitively.
func ParseKeySpec(s string) (KeySpec, error) {
	k := KeySpec(strings.ToLower(strings.TrimSpace(s)))
	if err := k.Validate(); err != nil {
		return "", err
	}
	return k, nil
}

// Validate reports whether k is a supported spec.
func (k KeySpec) Validate() error {
	for _, s := range KeySpecs {
		if k == s {
			return nil
		}
	}
	names := make([]string, len(KeySpecs))
	for i, s := range KeySpecs {
		names[i] = string(s)
	}
	return fmt.Errorf("pki: unknown key spec %q (want one of %s)", string(k), strings.Join(names, ", "))
}

// String implements fmt.Stringer.
func (k KeySpec) String() string { return string(k) }

// GenerateKey makes a new private key of the given spec.
func GenerateKey(k KeySpec) (crypto.Signer, error) {
	switch k {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, k.Validate()
}
