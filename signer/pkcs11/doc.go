// Package pkcs11 turns RFC 7512 "pkcs11:" key URIs into crypto.Signers
// backed by a PKCS#11 token (an HSM, or SoftHSM2 in tests and demos),
// through github.com/ThalesGroup/crypto11.
//
// It owns three things:
//
//   - the strict URI grammar policyca accepts (ParseURI), with the PIN
//     kept out of every string the URI or its errors produce;
//   - a cache of open token connections, one per (module, token), shared
//     by every key on that token and closed when its last key is closed;
//   - fault handling: a signer whose token fails (session closed, token
//     removed, device error) reports itself unhealthy, drops the broken
//     connection, and reconnects by itself, at most once per second, when
//     the token answers again.
//
// The real implementation needs cgo. Built with CGO_ENABLED=0 or the
// "nopkcs11" tag the package still parses URIs, but Open and GenerateKey
// return ErrNotBuilt. Importing the package (a blank import is enough)
// registers the "pkcs11" scheme with package signer.
package pkcs11
