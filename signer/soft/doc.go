// Package soft loads and writes software keys: PEM files named by
// "file:" key URIs, optionally encrypted with a passphrase (PKCS#8 PBES2,
// RFC 8018). It is meant for small setups and development; production CAs
// keep their keys in an HSM (signer/pkcs11).
//
// The PBES2 code is our own, on crypto/pbkdf2 and encoding/asn1, so that no
// dependency beyond the standard library is needed to read the keys that
// "openssl pkcs8 -topk8 -v2 aes-256-cbc" writes.
package soft
