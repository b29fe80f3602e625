package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	// The hashes crypto.Hash.New needs for ES256/RS256, ES384 and ES512.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// verifySignature checks a JWS signature (RFC 7518 §3.3, §3.4; RFC 8037
// §3.1) over input. The caller has checked that alg is the one algorithm
// that goes with key (checkAlgMatchesKey), so the key type decides.
//
// It replaces go-jose's verifier for the request path: go-jose would need
// the JWS re-serialised and parsed a second time, which cost more than the
// signature check itself, for the same three primitives below.
func verifySignature(alg string, key *jose.JSONWebKey, input, sig []byte) bool {
	switch k := key.Key.(type) {
	case *ecdsa.PublicKey:
		var h crypto.Hash
		var size int // bytes of r and of s: the curve's order, rounded up
		switch alg {
		case "ES256":
			h, size = crypto.SHA256, 32
		case "ES384":
			h, size = crypto.SHA384, 48
		case "ES512":
			h, size = crypto.SHA512, 66
		default:
			return false
		}
		// RFC 7518 §3.4: R and S as fixed-length big-endian octets, no
		// ASN.1; any other length is not a signature of this curve.
		if len(sig) != 2*size || (k.Curve.Params().BitSize+7)/8 != size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest(h, input), r, s)
	case *rsa.PublicKey:
		if alg != "RS256" {
			return false
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest(crypto.SHA256, input), sig) == nil
	case ed25519.PublicKey:
		if alg != "EdDSA" || len(k) != ed25519.PublicKeySize {
			return false
		}
		return ed25519.Verify(k, input, sig)
	}
	return false
}

func digest(h crypto.Hash, input []byte) []byte {
	d := h.New()
	d.Write(input)
	return d.Sum(nil)
}
