package jws

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
)

// RSA modulus bounds for account keys. The upper bound keeps a hostile
// client from making every verification expensive.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). go-jose would
// happily parse them; an account key sent over the wire must not have them.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// ParseJWKJSON parses a public JSON Web Key, such as a stored account key
// (core.Account.KeyJWK), with the same checks as a jwk in a request header:
// no private material, no certificate chain, an accepted key type and size.
func ParseJWKJSON(b []byte) (*jose.JSONWebKey, error) {
	k, err := parseJWK(b)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func parseJWK(raw []byte) (*jose.JSONWebKey, *core.Error) {
	obj, err := strictObject(raw)
	if err != nil {
		return nil, core.Wrap(core.KindMalformed, err, "the jwk is not a JSON object")
	}
	for _, name := range privateMembers {
		if _, ok := obj[name]; ok {
			return nil, core.Errorf(core.KindMalformed, "the jwk contains private key material (%q); send the public key only", name)
		}
	}
	// A certificate chain adds an X.509 parser to the attack surface of
	// every request for no benefit: ACME account keys are bare keys.
	for _, name := range []string{"x5c", "x5u", "x5t", "x5t#S256"} {
		if _, ok := obj[name]; ok {
			return nil, core.Errorf(core.KindMalformed, "the jwk has an X.509 member (%q), which is not accepted on account keys", name)
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, core.Wrap(core.KindBadPublicKey, err, "the jwk is not a valid public key")
	}
	if !k.IsPublic() || !k.Valid() {
		return nil, core.Errorf(core.KindBadPublicKey, "the jwk is not a valid public key")
	}
	if cerr := checkKey(&k); cerr != nil {
		return nil, cerr
	}
	return &k, nil
}

// checkKey refuses key types and sizes that are never acceptable as account
// keys, whatever the policy says.
func checkKey(k *jose.JSONWebKey) *core.Error {
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return core.Errorf(core.KindBadPublicKey, "the EC key's curve is not accepted; use P-256, P-384 or P-521")
	case *rsa.PublicKey:
		if key.N == nil {
			return core.Errorf(core.KindBadPublicKey, "the RSA key has no modulus")
		}
		bits := key.N.BitLen()
		if bits < minRSABits || bits > maxRSABits {
			return core.Errorf(core.KindBadPublicKey, "the RSA key has %d bits; accepted sizes are %d to %d bits", bits, minRSABits, maxRSABits)
		}
		// An even modulus cannot be a product of two large primes, and an
		// exponent of 1 makes every message its own signature.
		if key.N.Bit(0) == 0 || key.E < 3 || key.E%2 == 0 {
			return core.Errorf(core.KindBadPublicKey, "the RSA key is not a valid public key (bad modulus or exponent)")
		}
		return nil
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return core.Errorf(core.KindBadPublicKey, "the Ed25519 key has the wrong length")
		}
		return nil
	case []byte:
		return core.Errorf(core.KindBadPublicKey, "symmetric keys cannot be account keys")
	default:
		return core.Errorf(core.KindBadPublicKey, "the key type is not accepted; use an EC (P-256, P-384, P-521), RSA (2048+ bits) or Ed25519 key")
	}
}

// algForKey returns the one algorithm accepted with k, or "".
func algForKey(k *jose.JSONWebKey) string {
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	case *rsa.PublicKey:
		return "RS256"
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// checkAlgMatchesKey makes sure the header's alg is the one that goes with
// the key: each key type and curve has exactly one accepted algorithm, and
// letting the client pick another (ES256 with a P-384 key) would only invite
// confusion between verifiers.
func checkAlgMatchesKey(alg string, k *jose.JSONWebKey) *core.Error {
	want := algForKey(k)
	if want == "" {
		return core.Errorf(core.KindBadPublicKey, "the key type is not accepted")
	}
	if alg != want {
		e := core.Errorf(core.KindBadSignatureAlgorithm, "the JWS algorithm %s does not match the key; this key signs with %s", quoteAlg(alg), want)
		e.Algorithms = []string{want}
		return e
	}
	return nil
}

// Thumbprint returns the base64url-encoded SHA-256 JWK thumbprint of the
// key's public part (RFC 7638), as stored in core.Account.KeyThumbprint.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	if key == nil || key.Key == nil {
		return "", core.Errorf(core.KindBadPublicKey, "no key to compute a thumbprint of")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", core.Wrap(core.KindBadPublicKey, err, "cannot compute the key's thumbprint")
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// KeyAuthorization returns token || "." || Thumbprint(key) (RFC 8555 §8.1).
// The token must be a non-empty base64url string, as the server issues it.
func KeyAuthorization(token string, key *jose.JSONWebKey) (string, error) {
	if token == "" || !isBase64URL(token) {
		return "", core.Errorf(core.KindMalformed, "the challenge token is not a base64url string")
	}
	tp, err := Thumbprint(key)
	if err != nil {
		return "", err
	}
	return token + "." + tp, nil
}

// KeysEqual reports whether a and b have the same public key. Nil keys are
// equal to nothing, not even each other, so that a missing key can never
// match.
func KeysEqual(a, b *jose.JSONWebKey) bool {
	if a == nil || b == nil || a.Key == nil || b.Key == nil {
		return false
	}
	ta, err := a.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	tb, err := b.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	return bytes.Equal(ta, tb)
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// MarshalJWK returns the JSON form of key's public part, suitable for
// core.Account.KeyJWK and for ParseJWKJSON.
func MarshalJWK(key *jose.JSONWebKey) ([]byte, error) {
	if key == nil || key.Key == nil {
		return nil, core.Errorf(core.KindBadPublicKey, "no key to marshal")
	}
	pub := key.Public()
	if pub.Key == nil {
		return nil, core.Errorf(core.KindBadPublicKey, "the key has no public part")
	}
	b, err := json.Marshal(pub)
	if err != nil {
		return nil, core.Wrap(core.KindBadPublicKey, err, "cannot encode the key")
	}
	return b, nil
}
