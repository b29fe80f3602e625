// Package signer turns a key URI into a crypto.Signer. It owns only the
// dispatch by URI scheme: "file:" keys are loaded by signer/soft, and other
// backends (signer/pkcs11, behind a build tag because it needs cgo) add
// themselves with Register from an init function, so this package never
// imports them and no import cycle can arise.
//
// Everything past Open sees a crypto.Signer. Errors name the URI with its
// secret-bearing parameters (pin-value, passphrase) redacted.
package signer
