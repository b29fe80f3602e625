package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBadPassphrase is returned when an encrypted key does not decrypt with
// the passphrase given (or when no passphrase was given for one).
var ErrBadPassphrase = errors.New("soft: wrong passphrase or corrupt encrypted key")

// PEM block types this package reads.
const (
	pemPKCS8          = "PRIVATE KEY"
	pemEncryptedPKCS8 = "ENCRYPTED PRIVATE KEY"
	pemEC             = "EC PRIVATE KEY"
	pemRSA            = "RSA PRIVATE KEY"
)

// maxKeyFile bounds what we read: a key file larger than this is not a key.
const maxKeyFile = 1 << 20

// Open loads the key named by a "file:" URI:
//
//	file:/abs/path/key.pem
//	file:/abs/path/key.pem?pin-source=file:/abs/path/passphrase
//	file:/abs/path/key.pem?pin-value=secret   (discouraged: the secret is in the config)
//
// The passphrase file's trailing newline is ignored. Unknown attributes are
// an error so that a typo is not silently ignored. Errors never contain the
// passphrase.
func Open(_ context.Context, uri string) (crypto.Signer, error) {
	path, pass, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	return LoadKey(path, pass)
}

// URI returns the key URI for path, with pinSource (a passphrase file
// path, or "" for an unencrypted key) as its pin-source; the parts are
// escaped so that any path round-trips through Open.
func URI(path, pinSource string) string {
	u := url.URL{Scheme: "file", Path: path}
	if pinSource != "" {
		pin := url.URL{Scheme: "file", Path: pinSource}
		u.RawQuery = url.Values{"pin-source": {pin.String()}}.Encode()
	}
	return u.String()
}

func parseURI(uri string) (path string, pass []byte, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		// url's error quotes the whole URI, which may hold a pin-value.
		return "", nil, errors.New("soft: malformed file: URI")
	}
	if !strings.EqualFold(u.Scheme, "file") {
		return "", nil, fmt.Errorf("soft: scheme %q is not file", u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", nil, fmt.Errorf("soft: file URI with remote host %q", u.Host)
	}
	path = u.Path
	if u.Opaque != "" {
		path = u.Opaque
	}
	if !filepath.IsAbs(path) {
		// A daemon's working directory is an accident; an absolute path
		// makes the configuration mean the same thing everywhere.
		return "", nil, fmt.Errorf("soft: key path %q is not absolute", path)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", nil, errors.New("soft: malformed query in file: URI")
	}
	// With a PIN in the URI, an unknown "attribute" may be the rest of a
	// PIN holding an unencoded '&': names are not quoted then.
	name := func(k string) string {
		if q.Has("pin-value") {
			return "(not shown: the URI holds a PIN)"
		}
		return strconv.Quote(k)
	}
	for k, v := range q {
		if len(v) != 1 {
			return "", nil, fmt.Errorf("soft: attribute %s given %d times", name(k), len(v))
		}
		switch k {
		case "pin-source":
			pass, err = readPinSource(v[0])
			if err != nil {
				return "", nil, err
			}
		case "pin-value":
			pass = []byte(v[0])
		default:
			return "", nil, fmt.Errorf("soft: unknown attribute %s (want pin-source or pin-value)", name(k))
		}
	}
	if q.Has("pin-source") && q.Has("pin-value") {
		return "", nil, errors.New("soft: both pin-source and pin-value given")
	}
	return filepath.Clean(path), pass, nil
}

// readPinSource reads the passphrase from a pin-source, which RFC 7512
// defines as a URI; we accept "file:" URIs and plain absolute paths.
func readPinSource(src string) ([]byte, error) {
	p := src
	if strings.HasPrefix(strings.ToLower(src), "file:") {
		u, err := url.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("soft: malformed pin-source %q", src)
		}
		p = u.Path
		if u.Opaque != "" {
			p = u.Opaque
		}
	}
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("soft: pin-source %q is not an absolute file path", src)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("soft: read pin-source: %w", err)
	}
	// Editors and `echo` add a newline the operator did not mean as part
	// of the passphrase.
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("soft: pin-source %s is empty", p)
	}
	return b, nil
}

// LoadKey reads a PEM private key from path. passphrase is needed only for
// "ENCRYPTED PRIVATE KEY" blocks.
func LoadKey(path string, passphrase []byte) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("soft: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxKeyFile+1)); err != nil {
		return nil, fmt.Errorf("soft: read %s: %w", path, err)
	}
	if buf.Len() > maxKeyFile {
		return nil, fmt.Errorf("soft: %s is larger than %d bytes", path, maxKeyFile)
	}
	defer clear(buf.Bytes())
	k, err := ParseKey(buf.Bytes(), passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// ParseKey parses the first private key PEM block in data. Other blocks
// before it (certificates, EC PARAMETERS as written by openssl ecparam)
// are skipped.
func ParseKey(data, passphrase []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("soft: no private key PEM block found")
		}
		if _, ok := block.Headers["DEK-Info"]; ok {
			return nil, errors.New("soft: legacy OpenSSL-encrypted PEM (DEK-Info) is not supported; convert with openssl pkcs8 -topk8 -v2 aes-256-cbc")
		}
		switch block.Type {
		case pemPKCS8:
			return signerFrom(x509.ParsePKCS8PrivateKey(block.Bytes))
		case pemEC:
			return signerFrom(x509.ParseECPrivateKey(block.Bytes))
		case pemRSA:
			return signerFrom(x509.ParsePKCS1PrivateKey(block.Bytes))
		case pemEncryptedPKCS8:
			if len(passphrase) == 0 {
				return nil, fmt.Errorf("soft: key is encrypted and no passphrase was given: %w", ErrBadPassphrase)
			}
			der, err := decryptPKCS8(block.Bytes, passphrase)
			if err != nil {
				return nil, err
			}
			defer clear(der)
			k, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				// A wrong passphrase that happens to give valid padding
				// lands here: report it as a passphrase problem.
				return nil, ErrBadPassphrase
			}
			return signerFrom(k, nil)
		}
	}
}

func signerFrom(k any, err error) (crypto.Signer, error) {
	if err != nil {
		return nil, fmt.Errorf("soft: parse private key: %w", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("soft: unsupported private key type %T", k)
	}
}

// MarshalKey returns key as PEM: plain PKCS#8 when passphrase is empty,
// otherwise encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC).
func MarshalKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("soft: marshal key: %w", err)
	}
	defer clear(der)
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
	}
	enc, err := encryptPKCS8(rand.Reader, der, passphrase, kdfIterations)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedPKCS8, Bytes: enc}), nil
}

// WriteKey writes key to path as MarshalKey does, with mode 0600, creating
// missing directories with mode 0700. It refuses to replace an existing
// file: overwriting a CA key by mistake loses the CA.
func WriteKey(path string, key crypto.Signer, passphrase []byte) error {
	data, err := MarshalKey(key, passphrase)
	if err != nil {
		return err
	}
	defer clear(data)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("soft: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("soft: %s already exists; refusing to overwrite a key", path)
	}
	// Write to a temporary file and link it into place so that a crash
	// never leaves a half-written key under the final name, and the link
	// fails instead of replacing a file that appeared meanwhile.
	tmp, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return fmt.Errorf("soft: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("soft: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("soft: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("soft: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("soft: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("soft: install %s: %w", path, err)
	}
	return nil
}
