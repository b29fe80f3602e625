package pkcs11

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/signer"
)

// Errors callers can test with errors.Is. Every error this package returns
// also names the redacted URI and the underlying cause.
var (
	// ErrNotBuilt: the binary has no PKCS#11 support.
	ErrNotBuilt = errors.New("policyca was built without PKCS#11 support (cgo disabled or nopkcs11 tag)")
	// ErrModule: the PKCS#11 module could not be loaded or initialised.
	ErrModule = errors.New("cannot load PKCS#11 module")
	// ErrTokenNotFound: no token with the URI's label is present.
	ErrTokenNotFound = errors.New("token not found")
	// ErrBadPIN: the token refused the PIN (incorrect, locked or expired).
	ErrBadPIN = errors.New("token refused the PIN")
	// ErrKeyNotFound: no key pair matches the URI's object and id.
	ErrKeyNotFound = errors.New("key not found")
	// ErrAmbiguousKey: more than one key pair matches the URI.
	ErrAmbiguousKey = errors.New("more than one key matches")
	// ErrKeyExists: GenerateKey was asked for a label or id already in use.
	ErrKeyExists = errors.New("a key with this label or id already exists")
	// ErrUnavailable: the token failed and has not come back yet.
	ErrUnavailable = errors.New("HSM unavailable")
	// ErrClosed: the signer was closed.
	ErrClosed = errors.New("signer closed")
)

// HealthChecker is implemented by the signers Open and GenerateKey return.
// The server's health endpoint asserts to it: Healthy reports false with
// the cause while the token is failing, and true again once the signer has
// reconnected by itself.
type HealthChecker interface {
	Healthy() (bool, error)
}

func init() {
	// signer.Open prefixes errors with the redacted URI itself.
	signer.Register("pkcs11", func(ctx context.Context, uri string) (crypto.Signer, error) {
		s, _, err := defaultManager.open(ctx, uri)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// defaultManager holds the process-wide cache of token connections that
// Open, GenerateKey and Exists share.
var defaultManager = newManager(dialToken)

// Open returns a signer for an existing key pair, found by the URI's
// object (CKA_LABEL) and/or id (CKA_ID); exactly one key must match. The
// result is a *Signer: call Close when done so that the token connection
// can be released once no key uses it.
func Open(ctx context.Context, uri string) (crypto.Signer, error) {
	s, u, err := defaultManager.open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: open %s: %w", redactedOf(u, uri), err)
	}
	return s, nil
}

// GenerateKey makes a new key pair of the given spec on the token, labelled
// with the URI's object (required) and with its id, or a random 16-byte id
// when the URI has none. The private key is sensitive and never
// extractable, and can only sign. It refuses to proceed if a key with that
// label or id already exists, so that an `init` run twice cannot shadow the
// key a CA certificate was issued for.
func GenerateKey(ctx context.Context, uri string, spec pki.KeySpec) (crypto.Signer, error) {
	s, u, err := defaultManager.generate(ctx, uri, spec)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generate %s key at %s: %w", spec, redactedOf(u, uri), err)
	}
	return s, nil
}

// Exists reports whether a key pair matching the URI is on the token, so
// that `init --kms` can tell "use --existing" from "generate".
func Exists(ctx context.Context, uri string) (bool, error) {
	ok, u, err := defaultManager.exists(ctx, uri)
	if err != nil {
		return false, fmt.Errorf("pkcs11: look up %s: %w", redactedOf(u, uri), err)
	}
	return ok, nil
}

// redactedOf names the URI in an error. A URI that did not parse may hold
// a PIN anywhere (a stray ';' inside pin-value defeats attribute-wise
// redaction), so only its path is shown, cut before any mention of "pin".
func redactedOf(u *URI, raw string) string {
	if u != nil {
		return u.Redacted()
	}
	path, _, cut := strings.Cut(raw, "?")
	if i := strings.Index(strings.ToLower(path), "pin"); i >= 0 {
		path, cut = path[:i], true
	}
	if cut {
		path += "…"
	}
	return signer.Redact(path)
}
