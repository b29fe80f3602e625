package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/policy"
)

// The repository's default bundle and its tests, relative to this package.
const (
	bundleDir = "../../policies/rego"
	testsDir  = "../../policytests"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestPolicyTestCommand(t *testing.T) {
	out, err := runRoot(t, "policy", "test", bundleDir, testsDir)
	if err != nil || !strings.Contains(out, "PASS: ") {
		t.Fatalf("policy test on the default bundle: %v\n%s", err, out)
	}
	// A failing test exits non-zero and names the test.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x_test.rego"), []byte("package x_test\n\ntest_fails if {\n\tfalse\n}\n"), 0o600)
	out, err = runRoot(t, "policy", "test", dir)
	if exitCode(err) != 1 || !strings.Contains(out, "test_fails") {
		t.Fatalf("failing test: exit %d\n%s", exitCode(err), out)
	}
}

func writeTestFile(t *testing.T, dir, name, doc string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyEvalCommand(t *testing.T) {
	dir := t.TempDir()
	decide := func(t *testing.T, args ...string) policy.Decision {
		t.Helper()
		out, err := runRoot(t, append([]string{"policy", "eval", "--bundle", bundleDir}, args...)...)
		if err != nil {
			t.Fatalf("eval: %v\n%s", err, out)
		}
		var d struct {
			Allow      bool               `json:"allow"`
			Violations []policy.Violation `json:"violations"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("output is not a decision: %v\n%s", err, out)
		}
		return policy.Decision{Allow: d.Allow, Violations: d.Violations}
	}
	// The CA's normalisation first: upper case and a trailing dot are the
	// same name as the CA would see it.
	in := writeTestFile(t, dir, "in.json", `{"stage":"order","provisioner":{"name":"acme","type":"acme"},
		"account":{"id":"a1","eab":null,"policy":null},"identifiers":[{"type":"dns","value":"WWW.Host.Internal."}],"time":"2026-11-28T12:00:00Z"}`)
	if d := decide(t, "--input", in); !d.Allow {
		t.Fatalf("www.host.internal refused: %+v", d)
	}
	pub := writeTestFile(t, dir, "pub.json", `{"stage":"order","provisioner":{"name":"acme","type":"acme"},
		"account":{"id":"a1","eab":null,"policy":null},"identifiers":[{"type":"dns","value":"www.example.com"}],"time":"2026-11-28T12:00:00Z"}`)
	// Exit 0 whatever the decision.
	if d := decide(t, "--input", pub); d.Allow || len(d.Violations) != 1 {
		t.Fatalf("www.example.com: %+v", d)
	}
	// --data replaces the authority layer without editing the bundle.
	data := writeTestFile(t, dir, "data.json", `{"authority": {"allow": {"dns": [".example.com"]}}, "provisioners": {"acme": {}}}`)
	if d := decide(t, "--input", pub, "--data", data); !d.Allow {
		t.Fatalf("www.example.com with --data allowing .example.com: %+v", d)
	}
	if d := decide(t, "--input", in, "--data", data); d.Allow {
		t.Fatalf("www.host.internal allowed although --data replaced the authority: %+v", d)
	}
	// An invalid identifier is an error with exit status 2.
	bad := writeTestFile(t, dir, "bad.json", `{"stage":"order","provisioner":{"name":"acme","type":"acme"},"identifiers":[{"type":"dns","value":"bad..name"}]}`)
	if _, err := runRoot(t, "policy", "eval", "--bundle", bundleDir, "--input", bad); exitCode(err) != 2 {
		t.Fatalf("invalid identifier: exit %d, want 2", exitCode(err))
	}
}

func TestPolicyBuildSigned(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	keyFile := filepath.Join(dir, "signing.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	out := filepath.Join(dir, "bundle.tar.gz")
	if o, err := runRoot(t, "policy", "build", bundleDir, "--signing-key", keyFile, "-o", out); err != nil {
		t.Fatalf("build: %v\n%s", err, o)
	}
	// The signed bundle loads with the public key, and not with another.
	quiet := slog.New(slog.DiscardHandler)
	if _, err := policy.NewEngine(policy.EngineConfig{Path: out, Logger: quiet,
		VerificationKeys: map[string]policy.VerificationKey{policy.DefaultKeyID: {PEM: pubPEM, Alg: "ES256"}}}); err != nil {
		t.Fatalf("signed bundle refused with its key: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(other.Public())
	if _, err := policy.NewEngine(policy.EngineConfig{Path: out, Logger: quiet,
		VerificationKeys: map[string]policy.VerificationKey{policy.DefaultKeyID: {PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: otherDER})), Alg: "ES256"}}}); err == nil {
		t.Fatal("signed bundle accepted with another key")
	}
	// eval works on the .tar.gz too, with --data.
	in := writeTestFile(t, dir, "in.json", `{"stage":"order","provisioner":{"name":"acme","type":"acme"},"identifiers":[{"type":"dns","value":"a.internal"}]}`)
	data := writeTestFile(t, dir, "data.json", `{"authority": {"allow": {"dns": [".lan"]}}}`)
	o, err := runRoot(t, "policy", "eval", "--bundle", out, "--input", in, "--data", data)
	if err != nil || !strings.Contains(o, `"allow": false`) {
		t.Fatalf("eval on tar.gz with --data: %v\n%s", err, o)
	}
}
