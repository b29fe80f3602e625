package softhsm

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed softhsm2.conf.tmpl
var confTemplate string

var confTmpl = template.Must(template.New("softhsm2.conf").Option("missingkey=error").Parse(confTemplate))

// ConfName and TokenDirName are the names WriteConfig uses inside the
// state directory.
const (
	ConfName     = "softhsm2.conf"
	TokenDirName = "tokens"
)

// ModulePaths are where Debian and other distributions install the
// SoftHSM2 PKCS#11 module, in the order FindModule tries them.
var ModulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// FindModule returns the path of the SoftHSM2 module.
func FindModule() (string, error) {
	for _, p := range ModulePaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("softhsm: libsofthsm2.so not found in %s (install the softhsm2 package)", strings.Join(ModulePaths, ", "))
}

// Config renders the configuration for tokens kept in tokenDir.
func Config(tokenDir string) ([]byte, error) {
	if !filepath.IsAbs(tokenDir) {
		return nil, fmt.Errorf("softhsm: token directory %q is not absolute", tokenDir)
	}
	// SoftHSM2's parser is line based; a newline would inject settings.
	if strings.ContainsAny(tokenDir, "\n\r") {
		return nil, errors.New("softhsm: token directory contains a newline")
	}
	var b bytes.Buffer
	if err := confTmpl.Execute(&b, struct{ TokenDir string }{tokenDir}); err != nil {
		return nil, fmt.Errorf("softhsm: render config: %w", err)
	}
	return b.Bytes(), nil
}

// WriteConfig creates stateDir/tokens and stateDir/softhsm2.conf, and
// returns the absolute path of the configuration, for SOFTHSM2_CONF.
func WriteConfig(stateDir string) (conf string, err error) {
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return "", err
	}
	tokens := filepath.Join(dir, TokenDirName)
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	b, err := Config(tokens)
	if err != nil {
		return "", err
	}
	conf = filepath.Join(dir, ConfName)
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	return conf, nil
}

// TokenDir returns the token directory of a configuration WriteConfig made.
func TokenDir(conf string) string { return filepath.Join(filepath.Dir(conf), TokenDirName) }

// InitToken initialises a new token labelled label in the first free slot
// of the SoftHSM2 configured by conf. softhsm2-util takes the PINs as
// arguments, visible to other local users in the process list while it
// runs: this is for tests and demos, not for guarding real keys.
func InitToken(ctx context.Context, conf, label, soPIN, userPIN string) error {
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return fmt.Errorf("softhsm: softhsm2-util not found (install the softhsm2 package): %w", err)
	}
	cmd := exec.CommandContext(ctx, util, "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", userPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The output does not echo PINs; it says why (e.g. bad label).
		return fmt.Errorf("softhsm: softhsm2-util --init-token --label %s: %w: %s", label, err, strings.TrimSpace(string(out)))
	}
	return nil
}
