package eab

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// MaxBindingSize bounds the binding JWS (it holds one public key).
const MaxBindingSize = 16 << 10

// Algorithms are the MAC algorithms accepted for a binding.
var Algorithms = []string{"HS256", "HS384", "HS512"}

// Binding is a parsed binding JWS whose MAC has not been checked yet.
type Binding struct {
	KID string
	Alg string
	URL string

	signingInput []byte // ASCII(protected || '.' || payload)
	mac          []byte
	payload      []byte
}

type bindingJSON struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

// Parse checks the structure of a binding JWS (flattened JSON
// serialization) against the outer request: its url must be url, and its
// payload must be the outer JWS's key.
func Parse(raw []byte, outerKey *jose.JSONWebKey, url string) (*Binding, error) {
	if len(raw) > MaxBindingSize {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding is larger than %d bytes", MaxBindingSize)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var bj bindingJSON
	if err := dec.Decode(&bj); err != nil {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding is not a JWS in flattened JSON serialization")
	}
	if bj.Protected == "" || bj.Payload == "" || bj.Signature == "" {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding must have protected, payload and signature")
	}
	protected, err1 := b64(bj.Protected)
	payload, err2 := b64(bj.Payload)
	mac, err3 := b64(bj.Signature)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding is not valid base64url")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(protected, &hdr); err != nil {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding protected header is not a JSON object")
	}
	b := &Binding{
		signingInput: []byte(bj.Protected + "." + bj.Payload),
		mac:          mac,
		payload:      payload,
	}
	for name, v := range hdr {
		var s string
		switch name {
		case "alg", "kid", "url":
			if err := json.Unmarshal(v, &s); err != nil || s == "" {
				return nil, core.Errorf(core.KindMalformed, "externalAccountBinding header %q must be a non-empty string", name)
			}
		case "nonce":
			return nil, core.Errorf(core.KindMalformed, "externalAccountBinding must not have a nonce")
		default:
			return nil, core.Errorf(core.KindMalformed, "externalAccountBinding has an unsupported header %q", name)
		}
		switch name {
		case "alg":
			b.Alg = s
		case "kid":
			b.KID = s
		case "url":
			b.URL = s
		}
	}
	if b.Alg == "" || b.KID == "" || b.URL == "" {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding header must have alg, kid and url")
	}
	if hashFor(b.Alg) == nil {
		e := core.Errorf(core.KindBadSignatureAlgorithm, "externalAccountBinding algorithm %q is not one of %s", b.Alg, strings.Join(Algorithms, ", "))
		e.Algorithms = Algorithms
		return nil, e
	}
	if b.URL != url {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding url %q is not the newAccount URL %q", b.URL, url)
	}
	inner, err := jws.ParseJWKJSON(payload)
	if err != nil || outerKey == nil || !jws.KeysEqual(inner, outerKey) {
		return nil, core.Errorf(core.KindMalformed, "externalAccountBinding payload is not the account key of the request")
	}
	return b, nil
}

// Verify checks the MAC with the key's secret, in constant time.
func (b *Binding) Verify(hmacKey []byte) error {
	h := hashFor(b.Alg)
	if h == nil || len(hmacKey) == 0 {
		return core.Errorf(core.KindUnauthorized, "external account binding does not verify")
	}
	m := hmac.New(h, hmacKey)
	m.Write(b.signingInput)
	if !hmac.Equal(m.Sum(nil), b.mac) {
		return core.Errorf(core.KindUnauthorized, "external account binding MAC does not verify for key id %q", b.KID)
	}
	return nil
}

func hashFor(alg string) func() hash.Hash {
	switch alg {
	case "HS256":
		return sha256.New
	case "HS384":
		return sha512.New384
	case "HS512":
		return sha512.New
	}
	return nil
}

func b64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "=+/") {
		return nil, base64.CorruptInputError(0)
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
