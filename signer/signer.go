package signer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/policyca/policyca/signer/soft"
)

// Opener loads the key a URI names. It is called with the full URI,
// including secrets, and must not put them in its errors: Open adds the
// redacted URI to any error it returns.
type Opener func(ctx context.Context, uri string) (crypto.Signer, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{
		"file": soft.Open,
		// Replaced by signer/pkcs11 when it is linked in; until then the
		// scheme is known but refused with a clear message rather than
		// "unknown scheme", which would suggest a typo.
		"pkcs11": func(context.Context, string) (crypto.Signer, error) {
			return nil, ErrPKCS11NotBuilt
		},
	}
)

// ErrPKCS11NotBuilt is returned for pkcs11: URIs when no PKCS#11 backend
// has registered itself (the binary was built without it).
var ErrPKCS11NotBuilt = errors.New("pkcs11 signer not built yet")

// Register makes scheme (without the colon, case-insensitive) resolve to
// open, replacing any previous opener. Backends call it from init.
func Register(scheme string, open Opener) {
	if scheme == "" || open == nil {
		panic("signer: Register with empty scheme or nil opener")
	}
	mu.Lock()
	defer mu.Unlock()
	openers[strings.ToLower(scheme)] = open
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Open returns the signer the key URI names.
func Open(ctx context.Context, uri string) (crypto.Signer, error) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("signer: key URI %q has no scheme (want file: or pkcs11:)", Redact(uri))
	}
	mu.RLock()
	open := openers[strings.ToLower(scheme)]
	mu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("signer: key URI %q: unknown scheme %q (known: %s)",
			Redact(uri), scheme, strings.Join(Schemes(), ", "))
	}
	s, err := open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("signer: open %s: %w", Redact(uri), err)
	}
	if s == nil {
		return nil, fmt.Errorf("signer: open %s: backend returned no signer", Redact(uri))
	}
	return s, nil
}

// secretParams are URI attributes whose values are secrets. pin-source is
// not one: it names where the secret is, which operators need to see.
var secretParams = map[string]bool{
	"pin-value":  true,
	"passphrase": true,
	"password":   true,
	"pin":        true,
}

// Redact returns uri with the values of secret attributes replaced by
// "REDACTED". It handles both RFC 7512 path attributes (separated by ';')
// and query attributes (separated by '&'), and never fails: an unparsable
// URI is still redacted textually.
func Redact(uri string) string {
	var b strings.Builder
	start := 0
	for i := 0; i <= len(uri); i++ {
		if i < len(uri) && !isSeparator(uri[i]) {
			continue
		}
		attr := uri[start:i]
		if red := redactAttr(attr); red != attr {
			// A secret value runs to the next separator that starts an
			// attribute of a known name: a PIN may hold an unencoded
			// ';', '?' or '&', and what follows one is still the PIN.
			for i < len(uri) && !startsKnownAttr(uri[i+1:]) {
				i++
				for i < len(uri) && !isSeparator(uri[i]) {
					i++
				}
			}
			attr = red
		}
		b.WriteString(attr)
		if i < len(uri) {
			b.WriteByte(uri[i])
		}
		start = i + 1
	}
	return b.String()
}

func isSeparator(c byte) bool { return c == ';' || c == '&' || c == '?' }

// knownAttrs are the attribute names of RFC 7512 pkcs11 URIs (path and
// query) and of policyca's own (max-sessions); the secret ones are
// secretParams.
var knownAttrs = []string{"token", "manufacturer", "model", "serial", "slot-description", "slot-manufacturer",
	"slot-id", "library-description", "library-manufacturer", "library-version", "object", "type", "id",
	"module-name", "module-path", "pin-source", "max-sessions"}

// startsKnownAttr reports whether s starts with "name=" for a known name.
func startsKnownAttr(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	if !ok || strings.ContainsAny(name, ";&?") {
		return false
	}
	if unesc, err := url.PathUnescape(name); err == nil {
		name = unesc
	}
	name = strings.ToLower(name)
	return slices.Contains(knownAttrs, name) || secretParams[name]
}

func redactAttr(attr string) string {
	name, _, ok := strings.Cut(attr, "=")
	if !ok {
		return attr
	}
	// The first attribute of a pkcs11 path carries the scheme: "pkcs11:pin-value=x".
	if _, after, found := strings.Cut(name, ":"); found {
		name = after
	}
	key := strings.ToLower(name)
	if unesc, err := url.PathUnescape(key); err == nil {
		key = unesc
	}
	if secretParams[key] {
		return attr[:strings.Index(attr, "=")+1] + "REDACTED"
	}
	return attr
}
