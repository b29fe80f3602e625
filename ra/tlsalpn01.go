package ra

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/policyca/policyca/core"
)

// ACMETLS1Protocol is the ALPN protocol of RFC 8737 §6.2.
const ACMETLS1Protocol = "acme-tls/1"

// OIDACMEIdentifier is the id-pe-acmeIdentifier extension (RFC 8737 §6.1).
var OIDACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// validateTLSALPN01 checks RFC 8737: a TLS handshake to
// <identifier>:<TLSALPNPort> with SNI the identifier (for an IP, its
// reverse-DNS name, RFC 8738 §6) and ALPN acme-tls/1 must negotiate
// acme-tls/1 and present a certificate whose only SAN is the identifier
// and which carries the critical acmeIdentifier extension holding
// SHA-256(key authorization).
//
// Errors: failing to reach the target is connection; a failed handshake or
// an ALPN other than acme-tls/1 is tls (the server does not speak the
// challenge protocol); a certificate that is not a tls-alpn-01 certificate
// for this identifier (SANs, extension missing, not critical or malformed)
// is unauthorized; a well-formed extension with another digest is
// incorrectResponse, as for the other challenge types.
func (v *Validator) validateTLSALPN01(ctx context.Context, in core.ChallengeInput) error {
	host, sni, err := tlsALPNTarget(in.Identifier)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(v.tlsALPNPort))
	conn, err := v.dialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	remote := conn.RemoteAddr().String()
	tc := tls.Client(conn, &tls.Config{
		ServerName: sni,
		NextProtos: []string{ACMETLS1Protocol},
		// RFC 8737 §3: the certificate is self-signed and checked by its
		// content, not by a chain.
		InsecureSkipVerify: true, //nolint:gosec // see above
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		if isNetErr(err) || ctx.Err() != nil {
			return core.Wrap(core.KindConnection, err, "%s: %s during TLS handshake", remote, describeNetErr(err))
		}
		return core.Wrap(core.KindTLS, err, "%s: TLS handshake with SNI %q and ALPN %q failed: %s",
			remote, sni, ACMETLS1Protocol, err.Error())
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != ACMETLS1Protocol {
		return core.Errorf(core.KindTLS, "%s: server negotiated ALPN %q, expected %q", remote, st.NegotiatedProtocol, ACMETLS1Protocol)
	}
	if len(st.PeerCertificates) == 0 {
		return core.Errorf(core.KindTLS, "%s: server sent no certificate", remote)
	}
	return checkTLSALPNCert(st.PeerCertificates[0], in, remote)
}

// tlsALPNTarget returns the host to connect to and the SNI to send.
func tlsALPNTarget(id core.Identifier) (host, sni string, err error) {
	switch id.Type {
	case core.DNS:
		if strings.HasPrefix(id.Value, "*.") {
			return "", "", core.Errorf(core.KindMalformed, "a wildcard name can only be validated with dns-01")
		}
		name := strings.TrimSuffix(id.Value, ".")
		return name, name, nil
	case core.IP:
		ip, err := netip.ParseAddr(id.Value)
		if err != nil {
			return "", "", core.Errorf(core.KindMalformed, "invalid IP identifier %q", id.Value)
		}
		ip = ip.Unmap()
		return ip.String(), ReverseName(ip), nil
	}
	return "", "", core.Errorf(core.KindMalformed, "unsupported identifier type %q", id.Type)
}

// ReverseName returns the in-addr.arpa or ip6.arpa name of ip, without
// the trailing dot: the SNI RFC 8738 §6 uses for IP identifiers.
func ReverseName(ip netip.Addr) string {
	r, _ := dns.ReverseAddr(ip.Unmap().String())
	return strings.TrimSuffix(r, ".")
}

func checkTLSALPNCert(cert *x509.Certificate, in core.ChallengeInput, remote string) error {
	if err := checkOnlySAN(cert, in.Identifier); err != nil {
		return core.Errorf(core.KindUnauthorized, "%s: certificate must have exactly one SAN, %s %q; %s",
			remote, in.Identifier.Type, in.Identifier.Value, err.Error())
	}
	var ext *[]byte
	for i := range cert.Extensions {
		e := cert.Extensions[i]
		if !e.Id.Equal(OIDACMEIdentifier) {
			continue
		}
		if ext != nil {
			return core.Errorf(core.KindUnauthorized, "%s: certificate has more than one acmeIdentifier extension", remote)
		}
		if !e.Critical {
			return core.Errorf(core.KindUnauthorized, "%s: acmeIdentifier extension (%s) is not critical", remote, OIDACMEIdentifier)
		}
		ext = &cert.Extensions[i].Value
	}
	if ext == nil {
		return core.Errorf(core.KindUnauthorized, "%s: certificate has no acmeIdentifier extension (%s)", remote, OIDACMEIdentifier)
	}
	got, err := ParseACMEExtension(*ext)
	if err != nil {
		return core.Wrap(core.KindUnauthorized, err, "%s: malformed acmeIdentifier extension: %s", remote, err.Error())
	}
	want := sha256.Sum256([]byte(in.KeyAuthorization))
	if subtle.ConstantTimeCompare(got, want[:]) != 1 {
		return core.Errorf(core.KindIncorrectResponse, "%s: acmeIdentifier extension holds %s, expected SHA-256 of key authorization %q = %s",
			remote, hex.EncodeToString(got), in.KeyAuthorization, hex.EncodeToString(want[:]))
	}
	return nil
}

// ParseACMEExtension decodes the value of an acmeIdentifier extension: a
// DER OCTET STRING of exactly 32 bytes (RFC 8737 §3), with nothing after.
func ParseACMEExtension(der []byte) ([]byte, error) {
	var digest []byte
	rest, err := asn1.Unmarshal(der, &digest)
	if err != nil {
		return nil, fmt.Errorf("not an OCTET STRING: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after the OCTET STRING")
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("digest is %d bytes, expected %d", len(digest), sha256.Size)
	}
	// encoding/asn1 tolerates a few non-DER forms; insisting on the one DER
	// encoding means one digest has exactly one accepted extension value.
	again, err := asn1.Marshal(digest)
	if err != nil || !bytes.Equal(again, der) {
		return nil, errors.New("not DER encoded")
	}
	return digest, nil
}

// oidSubjectAltName is the subjectAltName extension (RFC 5280 §4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// GeneralName tags (RFC 5280 §4.2.1.6), all context-specific.
var generalNameKinds = [...]string{"otherName", "rfc822Name", "dNSName", "x400Address",
	"directoryName", "ediPartyName", "uniformResourceIdentifier", "iPAddress", "registeredID"}

var (
	tagDNSName   = cbasn1.Tag(2).ContextSpecific()
	tagIPAddress = cbasn1.Tag(7).ContextSpecific()
)

// checkOnlySAN checks RFC 8737 §3 and RFC 8738 §6: the subjectAltName
// extension holds exactly one GeneralName, a dNSName equal to a DNS
// identifier (ASCII case ignored) or an iPAddress equal to an IP one. It
// reads the extension's DER itself: crypto/x509 keeps only four kinds of
// name (DNS, IP, email, URI) and silently drops the others (otherName,
// directoryName, registeredID...), which would let a second entry pass.
// The error says what the certificate has instead.
func checkOnlySAN(cert *x509.Certificate, id core.Identifier) error {
	var (
		der   []byte
		found bool
	)
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		if found {
			return errors.New("it has more than one subjectAltName extension")
		}
		der, found = e.Value, true
	}
	if !found {
		return errors.New("it has no subjectAltName extension")
	}
	names, err := parseGeneralNames(der)
	if err != nil {
		return fmt.Errorf("its subjectAltName extension is malformed: %w", err)
	}
	if len(names) != 1 || !sanMatches(names[0], id) {
		return fmt.Errorf("it has %s", describeGeneralNames(names))
	}
	return nil
}

type generalName struct {
	tag   cbasn1.Tag
	value []byte
}

// parseGeneralNames splits a DER GeneralNames (SEQUENCE OF GeneralName)
// into its entries, whatever their kind, refusing trailing data.
func parseGeneralNames(der []byte) ([]generalName, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("not a single SEQUENCE")
	}
	var names []generalName
	for !seq.Empty() {
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&v, &tag) {
			return nil, fmt.Errorf("entry %d is not valid DER", len(names)+1)
		}
		names = append(names, generalName{tag: tag, value: v})
	}
	return names, nil
}

// sanMatches reports whether n is the one SAN allowed for id.
func sanMatches(n generalName, id core.Identifier) bool {
	switch id.Type {
	case core.DNS:
		return n.tag == tagDNSName && strings.EqualFold(string(n.value), strings.TrimSuffix(id.Value, "."))
	case core.IP:
		want, err := netip.ParseAddr(id.Value)
		if err != nil || n.tag != tagIPAddress {
			return false
		}
		got, ok := netip.AddrFromSlice(n.value)
		return ok && got.Unmap() == want.Unmap()
	}
	return false
}

// describeGeneralNames lists SAN entries for an error detail, by kind,
// with the value for the kinds that are text or an address.
func describeGeneralNames(names []generalName) string {
	if len(names) == 0 {
		return "an empty subjectAltName"
	}
	var parts []string
	for _, n := range names {
		// The low five bits are the tag number; the class must be
		// context-specific (0x80), constructed (0x20) or not.
		kind := fmt.Sprintf("an entry with tag 0x%02x", uint8(n.tag))
		if num := int(n.tag & 0x1f); n.tag&0xc0 == 0x80 && num < len(generalNameKinds) {
			kind = generalNameKinds[num]
		}
		switch n.tag {
		case tagDNSName:
			parts = append(parts, "dns "+quoteTruncated(string(n.value), 64))
		case tagIPAddress:
			if ip, ok := netip.AddrFromSlice(n.value); ok {
				parts = append(parts, "ip "+ip.String())
			} else {
				parts = append(parts, fmt.Sprintf("iPAddress of %d bytes", len(n.value)))
			}
		case cbasn1.Tag(1).ContextSpecific(), cbasn1.Tag(6).ContextSpecific():
			parts = append(parts, kind+" "+quoteTruncated(string(n.value), 64))
		default:
			parts = append(parts, kind)
		}
	}
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more", len(parts)-5))
	}
	return strings.Join(parts, ", ")
}
