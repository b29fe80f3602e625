package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/internal/testutil"
)

// certbotPath is Debian's certbot. The test uses the packaged one on purpose:
// it is the client our users run, with its own ACME library and quirks.
const certbotPath = "/usr/bin/certbot"

const certbotName = "e2e-certbot.internal"

// certbot runs certbot with its state confined to one directory tree and the
// CA's root as the only trusted root for its HTTPS requests.
type certbot struct {
	t         *testing.T
	root      string   // PEM path, given to certbot through REQUESTS_CA_BUNDLE
	server    string   // ACME directory URL
	baseDirs  []string // --config-dir/--work-dir/--logs-dir flags
	logsDir   string
	configDir string
}

func newCertbot(t *testing.T, root, server string) *certbot {
	t.Helper()
	if _, err := os.Stat(certbotPath); err != nil {
		t.Fatalf("certbot is not installed at %s (run make deps): %v", certbotPath, err)
	}
	dir := t.TempDir()
	c := &certbot{
		t:         t,
		root:      root,
		server:    server,
		logsDir:   filepath.Join(dir, "logs"),
		configDir: filepath.Join(dir, "config"),
	}
	c.baseDirs = []string{
		"--config-dir", c.configDir,
		"--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", c.logsDir,
	}
	return c
}

// run executes one certbot subcommand and returns its combined output.
func (c *certbot) run(args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 3*time.Minute)
	defer cancel()
	full := append(append([]string{}, args...), c.baseDirs...)
	full = append(full, "--non-interactive", "--server", c.server)
	cmd := exec.CommandContext(ctx, certbotPath, full...)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+c.root)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// mustRun runs certbot and fails the test, with certbot's log, if it fails.
func (c *certbot) mustRun(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("certbot %s: %v\noutput:\n%s\nletsencrypt.log:\n%s", strings.Join(args, " "), err, out, c.log())
	}
	return out
}

// log returns certbot's debug log of its latest run, which names the ACME
// requests and the server's problem documents.
func (c *certbot) log() string {
	data, err := os.ReadFile(filepath.Join(c.logsDir, "letsencrypt.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(data)
}

// live returns the current certificate and the chain certbot saved for name.
func (c *certbot) live(name string) (leaf *x509.Certificate, intermediates []*x509.Certificate) {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.configDir, "live", name, "fullchain.pem"))
	if err != nil {
		c.t.Fatalf("reading certbot's fullchain: %v", err)
	}
	certs := parseCerts(c.t, data)
	if len(certs) < 2 {
		c.t.Fatalf("fullchain.pem holds %d certificates, want the leaf and at least one intermediate", len(certs))
	}
	return certs[0], certs[1:]
}

// verifyLeaf checks the chain certbot received against the CA's root alone.
func verifyLeaf(t *testing.T, roots *x509.CertPool, leaf *x509.Certificate, chain []*x509.Certificate, name string) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatalf("certificate for %s (serial %x) does not verify against the root: %v", name, leaf.SerialNumber, err)
	}
}

// TestCertbot issues, renews and revokes a certificate with Debian's certbot
// against a freshly initialised CA, validating http-01 through certbot's
// standalone server and a test DNS server that points every name at loopback.
func TestCertbot(t *testing.T) {
	t.Parallel()
	bin := policycaBinary(t)

	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))

	state := filepath.Join(t.TempDir(), "state")
	listen := listenAddr(testutil.FreePort(t))
	http01 := testutil.FreePort(t)
	res := runInit(t, bin, state, listen,
		"--http01-port", strconv.Itoa(http01),
		"--resolver", dns.Addr(),
	)

	roots, _ := rootPool(t, res.Root)
	ca := startCA(t, bin, state)
	waitHealthy(t, ca, httpsClient(roots), listen)

	cb := newCertbot(t, res.Root, res.DirectoryURL)
	standalone := []string{
		"--standalone",
		"--http-01-port", strconv.Itoa(http01),
		"--http-01-address", "127.0.0.1",
	}

	// Issuance.
	cb.mustRun(append([]string{"certonly", "--agree-tos", "--register-unsafely-without-email",
		"-d", certbotName}, standalone...)...)
	first, chain := cb.live(certbotName)
	verifyLeaf(t, roots, first, chain, certbotName)

	// Renewal: certbot reads the lineage's renewal config; the flags repeat
	// what it should have stored, so a lost setting cannot hide a CA bug.
	// Without --no-random-sleep-on-renew certbot waits up to 8 minutes when
	// not run from a terminal.
	cb.mustRun(append([]string{"renew", "--force-renewal", "--no-random-sleep-on-renew"}, standalone...)...)
	renewed, chain := cb.live(certbotName)
	verifyLeaf(t, roots, renewed, chain, certbotName)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("renewal returned the same serial %x", first.SerialNumber)
	}

	// Revocation. --no-delete-after-revoke keeps the files so the second
	// attempt revokes the very same certificate.
	certPath := filepath.Join(cb.configDir, "live", certbotName, "cert.pem")
	cb.mustRun("revoke", "--cert-path", certPath, "--reason", "keycompromise", "--no-delete-after-revoke")

	out, err := cb.run("revoke", "--cert-path", certPath, "--reason", "keycompromise", "--no-delete-after-revoke")
	if err == nil {
		t.Fatalf("second revoke of serial %x succeeded, want alreadyRevoked\noutput:\n%s", renewed.SerialNumber, out)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("second revoke did not run: %v\noutput:\n%s", err, out)
	}
	if log := cb.log(); !strings.Contains(out+log, "alreadyRevoked") {
		t.Fatalf("second revoke failed, but not with alreadyRevoked\noutput:\n%s\nletsencrypt.log:\n%s", out, log)
	}
}
