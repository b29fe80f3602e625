package server

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/softhsm/softhsmtest"
)

// A CA initialised with --kms on a fresh SoftHSM2 token issues certificates
// with the token's intermediate key; the key is on the token and cannot be
// extracted.
func TestHSMInitAndIssue(t *testing.T) {
	conf, tokenURI := softhsmtest.NewToken(t, "policyca")
	tc := startCAWith(t, func(o *bootstrap.Options) { o.KMS = tokenURI }, nil)
	if !strings.HasPrefix(tc.cfg.Issuer.Key, "pkcs11:") {
		t.Fatalf("issuer key %q is not on the token", tc.cfg.Issuer.Key)
	}
	if _, err := os.Stat(tc.cfg.Path("keys/intermediate.key")); !os.IsNotExist(err) {
		t.Fatal("an intermediate key file exists beside the HSM key")
	}

	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	res := obtain(t, c, "hsm.internal")
	leaf := tc.verifyChain(t, res.Certificate, "hsm.internal")

	// The signature on the leaf is the intermediate's, and the
	// intermediate's public key is the token's.
	inter, err := pki.ReadPEMCerts(tc.cfg.Path(tc.cfg.Issuer.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(inter[0]); err != nil {
		t.Fatal(err)
	}
	out := pkcs11Tool(t, conf, "--list-objects", "--type", "privkey")
	block := objectBlock(out, bootstrap.IntermediateLabel)
	if block == "" {
		t.Fatalf("pkcs11-tool does not list %s:\n%s", bootstrap.IntermediateLabel, out)
	}
	if !strings.Contains(block, "never extractable") || !strings.Contains(block, "sensitive") {
		t.Fatalf("the intermediate key is extractable or not sensitive:\n%s", block)
	}
	pub := pkcs11Tool(t, conf, "--read-object", "--type", "pubkey", "--label", bootstrap.IntermediateLabel)
	if len(pub) == 0 {
		t.Fatal("no public key object for the intermediate")
	}
	spki, err := x509.ParsePKIXPublicKey([]byte(pub))
	if err != nil {
		t.Fatalf("public key object: %v", err)
	}
	if !samePub(spki, inter[0].PublicKey) {
		t.Fatal("the intermediate certificate's key is not the token's key")
	}
}

// When the token goes away under a running CA, issuance fails with
// serverInternal, nothing is stored, /healthz says the signer is unhealthy,
// and issuance recovers by itself when the token is back.
func TestHSMFaultAndRecovery(t *testing.T) {
	conf, tokenURI := softhsmtest.NewToken(t, "policyca")
	tc := startCAWith(t, func(o *bootstrap.Options) { o.KMS = tokenURI }, nil)
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	obtain(t, c, "before.internal")

	dir := softhsmtest.TokenDir(conf)
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := os.Rename(dir+".gone", dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(restore)

	_, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"during.internal"}, Bundle: true})
	if err == nil || !strings.Contains(err.Error(), "serverInternal") {
		t.Fatalf("issuance with the token gone: %v, want serverInternal", err)
	}
	if code, body := tc.health(t); code != http.StatusServiceUnavailable || body["signer"] != "unavailable" {
		t.Fatalf("healthz with the token gone: %d %v", code, body)
	}

	restore()
	// Reconnects are rate-limited (once a second per token): wait for the
	// signer to come back, as a monitoring system polling /healthz would.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := tc.health(t)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz 20s after the token came back: %d %v", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res := obtain(t, c, "after.internal")
	tc.verifyChain(t, res.Certificate, "after.internal")
}

func (tc *testCA) health(t *testing.T) (int, map[string]any) {
	t.Helper()
	resp, err := tc.httpClient().Get(strings.TrimSuffix(tc.dir, "/acme/acme/directory") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("healthz body %q: %v", b, err)
	}
	return resp.StatusCode, m
}

func pkcs11Tool(t *testing.T, conf string, args ...string) string {
	t.Helper()
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Fatalf("pkcs11-tool not found (Debian package opensc; run make deps): %v", err)
	}
	full := append([]string{"--module", softhsmtest.Module(t), "--token-label", "policyca", "--login", "--pin", softhsmtest.UserPIN}, args...)
	cmd := exec.Command(tool, full...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pkcs11-tool %v: %v", args, err)
	}
	return string(out)
}

// objectBlock returns the pkcs11-tool listing of the object labelled label.
func objectBlock(listing, label string) string {
	for _, b := range strings.Split(listing, "Private Key Object") {
		if strings.Contains(b, "label:      "+label+"\n") || strings.Contains(b, "label:      "+label+"\r") {
			return b
		}
	}
	return ""
}

func samePub(a, b any) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	k, ok := a.(eq)
	return ok && k.Equal(b)
}

// init --kms refuses to overwrite keys that are already on the token;
// --existing uses them (a second CA state, e.g. after losing the first).
func TestHSMInitExistingKeys(t *testing.T) {
	_, tokenURI := softhsmtest.NewToken(t, "policyca")
	first, err := bootstrap.Init(bootstrap.Options{StateDir: t.TempDir() + "/a", Listen: "127.0.0.1:1", KMS: tokenURI})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Init(bootstrap.Options{StateDir: t.TempDir() + "/b", Listen: "127.0.0.1:1", KMS: tokenURI}); err == nil {
		t.Fatal("init --kms overwrote (or duplicated) keys already on the token")
	}
	tc := startCAWith(t, func(o *bootstrap.Options) { o.KMS = tokenURI; o.Existing = true }, nil)
	// The new state's intermediate certificate carries the key made by the
	// first init.
	a, err := pki.ReadPEMCerts(filepath.Join(filepath.Dir(first.Config), "certs", "intermediate.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.ReadPEMCerts(tc.cfg.Path(tc.cfg.Issuer.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if !samePub(a[0].PublicKey, b[0].PublicKey) {
		t.Fatal("--existing did not use the key on the token")
	}
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	tc.verifyChain(t, obtain(t, c, "existing.internal").Certificate, "existing.internal")
}
