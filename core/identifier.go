package core

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Identifier normalisation.
//
// Every identifier that enters the system goes through NormalizeIdentifier,
// so that policy rules, authorizations, de-duplication and the names put in
// certificates all compare the same byte strings.
//
// Error kinds: an identifier whose value is not a valid name or address of
// its type is KindMalformed (RFC 8555 §7.1.3 treats a syntactically invalid
// request as malformed). KindRejectedIdentifier is left to the policy, so a
// client can tell "you typed it wrong" from "you may not have it". An
// identifier type other than dns or ip is KindUnsupportedIdentifier. Every
// error carries the offending Identifier as the client sent it.

// maxIdentifierInput bounds the work done on a value before any other check:
// no valid name or address comes close, and IDNA mapping of huge strings is
// wasted work on a request that will be refused anyway.
const maxIdentifierInput = 1024

// idnaProfile is UTS #46 non-transitional processing with the lookup mapping
// (case folding, width folding, NFC), the bidi and joiner rules, hyphen rules
// and DNS length checks. The lookup mapping rather than the registration
// profile is used on purpose: clients and operators type names such as
// "Bücher.Example", and refusing them for their upper case letters would
// help nobody, while the mapped result is exactly the A-label form a
// resolver would look up. Existing xn-- labels are decoded and validated,
// so a bogus A-label is refused rather than passed through.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
)

// NormalizeIdentifier returns the canonical form of id.
//
// dns: lower case, without a trailing dot, internationalised labels as
// A-labels, every label 1–63 letters, digits and hyphens (not at either end),
// at most 253 octets in all. Single-label names ("localhost", "printer") are
// valid: internal networks use them. A wildcard is only allowed as the whole
// first label ("*.example.internal"). Values that a resolver could read as an
// IPv4 address (an all-numeric or 0x-hex last label) are refused: they belong
// in an ip identifier.
//
// ip: the canonical text form of net/netip (RFC 5952 for IPv6), with
// IPv4-mapped IPv6 addresses written as IPv4. Zones and prefixes are refused.
func NormalizeIdentifier(id Identifier) (Identifier, error) {
	switch id.Type {
	case DNS:
		v, detail := normalizeDNS(id.Value)
		if detail != "" {
			return Identifier{}, identifierError(KindMalformed, id, detail)
		}
		return Identifier{Type: DNS, Value: v}, nil
	case IP:
		v, detail := normalizeIP(id.Value)
		if detail != "" {
			return Identifier{}, identifierError(KindMalformed, id, detail)
		}
		return Identifier{Type: IP, Value: v}, nil
	default:
		return Identifier{}, identifierError(KindUnsupportedIdentifier, id,
			"identifier type "+quote(string(id.Type))+" is not supported; use \"dns\" or \"ip\"")
	}
}

// NormalizeIdentifiers normalises every identifier, removes duplicates (as
// seen after normalisation) and sorts the result by type, then value, so
// that equal requests produce equal orders.
//
// An empty list is KindMalformed. If exactly one identifier is invalid its
// error is returned as is; if several are, the error is one *Error with one
// subproblem per invalid identifier (RFC 8555 §6.7.1), whose kind is the
// subproblems' kind when they all agree and KindMalformed otherwise.
func NormalizeIdentifiers(ids []Identifier) ([]Identifier, error) {
	if len(ids) == 0 {
		return nil, Errorf(KindMalformed, "the request has no identifiers")
	}
	out := make([]Identifier, 0, len(ids))
	var probs []*Error
	for _, id := range ids {
		n, err := NormalizeIdentifier(id)
		if err != nil {
			probs = append(probs, err.(*Error))
			continue
		}
		out = append(out, n)
	}
	switch len(probs) {
	case 0:
	case 1:
		return nil, probs[0]
	default:
		kind := probs[0].Kind
		for _, p := range probs[1:] {
			if p.Kind != kind {
				kind = KindMalformed
				break
			}
		}
		return nil, &Error{
			Kind:        kind,
			Detail:      strconv.Itoa(len(probs)) + " identifiers are invalid; see subproblems",
			Subproblems: probs,
		}
	}
	slices.SortFunc(out, CompareIdentifiers)
	return slices.Compact(out), nil
}

// CompareIdentifiers orders identifiers by type, then value: the order of
// normalised identifier lists.
func CompareIdentifiers(a, b Identifier) int {
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return cmp.Compare(a.Value, b.Value)
}

func identifierError(kind ErrorKind, id Identifier, detail string) *Error {
	idc := id
	return &Error{Kind: kind, Detail: detail, Identifier: &idc}
}

// normalizeDNS returns the normalised name, or "" and the reason it is
// invalid.
func normalizeDNS(v string) (string, string) {
	if v == "" {
		return "", "the dns identifier is empty"
	}
	if len(v) > maxIdentifierInput {
		return "", "the dns identifier is too long"
	}
	// The idna package replaces invalid UTF-8 with U+FFFD and carries on;
	// a name the client did not mean must not be certified.
	if !utf8.ValidString(v) {
		return "", "the dns identifier is not valid UTF-8"
	}
	wildcard := false
	if rest, ok := strings.CutPrefix(v, "*."); ok {
		wildcard, v = true, rest
	}
	if strings.Contains(v, "*") {
		return "", quote(v) + " is not a valid DNS name: a wildcard is only allowed as the whole first label (\"*.example.internal\")"
	}
	// One trailing dot is the fully qualified spelling of the same name.
	v = strings.TrimSuffix(v, ".")
	if v == "" {
		return "", "the dns identifier has no labels"
	}
	// IP literals are checked before IDNA mapping so that "[::1]" and
	// "10.0.0.1" get a helpful message rather than a label error.
	if a := strings.Trim(v, "[]"); isIPLiteral(a) {
		return "", quote(v) + " is an IP address; use an identifier of type \"ip\""
	}
	a, err := idnaProfile.ToASCII(v)
	if err != nil {
		return "", quote(v) + " is not a valid DNS name (IDNA: " + err.Error() + ")"
	}
	// The IDNA profile already checked most of this; checking the result
	// ourselves makes the LDH guarantee independent of the idna package's
	// options and version.
	if detail := checkLDH(a); detail != "" {
		return "", detail
	}
	if looksNumeric(a) {
		return "", quote(a) + " could be read as an IP address; use an identifier of type \"ip\""
	}
	if wildcard {
		a = "*." + a
		if len(a) > 253 {
			return "", "the name is longer than 253 octets"
		}
	}
	return a, ""
}

// checkLDH checks that s is a lower-case LDH name of at most 253 octets.
func checkLDH(s string) string {
	if len(s) > 253 {
		return "the name is longer than 253 octets"
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return quote(s) + " has an empty label"
		}
		if len(label) > 63 {
			return quote(s) + " has a label longer than 63 octets"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return quote(s) + " has a label that starts or ends with a hyphen"
		}
		if len(label) >= 4 && label[2:4] == "--" && !strings.HasPrefix(label, "xn--") {
			return quote(s) + " has a reserved label (\"--\" in the third and fourth positions)"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return quote(s) + " contains a character not allowed in a host name (letters, digits and hyphens only)"
			}
		}
	}
	return ""
}

// isIPLiteral reports whether s parses as an address, with or without a
// zone or a prefix length.
func isIPLiteral(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// looksNumeric reports whether the last label of s is all digits or a 0x
// hex number: inet_aton(3) reads "10.1", "167772161" and "0x7f.1" as IPv4
// addresses, and no top-level domain is numeric (RFC 3696 §2).
func looksNumeric(s string) bool {
	last := s[strings.LastIndexByte(s, '.')+1:]
	digits := strings.TrimPrefix(last, "0x")
	hex := len(digits) != len(last)
	if digits == "" {
		return hex
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		switch {
		case '0' <= c && c <= '9':
		case hex && 'a' <= c && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// normalizeIP returns the canonical text form of an address, or "" and the
// reason it is invalid.
func normalizeIP(v string) (string, string) {
	if v == "" {
		return "", "the ip identifier is empty"
	}
	if len(v) > maxIdentifierInput {
		return "", "the ip identifier is too long"
	}
	if strings.Contains(v, "/") {
		return "", quote(v) + " is a prefix; an ip identifier is a single address"
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return "", quote(v) + " is not a valid IP address"
	}
	if a.Zone() != "" {
		return "", quote(v) + " has a zone; zones are local to one host and cannot be certified"
	}
	return a.Unmap().String(), ""
}

// quote quotes s for an error detail, shortened so that a huge value does
// not become a huge problem document.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}
