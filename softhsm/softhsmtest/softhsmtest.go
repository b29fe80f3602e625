package softhsmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/policyca/policyca/softhsm"
)

// PINs of the tokens NewToken makes. They are distinctive so that tests
// asserting that a PIN never reaches an error message or a log cannot pass
// by accident.
const (
	UserPIN = "policyca-user-pin-8271"
	SOPIN   = "policyca-so-pin-1946"
)

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// NewToken creates a SoftHSM2 configuration in a fresh t.TempDir(), points
// SOFTHSM2_CONF at it with t.Setenv, and initialises a token labelled
// label with UserPIN and SOPIN. It returns the configuration's path and
// the token's URI,
//
//	pkcs11:token=LABEL?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=UserPIN
//
// to which KeyURI adds a key name. PINFile(conf) holds the same PIN for
// pin-source URIs.
func NewToken(t testing.TB, label string) (conf, moduleURI string) {
	t.Helper()
	if !labelRE.MatchString(label) {
		t.Fatalf("softhsmtest: label %q: use 1-32 of [A-Za-z0-9._-]", label)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatalf("softhsmtest: softhsm2-util not found: install the Debian package softhsm2 (%v)", err)
	}
	module := Module(t)
	conf, err := softhsm.WriteConfig(t.TempDir())
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if err := softhsm.InitToken(context.Background(), conf, label, SOPIN, UserPIN); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	if err := os.WriteFile(PINFile(conf), []byte(UserPIN+"\n"), 0o600); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	return conf, "pkcs11:token=" + label + "?module-path=" + module + "&pin-value=" + UserPIN
}

// Module returns the path of the SoftHSM2 module, failing the test if it
// is not installed.
func Module(t testing.TB) string {
	t.Helper()
	m, err := softhsm.FindModule()
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	return m
}

// KeyURI adds ";object=object" to the path of a token URI.
func KeyURI(tokenURI, object string) string {
	path, query, _ := strings.Cut(tokenURI, "?")
	return path + ";object=" + object + "?" + query
}

// PINFile is the file NewToken wrote the user PIN to (with a newline, as
// an operator's editor would leave it).
func PINFile(conf string) string { return filepath.Join(filepath.Dir(conf), "user-pin") }

// TokenDir is the directory holding the tokens of conf; moving it away
// makes every token of the configuration vanish, a fault tests use.
func TokenDir(conf string) string { return softhsm.TokenDir(conf) }
