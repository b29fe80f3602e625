package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/signer/soft"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "k.pem")
	if err := soft.WriteKey(keyPath, k, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uri     string
		want    string // "" = success
		wantErr error
		leak    string
	}{
		{name: "file", uri: "file:" + keyPath},
		{name: "FILE upper case scheme", uri: "FILE:" + keyPath},
		{name: "pkcs11 not built", uri: "pkcs11:token=ca;object=int?pin-value=hunter2", want: "pkcs11 signer not built yet", wantErr: ErrPKCS11NotBuilt, leak: "hunter2"},
		{name: "no scheme", uri: "/etc/key.pem", want: "no scheme"},
		{name: "unknown scheme", uri: "vault:secret/ca", want: "unknown scheme"},
		{name: "file error redacts pin-value", uri: "file:" + filepath.Join(dir, "none.pem") + "?pin-value=hunter2", want: "REDACTED", leak: "hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.uri)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
					t.Fatal("wrong key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want error mentioning %q", err, tc.want)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v is not %v", err, tc.wantErr)
			}
			if tc.leak != "" && strings.Contains(err.Error(), tc.leak) {
				t.Fatalf("error %q leaks a secret", err)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	const scheme = "testscheme"
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	Register("TestScheme", func(_ context.Context, uri string) (crypto.Signer, error) {
		got = uri
		if strings.Contains(uri, "fail") {
			return nil, errors.New("backend refused")
		}
		return k, nil
	})
	t.Cleanup(func() {
		mu.Lock()
		delete(openers, scheme)
		mu.Unlock()
	})
	if s, err := Open(context.Background(), "testscheme:obj?pin-value=x"); err != nil || s != k {
		t.Fatalf("Open = %v, %v", s, err)
	}
	if got != "testscheme:obj?pin-value=x" {
		t.Errorf("opener got %q, want the full URI", got)
	}
	_, err = Open(context.Background(), "testscheme:fail;pin-value=topsecret")
	if err == nil || !strings.Contains(err.Error(), "backend refused") || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Open error = %v", err)
	}
	found := false
	for _, s := range Schemes() {
		found = found || s == scheme
	}
	if !found {
		t.Errorf("Schemes() = %v lacks %s", Schemes(), scheme)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"file:/k.pem", "file:/k.pem"},
		{"file:/k.pem?pin-source=file:/etc/pin", "file:/k.pem?pin-source=file:/etc/pin"},
		{"file:/k.pem?pin-value=s3cret", "file:/k.pem?pin-value=REDACTED"},
		{"file:/k.pem?passphrase=s3cret&pin-source=file:/p", "file:/k.pem?passphrase=REDACTED&pin-source=file:/p"},
		// A separator that does not start a known attribute is part of
		// the PIN: what follows it stays hidden.
		{"file:/k.pem?passphrase=s3cret&x=1", "file:/k.pem?passphrase=REDACTED"},
		{"file:/k.pem?pin-value=Secret&Tail42", "file:/k.pem?pin-value=REDACTED"},
		{"pkcs11:token=t?module-path=/m.so&pin-value=Secret&Tail=42&max-sessions=4", "pkcs11:token=t?module-path=/m.so&pin-value=REDACTED&max-sessions=4"},
		{"pkcs11:token=t;pin-value=Sec;ret;object=o?module-path=/m.so", "pkcs11:token=t;pin-value=REDACTED;object=o?module-path=/m.so"},
		{"pkcs11:token=ca;pin-value=1234;object=k?module-path=/lib/x.so", "pkcs11:token=ca;pin-value=REDACTED;object=k?module-path=/lib/x.so"},
		{"pkcs11:pin-value=1234", "pkcs11:pin-value=REDACTED"},
		{"pkcs11:token=a?PIN-VALUE=1234&pin-source=file:/p", "pkcs11:token=a?PIN-VALUE=REDACTED&pin-source=file:/p"},
		{"pkcs11:token=a?pin%2Dvalue=1234", "pkcs11:token=a?pin%2Dvalue=REDACTED"},
		// An unencoded ';' or '?' inside a query PIN does not end it.
		{"pkcs11:token=a?pin-value=ab;cd&module-path=/m.so", "pkcs11:token=a?pin-value=REDACTED&module-path=/m.so"},
		{"pkcs11:token=a?module-path=/m.so&pin-value=ab;c?d", "pkcs11:token=a?module-path=/m.so&pin-value=REDACTED"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Fatalf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRegisterRejectsEmpty(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Register with a nil opener did not panic")
		}
	}()
	Register("x", nil)
}
