// Package eab owns External Account Binding (RFC 8555 §7.3.4): verifying the
// binding JWS a client sends in newAccount (HMAC over the account key, with
// the key id the operator handed out), creating the account bound to that
// key in one store transaction, and generating keys for operators.
//
// Error kinds, where the RFC leaves the choice to the server:
//   - a binding that is not a well-formed JWS, has a nonce, a url other than
//     the newAccount URL, or a payload that is not the outer JWS's key:
//     malformed;
//   - an algorithm other than HS256/HS384/HS512: badSignatureAlgorithm;
//   - an unknown, revoked, expired or already-bound key id, a key of another
//     provisioner, or a MAC that does not verify: unauthorized.
//
// The MAC is compared with hmac.Equal (constant time). The HMAC key never
// appears in an error or a log line.
package eab
