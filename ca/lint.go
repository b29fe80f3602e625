package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	// zlint registers its lints in the global registry when imported.
	_ "github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// The lint set for a private CA.
//
// We run zlint's RFC 5280 lints and the technical RFC lints next to it
// (RFC 5480 key encodings, RFC 5891 IDNs, RFC 8813 EC key usage) plus the
// CA/Browser Forum Baseline Requirements lints, because a certificate that
// breaks them breaks real TLS clients. We leave out the sources that are
// root-program rules (Mozilla, Apple, Chrome, ETSI), EV, S/MIME and code
// signing, and the community lints.
//
// From the BR set we exclude the lints that encode public web PKI rules a
// private CA breaks on purpose. docs/lint.md explains each one; keep the two
// lists in sync.
var lintSources = lint.SourceList{
	lint.RFC5280,
	lint.RFC5480,
	lint.RFC5891,
	lint.RFC8813,
	lint.CABFBaselineRequirements,
}

var lintExclusions = []string{
	// Internal names: .internal, .lan, .home.arpa, bare "localhost" are
	// the point of an internal CA; the public suffix list does not have them.
	"e_dnsname_not_valid_tld",
	"e_dnsname_contains_bare_iana_suffix",
	// Private and loopback addresses (RFC 1918, fc00::/7, 127/8) are
	// reserved for the public PKI and normal for us.
	"e_ext_san_contains_reserved_ip",
	"e_subject_contains_reserved_ip",
	"e_subject_contains_reserved_arpa_ip",
	// No OCSP responder, no caIssuers URL: internal clients get the chain
	// from the ACME server, revocation is by CRL (optional).
	"e_sub_cert_aia_missing",
	"e_sub_cert_aia_does_not_contain_ocsp_url",
	"e_missing_crl_distrib_point",
	// No certificate policy OID: asserting the BR DV policy would claim a
	// compliance a private CA does not have.
	"e_sub_cert_certificate_policies_missing",
	"e_sub_cert_cert_policy_empty",
	// Lifetimes are set by the provisioner profile and the policy, which
	// default to 24 hours; an operator who configures longer means it.
	"e_sub_cert_valid_time_longer_than_39_months",
	"e_sub_cert_valid_time_longer_than_825_days",
	"e_server_cert_valid_time_longer_than_200_days",
	"e_server_cert_valid_time_longer_than_100_days",
	"e_server_cert_valid_time_longer_than_47_days",
}

// ed25519Exclusions apply only to certificates for Ed25519 keys, which
// the CA allows on purpose (checkKey) while the BRs list only RSA and
// ECDSA; for other keys these lints still check the key's encoding.
var ed25519Exclusions = []string{
	"e_public_key_type_not_allowed",
	"e_algorithm_identifier_improper_encoding",
}

func filteredRegistry(extra ...string) (lint.Registry, error) {
	return lint.GlobalRegistry().Filter(lint.FilterOptions{
		IncludeSources: lintSources,
		ExcludeNames:   append(slices.Clone(lintExclusions), extra...),
	})
}

var (
	lintRegistry        = sync.OnceValues(func() (lint.Registry, error) { return filteredRegistry() })
	lintRegistryEd25519 = sync.OnceValues(func() (lint.Registry, error) { return filteredRegistry(ed25519Exclusions...) })
)

func registryFor(pub crypto.PublicKey) (lint.Registry, error) {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return lintRegistryEd25519()
	}
	return lintRegistry()
}

// LintNames returns the names of the lints run before signing a
// certificate for an RSA or ECDSA key, sorted.
func LintNames() ([]string, error) {
	r, err := lintRegistry()
	if err != nil {
		return nil, err
	}
	n := slices.Clone(r.CertificateLints().Names())
	sort.Strings(n)
	return n, nil
}

// lintKeys caches one throwaway key per issuer key type for the life of
// the process: generating an RSA key per issuance would cost more than the
// lint itself.
var lintKeys struct {
	sync.Mutex
	m map[string]crypto.Signer
}

func lintKeyFor(pub crypto.PublicKey) (crypto.Signer, error) {
	var kind string
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		kind = "ecdsa-" + p.Curve.Params().Name
	case *rsa.PublicKey:
		kind = fmt.Sprintf("rsa-%d", p.N.BitLen())
	case ed25519.PublicKey:
		kind = "ed25519"
	default:
		return nil, fmt.Errorf("ca: no lint key for issuer key type %T", pub)
	}
	lintKeys.Lock()
	defer lintKeys.Unlock()
	if k := lintKeys.m[kind]; k != nil {
		return k, nil
	}
	var k crypto.Signer
	var err error
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		var c elliptic.Curve
		switch p.Curve.Params().Name {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("ca: unsupported issuer curve %s", p.Curve.Params().Name)
		}
		k, err = ecdsa.GenerateKey(c, rand.Reader)
	case *rsa.PublicKey:
		k, err = rsa.GenerateKey(rand.Reader, p.N.BitLen())
	case ed25519.PublicKey:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: generate lint key: %w", err)
	}
	if lintKeys.m == nil {
		lintKeys.m = make(map[string]crypto.Signer)
	}
	lintKeys.m[kind] = k
	return k, nil
}

// lintCertificate signs tmpl with a throwaway key standing in for the
// issuer's, and runs the lint set on the result. Only what the real
// signature would cover is linted: the TBS of the throwaway certificate is
// the same as the real one except for the signature value.
func lintCertificate(tmpl, issuer *x509.Certificate, pub crypto.PublicKey, lintKey crypto.Signer) ([]byte, error) {
	reg, err := registryFor(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: lint registry: %w", err)
	}
	// x509.CreateCertificate refuses a signer that does not match the
	// parent's key; a copy of the issuer with the lint key's public key
	// keeps the issuer name and key identifier byte for byte.
	parent := *issuer
	parent.PublicKey = lintKey.Public()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &parent, pub, lintKey)
	if err != nil {
		return nil, fmt.Errorf("ca: build certificate for linting: %w", err)
	}
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse certificate for linting: %w", err)
	}
	// This is zlint.LintCertificateEx without its bookkeeping: it sorts
	// the registry's lint names and builds a map of every lint's result
	// and metadata on each call, which cost about as much as running the
	// lints; only the failures matter here. Execute is the same entry
	// point LintCertificateEx uses (framework filter, configuration,
	// CheckApplies, CheckEffective, panic recovery).
	cfg := reg.GetConfiguration()
	var failed []string
	for _, l := range reg.CertificateLints().Lints() {
		r := l.Execute(zc, cfg)
		if r.Status == lint.Error || r.Status == lint.Fatal {
			s := l.Name
			if r.Details != "" {
				s += " (" + r.Details + ")"
			}
			failed = append(failed, s)
		}
	}
	if len(failed) == 0 {
		return der, nil
	}
	sort.Strings(failed)
	return nil, &LintError{Failed: failed}
}

// LintError lists the lints a certificate failed; nothing was signed.
type LintError struct {
	Failed []string
}

func (e *LintError) Error() string {
	return "ca: certificate failed lints: " + strings.Join(e.Failed, ", ")
}
