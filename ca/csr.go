package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/policyca/policyca/core"
)

// maxCSRSize bounds the CSR we parse: an 8192-bit RSA CSR with a hundred
// names is well under it.
const maxCSRSize = 16 << 10

var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// GeneralName tags (RFC 5280 §4.2.1.6) used in error messages.
var generalNameTypes = map[int]string{
	0: "otherName", 1: "email (rfc822Name)", 2: "dNSName", 3: "x400Address",
	4: "directoryName", 5: "ediPartyName", 6: "URI", 7: "iPAddress", 8: "registeredID",
}

// CheckCSR parses a DER PKCS#10 request and checks it against the order:
// the signature verifies, the key passes the CA's key rules and is not the
// account key, only DNS and IP SANs are present, and the CSR's names (SANs
// plus the CN, if any) equal ids as a set. Refusals are *core.Error of
// kind badCSR (malformed for a bad order or account key). accountKeyJWK
// may be empty only when the caller has no account (fuzzing, tools).
func CheckCSR(der []byte, ids []core.Identifier, accountKeyJWK []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, core.Errorf(core.KindBadCSR, "empty CSR")
	}
	if len(der) > maxCSRSize {
		return nil, core.Errorf(core.KindBadCSR, "CSR is larger than %d bytes", maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, core.Wrap(core.KindBadCSR, err, "cannot parse CSR")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, core.Errorf(core.KindBadCSR, "CSR signature is invalid: %v", err)
	}
	// CheckSignature accepts SHA-1 in a CSR (it refuses it in
	// certificates); a signature a collision can forge proves nothing.
	switch csr.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		return nil, core.Errorf(core.KindBadCSR, "CSR is signed with %v; use SHA-256 or better", csr.SignatureAlgorithm)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, core.Errorf(core.KindBadCSR, "CSR key refused: %v", err)
	}
	if len(accountKeyJWK) > 0 {
		acct, err := parseJWK(accountKeyJWK)
		if err != nil {
			return nil, err
		}
		if k, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(acct) {
			return nil, core.Errorf(core.KindBadCSR, "the certificate key must not be the account key")
		}
	}
	if err := checkSANTypes(csr); err != nil {
		return nil, err
	}
	if err := matchNames(csr, ids); err != nil {
		return nil, err
	}
	return csr, nil
}

func parseJWK(b []byte) (crypto.PublicKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, core.Wrap(core.KindMalformed, err, "account key is not a valid JWK")
	}
	if !k.Valid() {
		return nil, core.Errorf(core.KindMalformed, "account key is not a valid JWK")
	}
	pub := k.Public()
	if pub.Key == nil {
		return nil, core.Errorf(core.KindMalformed, "account key is not a public key")
	}
	return pub.Key, nil
}

// checkSANTypes reads the SAN extension itself: crypto/x509 silently drops
// otherName, directoryName and registeredID, which must be refused too.
func checkSANTypes(csr *x509.CertificateRequest) error {
	seen := false
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if seen {
			return core.Errorf(core.KindBadCSR, "CSR requests more than one subjectAltName extension")
		}
		seen = true
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) != 0 {
			return core.Errorf(core.KindBadCSR, "CSR subjectAltName extension is malformed")
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || (n.Tag != 2 && n.Tag != 7) {
				t := generalNameTypes[n.Tag]
				if t == "" || n.Class != asn1.ClassContextSpecific {
					t = fmt.Sprintf("unknown (class %d, tag %d)", n.Class, n.Tag)
				}
				return core.Errorf(core.KindBadCSR, "CSR subjectAltName of type %s is not allowed (only DNS names and IP addresses)", t)
			}
		}
	}
	// Belt and braces, in case x509 ever accepts a type through another path.
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return core.Errorf(core.KindBadCSR, "CSR email or URI subjectAltNames are not allowed")
	}
	return nil
}

// nameKey is the canonical form used to compare names: "dns:<lower>" or
// "ip:<canonical address>".
func nameKey(t core.IdentifierType, v string) string { return string(t) + ":" + v }

func canonIP(a netip.Addr) string { return a.Unmap().String() }

func identifierKeys(ids []core.Identifier) (map[string]core.Identifier, error) {
	if len(ids) == 0 {
		return nil, core.Errorf(core.KindMalformed, "the order has no identifiers")
	}
	out := make(map[string]core.Identifier, len(ids))
	for _, id := range ids {
		switch id.Type {
		case core.DNS:
			if id.Value == "" {
				return nil, core.Errorf(core.KindMalformed, "empty DNS identifier")
			}
			out[nameKey(core.DNS, strings.ToLower(id.Value))] = id
		case core.IP:
			a, err := netip.ParseAddr(id.Value)
			if err != nil || a.Zone() != "" {
				return nil, core.Errorf(core.KindMalformed, "invalid IP identifier %q", id.Value)
			}
			out[nameKey(core.IP, canonIP(a))] = id
		default:
			return nil, &core.Error{Kind: core.KindUnsupportedIdentifier,
				Detail: fmt.Sprintf("identifier type %q is not supported", id.Type), Identifier: &id}
		}
	}
	return out, nil
}

// matchNames implements RFC 8555 §7.4: the CSR must name exactly the
// order's identifiers, each in the SAN, the CN, or both.
func matchNames(csr *x509.CertificateRequest, ids []core.Identifier) error {
	want, err := identifierKeys(ids)
	if err != nil {
		return err
	}
	have := make(map[string]string) // key -> how the CSR spelled it
	for _, d := range csr.DNSNames {
		if d == "" {
			return core.Errorf(core.KindBadCSR, "CSR has an empty DNS name")
		}
		have[nameKey(core.DNS, strings.ToLower(d))] = d
	}
	for _, ip := range csr.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return core.Errorf(core.KindBadCSR, "CSR has a malformed IP address")
		}
		have[nameKey(core.IP, canonIP(a))] = a.String()
	}
	if cn := csr.Subject.CommonName; cn != "" {
		key := nameKey(core.DNS, strings.ToLower(cn))
		if a, err := netip.ParseAddr(cn); err == nil {
			key = nameKey(core.IP, canonIP(a))
		}
		if _, ok := want[key]; !ok {
			return core.Errorf(core.KindBadCSR, "CSR common name %q is not one of the order's identifiers", cn)
		}
		have[key] = cn
	}
	var extra, missing []string
	for k, spelled := range have {
		if _, ok := want[k]; !ok {
			extra = append(extra, spelled)
		}
	}
	for k, id := range want {
		if _, ok := have[k]; !ok {
			missing = append(missing, id.Value)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	var msgs []string
	if len(extra) > 0 {
		msgs = append(msgs, "CSR names "+strings.Join(extra, ", ")+", which the order does not contain")
	}
	if len(missing) > 0 {
		msgs = append(msgs, "CSR does not name the order's "+strings.Join(missing, ", "))
	}
	if len(msgs) > 0 {
		return core.Errorf(core.KindBadCSR, "%s", strings.Join(msgs, "; "))
	}
	return nil
}

// errNoAccountKey is returned by Sign: the account-key check cannot be
// skipped for a real issuance.
var errNoAccountKey = errors.New("sign request has no account key")
