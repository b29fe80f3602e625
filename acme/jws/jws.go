package jws

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
)

// Algorithms are the JWS algorithms accepted on ACME requests, in the order
// advertised in badSignatureAlgorithm problems. MAC algorithms and "none"
// are never accepted: an account key is an asymmetric key.
var Algorithms = []string{"ES256", "ES384", "ES512", "RS256", "EdDSA"}

// Header is the JWS protected header of an ACME request. Exactly one of KID
// and JWK is set. Nonce is "" only on a message from ParseInner.
type Header struct {
	Alg   string
	Nonce string
	URL   string
	KID   string
	JWK   *jose.JSONWebKey
}

// Message is a parsed, structurally valid, not yet verified JWS. Nothing in
// it but Header may be trusted before Verify succeeds, and the payload is
// only reachable through Verify.
type Message struct {
	Header Header

	// signingInput is the JWS Signing Input (RFC 7515 §5.2): the protected
	// header and the payload exactly as sent, joined by ".".
	signingInput []byte
	payload      []byte
	signature    []byte
	// postAsGet is set by a successful Verify of an empty payload.
	postAsGet bool
}

// Parse parses the body of an ACME POST request: a JWS in the flattened
// JSON serialization (RFC 8555 §6.2) whose protected header has alg, nonce,
// url and exactly one of jwk (newAccount, revokeCert by certificate key) and
// kid (everything else). It checks the structure, the algorithm and an
// embedded key, but not the signature: call Verify with the account key.
//
// A missing nonce is KindBadNonce (RFC 8555 §6.5); a refused algorithm is
// KindBadSignatureAlgorithm; an embedded key that is too weak or of an
// unsupported type is KindBadPublicKey; anything else is KindMalformed.
func Parse(body []byte) (*Message, error) {
	m, err := parse(body)
	if err != nil {
		return nil, err
	}
	if m.Header.Nonce == "" {
		return nil, core.Errorf(core.KindBadNonce, "the JWS protected header has no nonce")
	}
	return m, nil
}

// ParseInner parses the inner JWS of a keyChange request (RFC 8555 §7.3.5):
// it must carry the new key as jwk, and must have neither kid nor nonce.
// The caller verifies it with its own Header.JWK and compares its url with
// the outer one.
func ParseInner(body []byte) (*Message, error) {
	m, err := parse(body)
	if err != nil {
		return nil, err
	}
	if m.Header.JWK == nil {
		return nil, core.Errorf(core.KindMalformed, "the inner JWS of a key change must carry the new key as \"jwk\", not \"kid\"")
	}
	if m.Header.Nonce != "" {
		return nil, core.Errorf(core.KindMalformed, "the inner JWS of a key change must not have a nonce")
	}
	return m, nil
}

// Verify checks the signature with key and returns the payload. The key's
// type must be the one the header's alg names; a failed signature check is
// KindMalformed, as the request cannot be attributed to anyone.
func (m *Message) Verify(key *jose.JSONWebKey) ([]byte, error) {
	m.postAsGet = false
	if key == nil || key.Key == nil {
		return nil, core.Errorf(core.KindServerInternal, "no key to verify the JWS with")
	}
	if !key.IsPublic() {
		pub := key.Public()
		key = &pub
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkAlgMatchesKey(m.Header.Alg, key); err != nil {
		return nil, err
	}
	if !verifySignature(m.Header.Alg, key, m.signingInput, m.signature) {
		return nil, core.Errorf(core.KindMalformed, "the JWS signature is not valid for the account key")
	}
	m.postAsGet = len(m.payload) == 0
	return slices.Clone(m.payload), nil
}

// IsPostAsGet reports whether the last Verify succeeded on an empty payload,
// which is how RFC 8555 §6.3 spells a GET; "{}" is not one.
func (m *Message) IsPostAsGet() bool { return m.postAsGet }

// flattened is the only serialization accepted.
type flattened struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

func parse(body []byte) (*Message, error) {
	obj, err := strictObject(body)
	if err != nil {
		return nil, core.Wrap(core.KindMalformed, err, "the request body is not a JWS in the flattened JSON serialization")
	}
	if _, ok := obj["signatures"]; ok {
		return nil, core.Errorf(core.KindMalformed, "the general JWS serialization (\"signatures\") is not accepted; send one signature in the flattened serialization")
	}
	if _, ok := obj["header"]; ok {
		return nil, core.Errorf(core.KindMalformed, "the JWS has an unprotected \"header\"; every header parameter must be protected")
	}
	var f flattened
	for name, raw := range obj {
		var dst *string
		switch name {
		case "protected":
			dst = &f.Protected
		case "payload":
			dst = &f.Payload
		case "signature":
			dst = &f.Signature
		default:
			return nil, core.Errorf(core.KindMalformed, "the JWS has an unexpected member %q", name)
		}
		s, err := jsonString(raw)
		if err != nil {
			return nil, core.Errorf(core.KindMalformed, "the JWS member %q is not a string", name)
		}
		*dst = s
	}
	for _, name := range []string{"protected", "payload", "signature"} {
		if _, ok := obj[name]; !ok {
			return nil, core.Errorf(core.KindMalformed, "the JWS has no %q member", name)
		}
	}

	protected, err := b64(f.Protected)
	if err != nil || len(protected) == 0 {
		return nil, core.Errorf(core.KindMalformed, "the JWS protected header is not valid base64url")
	}
	// The header goes first so that an unsigned ("alg":"none", empty
	// signature) request gets badSignatureAlgorithm, the answer that tells
	// the client what to fix.
	h, cerr := parseHeader(protected)
	if cerr != nil {
		return nil, cerr
	}
	payload, err := b64(f.Payload)
	if err != nil {
		return nil, core.Errorf(core.KindMalformed, "the JWS payload is not valid base64url")
	}
	sig, err := b64(f.Signature)
	if err != nil || len(sig) == 0 {
		return nil, core.Errorf(core.KindMalformed, "the JWS signature is missing or not valid base64url")
	}
	// The signature is checked in Verify over the two strings exactly as
	// decoded above: one parser, so there is nothing for a second parser
	// to disagree about.
	input := make([]byte, 0, len(f.Protected)+1+len(f.Payload))
	input = append(append(append(input, f.Protected...), '.'), f.Payload...)
	return &Message{Header: h, signingInput: input, payload: payload, signature: sig}, nil
}

// parseHeader checks the protected header. It returns *core.Error rather
// than error so that callers cannot lose the kind.
func parseHeader(protected []byte) (Header, *core.Error) {
	var h Header
	obj, err := strictObject(protected)
	if err != nil {
		return h, core.Wrap(core.KindMalformed, err, "the JWS protected header is not a JSON object")
	}
	for _, name := range []string{"b64", "crit"} {
		if _, ok := obj[name]; ok {
			return h, core.Errorf(core.KindMalformed, "the JWS header parameter %q is not supported", name)
		}
	}
	str := func(name string) (string, *core.Error) {
		raw, ok := obj[name]
		if !ok {
			return "", nil
		}
		s, err := jsonString(raw)
		if err != nil {
			return "", core.Errorf(core.KindMalformed, "the JWS header parameter %q is not a string", name)
		}
		return s, nil
	}
	var cerr *core.Error
	if h.Alg, cerr = str("alg"); cerr != nil {
		return h, cerr
	}
	if !slices.Contains(Algorithms, h.Alg) {
		e := core.Errorf(core.KindBadSignatureAlgorithm, "the JWS algorithm %s is not accepted; use one of %s",
			quoteAlg(h.Alg), strings.Join(Algorithms, ", "))
		e.Algorithms = slices.Clone(Algorithms)
		return h, e
	}
	if h.Nonce, cerr = str("nonce"); cerr != nil {
		return h, cerr
	}
	if h.URL, cerr = str("url"); cerr != nil {
		return h, cerr
	}
	if h.URL == "" {
		return h, core.Errorf(core.KindMalformed, "the JWS protected header has no url")
	}
	rawJWK, hasJWK := obj["jwk"]
	_, hasKID := obj["kid"]
	switch {
	case hasJWK && hasKID:
		return h, core.Errorf(core.KindMalformed, "the JWS protected header has both jwk and kid; send exactly one")
	case !hasJWK && !hasKID:
		return h, core.Errorf(core.KindMalformed, "the JWS protected header has neither jwk nor kid; send exactly one")
	case hasKID:
		if h.KID, cerr = str("kid"); cerr != nil {
			return h, cerr
		}
		if h.KID == "" {
			return h, core.Errorf(core.KindMalformed, "the JWS kid is empty")
		}
	default:
		if h.JWK, cerr = parseJWK(rawJWK); cerr != nil {
			return h, cerr
		}
		if cerr = checkAlgMatchesKey(h.Alg, h.JWK); cerr != nil {
			return h, cerr
		}
	}
	return h, nil
}

func quoteAlg(alg string) string {
	if alg == "" {
		return "(none given)"
	}
	const limit = 32
	if len(alg) > limit {
		alg = alg[:limit]
	}
	b, _ := json.Marshal(alg)
	return string(b)
}

// b64 decodes unpadded base64url strictly: padding, other alphabets and
// non-zero trailing bits are refused, so that one JWS has one spelling.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// strictObject decodes a JSON object into its members, refusing duplicate
// names (RFC 7515 §5.2 requires unique header parameter names, and two
// parsers could otherwise disagree about which one counts), non-objects
// and trailing data.
//
// It runs on every request, twice (body and protected header), so it does
// not use json.Decoder's token API, which allocates per token: json.Valid
// checks the syntax of the whole input first (trailing data included), and
// the walk below only has to find member boundaries in a document known to
// be valid JSON. FuzzStrictObject compares it with the token-based version.
func strictObject(data []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(data) {
		return nil, errSyntax
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, errNotObject
	}
	i++
	obj := make(map[string]json.RawMessage, 4)
	for {
		i = skipSpace(data, i)
		switch data[i] {
		case '}':
			return obj, nil
		case ',':
			i = skipSpace(data, i+1)
		}
		end := valueEnd(data, i) // a member name: a string
		name, err := jsonString(data[i:end])
		if err != nil {
			return nil, err
		}
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1)
		end = valueEnd(data, i)
		if _, dup := obj[name]; dup {
			return nil, &dupError{name}
		}
		obj[name] = data[i:end:end]
		i = end
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at i, in
// data that json.Valid accepted.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		i++
		for data[i] != '"' {
			if data[i] == '\\' {
				i++
			}
			i++
		}
		return i + 1
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i = valueEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// jsonString decodes a JSON string value as json.Unmarshal into a string
// does, without reflection for the common case of printable ASCII without
// escapes. raw is one value as strictObject cut it (no surrounding space);
// anything but a string is refused, null included, which json.Unmarshal
// would take as "" (RFC 7515 §7.2.1: the members are strings, so
// "payload": null is not an empty payload, a POST-as-GET).
func jsonString(raw []byte) (string, error) {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return "", errNotString
	}
	plain := true
	for _, c := range raw[1 : n-1] {
		if c < 0x20 || c >= 0x80 || c == '\\' || c == '"' {
			plain = false
			break
		}
	}
	if plain {
		return string(raw[1 : n-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const (
	errSyntax    = jsonError("not valid JSON")
	errNotObject = jsonError("not a JSON object")
	errTrailing  = jsonError("data after the JSON object")
	errNotString = jsonError("not a JSON string")
)

type dupError struct{ name string }

func (e *dupError) Error() string { return "duplicate member " + quoteAlg(e.name) }
