//go:build !cgo || nopkcs11

package pkcs11

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/signer"
)

// Without cgo the scheme is still registered, URIs are still checked, and
// a valid URI gets a message saying what is missing from the build.
func TestStubSaysNotBuilt(t *testing.T) {
	uri := "pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=" + testPIN
	if _, err := Open(context.Background(), uri); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := GenerateKey(context.Background(), uri, pki.ECDSAP256); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("GenerateKey: %v", err)
	}
	_, err := signer.Open(context.Background(), uri)
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), "cgo disabled or nopkcs11 tag") ||
		strings.Contains(err.Error(), testPIN) {
		t.Fatalf("signer.Open: %v", err)
	}
	if _, err := Open(context.Background(), "pkcs11:token=t;bogus=1"); err == nil || errors.Is(err, ErrNotBuilt) {
		t.Fatalf("bad URI: %v, want a URI error", err)
	}
}
