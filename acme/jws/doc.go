// Package jws parses and verifies the JSON Web Signatures that carry every
// ACME request (RFC 8555 §6.2, RFC 7515), and computes the key thumbprints
// and key authorizations derived from account keys (RFC 7638, RFC 8555 §8.1).
//
// The structural rules of RFC 8555 are checked here, by this package, before
// any cryptography: flattened JSON serialization only, one signature, a
// protected header with alg, nonce, url and exactly one of jwk and kid, no
// unprotected header, no b64 or crit extensions, and only the algorithms in
// Algorithms with keys of acceptable strength. go-jose is used for the
// signature verification itself. Every error is a *core.Error whose kind is
// the ACME problem type to send back.
//
// This package knows nothing about accounts, nonces or URLs: the caller looks
// the kid up, redeems the nonce and compares the url, in that order of its
// choosing.
package jws
