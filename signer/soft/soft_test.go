package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	keysOnce sync.Once
	testKeys map[string]crypto.Signer
)

// keys returns one key of each supported type, generated once.
func TestMain(m *testing.M) {
	// PBKDF2 at the production count takes seconds per key under -race;
	// TestDefaultIterations checks the production count separately.
	kdfIterations = 1000
	os.Exit(m.Run())
}

func TestDefaultIterations(t *testing.T) {
	enc, err := encryptPKCS8(rand.Reader, []byte("k"), []byte("p"), defaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	var info encryptedPrivateKeyInfo
	var params pbes2Params
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(enc, &info); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		t.Fatal(err)
	}
	if kdf.IterationCount < 600_000 || !kdf.PRF.Algorithm.Equal(oidHMACWithSHA256) || !params.EncryptionScheme.Algorithm.Equal(oidAES256CBC) {
		t.Fatalf("written with %d iterations, PRF %v, cipher %v", kdf.IterationCount, kdf.PRF.Algorithm, params.EncryptionScheme.Algorithm)
	}
	if len(kdf.Salt) != saltLen {
		t.Fatalf("salt of %d bytes", len(kdf.Salt))
	}
}

func TestURIRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd #dir?&=")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	k := keys(t)["ed25519"]
	p := filepath.Join(dir, "k.pem")
	if err := WriteKey(p, k, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	pin := writeFile(t, dir, "pin #1", []byte("pw"))
	got, err := Open(context.Background(), URI(p, pin))
	if err != nil {
		t.Fatalf("Open(%s): %v", URI(p, pin), err)
	}
	samePublic(t, k, got)
}

func keys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	keysOnce.Do(func() {
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		testKeys = map[string]crypto.Signer{"ecdsa": ec, "rsa": rk, "ed25519": ed}
	})
	return testKeys
}

func samePublic(t *testing.T, a, b crypto.Signer) {
	t.Helper()
	if !a.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Public()) {
		t.Fatal("loaded key differs from the original")
	}
	// The loaded key must also sign.
	d := sha256.Sum256([]byte("x"))
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := b.(ed25519.PrivateKey); ok {
		opts = crypto.Hash(0)
		if _, err := b.Sign(rand.Reader, []byte("x"), opts); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := b.Sign(rand.Reader, d[:], opts); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTripFormats(t *testing.T) {
	ks := keys(t)
	ec := ks["ecdsa"].(*ecdsa.PrivateKey)
	rk := ks["rsa"].(*rsa.PrivateKey)
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse battery staple")
	tests := []struct {
		name string
		key  crypto.Signer
		pem  func(t *testing.T) []byte
		pass []byte
	}{
		{"EC PRIVATE KEY", ec, func(*testing.T) []byte { return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}) }, nil},
		{"EC PRIVATE KEY after EC PARAMETERS", ec, func(*testing.T) []byte {
			return append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
				pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
		}, nil},
		{"RSA PRIVATE KEY", rk, func(*testing.T) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
		}, nil},
	}
	for _, name := range []string{"ecdsa", "rsa", "ed25519"} {
		k := ks[name]
		tests = append(tests,
			struct {
				name string
				key  crypto.Signer
				pem  func(t *testing.T) []byte
				pass []byte
			}{"PKCS#8 " + name, k, func(t *testing.T) []byte {
				b, err := MarshalKey(k, nil)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}, nil},
			struct {
				name string
				key  crypto.Signer
				pem  func(t *testing.T) []byte
				pass []byte
			}{"encrypted PKCS#8 " + name, k, func(t *testing.T) []byte {
				b, err := MarshalKey(k, pass)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte("ENCRYPTED PRIVATE KEY")) {
					t.Fatal("MarshalKey with a passphrase did not encrypt")
				}
				return b
			}, pass})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, "key.pem", tc.pem(t))
			uri := URI(p, "")
			if tc.pass != nil {
				pin := writeFile(t, dir, "pass", append(append([]byte(nil), tc.pass...), '\n'))
				uri = URI(p, pin)
			}
			k, err := Open(context.Background(), uri)
			if err != nil {
				t.Fatalf("Open(%s): %v", uri, err)
			}
			samePublic(t, tc.key, k)
		})
	}
}

func TestWriteKey(t *testing.T) {
	k := keys(t)["ecdsa"]
	dir := filepath.Join(t.TempDir(), "new", "keys")
	p := filepath.Join(dir, "ca.key")
	pass := []byte("s3cret")
	if err := WriteKey(p, k, pass); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{p: 0o600, dir: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	got, err := LoadKey(p, pass)
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, k, got)
	if err := WriteKey(p, keys(t)["rsa"], nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwriting a key: %v", err)
	}
	again, err := LoadKey(p, pass)
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, k, again)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	k := keys(t)["ecdsa"]
	enc, err := MarshalKey(k, []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	encPath := writeFile(t, dir, "enc.pem", enc)
	wrongPin := writeFile(t, dir, "wrong", []byte("wrong\n"))
	emptyPin := writeFile(t, dir, "empty", []byte("\n"))
	notPEM := writeFile(t, dir, "bad.pem", []byte("this is not PEM"))
	badDER := writeFile(t, dir, "baddER.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x00}}))
	legacy := writeFile(t, dir, "legacy.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}}))
	legacy2 := writeFile(t, dir, "legacy2.pem", pem.EncodeToMemory(&pem.Block{Type: "X PRIVATE KEY",
		Headers: map[string]string{"DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}}))

	tests := []struct {
		name    string
		uri     string
		want    string
		wantErr error
	}{
		{"missing file", "file:" + filepath.Join(dir, "nope.pem"), "no such file", nil},
		{"bad PEM", "file:" + notPEM, "no private key PEM block", nil},
		{"bad DER", "file:" + badDER, "parse private key", nil},
		{"legacy encrypted RSA", "file:" + legacy, "DEK-Info", nil},
		{"legacy encryption, other type", "file:" + legacy2, "DEK-Info", nil},
		{"wrong passphrase", "file:" + encPath + "?pin-source=file:" + wrongPin, "", ErrBadPassphrase},
		{"wrong pin-value", "file:" + encPath + "?pin-value=nope", "", ErrBadPassphrase},
		{"no passphrase", "file:" + encPath, "", ErrBadPassphrase},
		{"empty pin file", "file:" + encPath + "?pin-source=file:" + emptyPin, "empty", nil},
		{"missing pin file", "file:" + encPath + "?pin-source=" + filepath.Join(dir, "nopin"), "pin-source", nil},
		{"relative path", "file:key.pem", "not absolute", nil},
		{"relative pin-source", "file:" + encPath + "?pin-source=pin", "not an absolute", nil},
		{"unknown attribute", "file:" + encPath + "?pin=x", `unknown attribute "pin"`, nil},
		// An unencoded '&' in a PIN: the rest of the PIN is not quoted.
		{"PIN with an '&'", "file:" + encPath + "?pin-value=nope&tail42", "unknown attribute (not shown", nil},
		{"both pin kinds", "file:" + encPath + "?pin-value=a&pin-source=file:" + wrongPin, "both", nil},
		{"remote host", "file://server/etc/key.pem", "remote host", nil},
		{"other scheme", "pkcs11:token=x", "not file", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.uri)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			for _, secret := range []string{"nope", "right", "tail42"} {
				if strings.Contains(err.Error(), "="+secret) || secret == "tail42" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q leaks a passphrase", err)
				}
			}
		})
	}
}

func mustOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		// The interop test is the only proof our PBES2 matches OpenSSL's:
		// fail, never skip, when the tool is missing.
		t.Fatalf("openssl is required for this test (apt-get install openssl): %v", err)
	}
	return p
}

func runOpenSSL(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestOpenSSLInterop(t *testing.T) {
	bin := mustOpenSSL(t)
	tests := []struct {
		name  string
		key   string
		extra []string
	}{
		{"aes-256-cbc default PRF ecdsa", "ecdsa", nil},
		{"aes-256-cbc default PRF rsa", "rsa", nil},
		{"aes-256-cbc ed25519", "ed25519", nil},
		{"aes-128-cbc hmacWithSHA1", "ecdsa", []string{"-v2prf", "hmacWithSHA1"}},
		{"aes-256-cbc hmacWithSHA512", "ecdsa", []string{"-v2prf", "hmacWithSHA512"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := keys(t)[tc.key]
			plain, err := MarshalKey(k, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := writeFile(t, dir, "plain.pem", plain)
			pw := writeFile(t, dir, "pw", []byte("interop pass\n"))
			cipher := "aes-256-cbc"
			if strings.Contains(tc.name, "aes-128") {
				cipher = "aes-128-cbc"
			}
			// OpenSSL encrypts, we decrypt.
			enc := filepath.Join(dir, "enc.pem")
			args := append([]string{"pkcs8", "-topk8", "-v2", cipher}, tc.extra...)
			runOpenSSL(t, bin, append(args, "-in", in, "-out", enc, "-passout", "file:"+pw)...)
			got, err := Open(context.Background(), URI(enc, pw))
			if err != nil {
				t.Fatalf("decrypting OpenSSL's file: %v", err)
			}
			samePublic(t, k, got)

			// We encrypt, OpenSSL decrypts.
			ours := filepath.Join(dir, "ours.pem")
			if err := WriteKey(ours, k, []byte("interop pass")); err != nil {
				t.Fatal(err)
			}
			dec := filepath.Join(dir, "dec.pem")
			runOpenSSL(t, bin, "pkcs8", "-in", ours, "-out", dec, "-passin", "file:"+pw)
			back, err := LoadKey(dec, nil)
			if err != nil {
				t.Fatal(err)
			}
			samePublic(t, k, back)
		})
	}
}

func TestUnpad(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
		n    int
	}{
		{"full block", bytes.Repeat([]byte{16}, 16), true, 0},
		{"one", append(bytes.Repeat([]byte{0}, 15), 1), true, 15},
		{"zero pad byte", bytes.Repeat([]byte{0}, 16), false, 0},
		{"too large", bytes.Repeat([]byte{17}, 16), false, 0},
		{"inconsistent", append(bytes.Repeat([]byte{0}, 14), 3, 2), false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := unpad(tc.in)
			if ok != tc.ok || (ok && len(out) != tc.n) {
				t.Fatalf("unpad = %d bytes, %v; want %d, %v", len(out), ok, tc.n, tc.ok)
			}
		})
	}
}
