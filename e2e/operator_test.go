package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/policyca/policyca/softhsm/softhsmtest"
)

// policyca runs the binary and returns its stdout, failing the test on error.
func policyca(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("policyca %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// `policyca init --kms` on a fresh SoftHSM2 token, then certbot: the chain
// verifies, and the issuing key is on the token, not extractable.
func TestHSMInitWithCertbot(t *testing.T) {
	bin := policycaBinary(t)
	conf, tokenURI := softhsmtest.NewToken(t, "e2e") // sets SOFTHSM2_CONF for the children
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	state := filepath.Join(t.TempDir(), "state")
	listen := listenAddr(testutil.FreePort(t))
	http01 := testutil.FreePort(t)
	// The PIN from a file, as an operator would give it.
	uri := strings.Replace(tokenURI, "pin-value="+softhsmtest.UserPIN, "pin-source=file:"+softhsmtest.PINFile(conf), 1)
	res := runInit(t, bin, state, listen, "--http01-port", strconv.Itoa(http01), "--resolver", dns.Addr(), "--kms", uri)
	cfg := string(mustRead(t, res.Config))
	if !strings.Contains(cfg, "pkcs11:token=e2e;object=policyca-intermediate") || strings.Contains(cfg, softhsmtest.UserPIN) {
		t.Fatalf("configuration does not name the token key, or holds the PIN:\n%s", cfg)
	}
	if _, err := os.Stat(filepath.Join(state, "keys", "intermediate.key")); !os.IsNotExist(err) {
		t.Fatal("an intermediate key file was written beside the token")
	}

	roots, _ := rootPool(t, res.Root)
	ca := startCA(t, bin, state)
	waitHealthy(t, ca, httpsClient(roots), listen)
	cb := newCertbot(t, res.Root, res.DirectoryURL)
	const name = "hsm-e2e.internal"
	cb.mustRun("certonly", "--agree-tos", "--register-unsafely-without-email", "-d", name,
		"--standalone", "--http-01-port", strconv.Itoa(http01), "--http-01-address", "127.0.0.1")
	leaf, chain := cb.live(name)
	verifyLeaf(t, roots, leaf, chain, name)

	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Fatalf("pkcs11-tool not found (opensc; run make deps): %v", err)
	}
	out, err := exec.Command(tool, "--module", softhsmtest.Module(t), "--token-label", "e2e", "--login",
		"--pin", softhsmtest.UserPIN, "--list-objects", "--type", "privkey").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	listing := string(out)
	for _, label := range []string{"policyca-root", "policyca-intermediate"} {
		i := strings.Index(listing, "label:      "+label)
		if i < 0 {
			t.Fatalf("%s not on the token:\n%s", label, listing)
		}
		block := listing[i:]
		if j := strings.Index(block[1:], "Private Key Object"); j > 0 {
			block = block[:j]
		}
		if !strings.Contains(block, "never extractable") {
			t.Fatalf("%s is extractable:\n%s", label, block)
		}
	}
}

// EAB with Debian's certbot: the provisioner and the key are made with the
// operator CLI; an order inside the account's policy is issued, one
// outside is refused with the account layer named, and the decision log
// shows it.
func TestEABWithCertbot(t *testing.T) {
	t.Parallel()
	bin := policycaBinary(t)
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(netip.MustParseAddr("127.0.0.1"))
	state := filepath.Join(t.TempDir(), "state")
	listen := listenAddr(testutil.FreePort(t))
	http01 := testutil.FreePort(t)
	res := runInit(t, bin, state, listen, "--http01-port", strconv.Itoa(http01), "--resolver", dns.Addr())
	policyca(t, bin, "provisioner", "add", "teams", "--require-eab", "--http01-port", strconv.Itoa(http01),
		"--resolver", dns.Addr(), "--state", state)
	polFile := filepath.Join(t.TempDir(), "web-17.json")
	os.WriteFile(polFile, []byte(`{"allow": {"dns": [".web-17.internal"]}, "max_lifetime": "48h"}`), 0o600)
	var key struct{ KID, HMAC, DirectoryURL string }
	if err := json.Unmarshal([]byte(policyca(t, bin, "eab", "add", "--provisioner", "teams", "--reference", "web-17",
		"--policy", polFile, "--json", "--state", state)), &key); err != nil || key.KID == "" || key.HMAC == "" {
		t.Fatalf("eab add --json: %+v %v", key, err)
	}
	if list := policyca(t, bin, "eab", "list", "--state", state); strings.Contains(list, key.HMAC) || !strings.Contains(list, key.KID) {
		t.Fatalf("eab list shows the secret or misses the key:\n%s", list)
	}

	roots, _ := rootPool(t, res.Root)
	ca := startCA(t, bin, state)
	waitHealthy(t, ca, httpsClient(roots), listen)
	dir := strings.Replace(res.DirectoryURL, "/acme/acme/", "/acme/teams/", 1)
	cb := newCertbot(t, res.Root, dir)
	standalone := []string{"--standalone", "--http-01-port", strconv.Itoa(http01), "--http-01-address", "127.0.0.1"}

	// Without a binding: refused.
	if out, err := cb.run("register", "--agree-tos", "--register-unsafely-without-email"); err == nil || !strings.Contains(out+cb.log(), "externalAccountRequired") {
		t.Fatalf("register without EAB: %v\n%s", err, out)
	}
	cb.mustRun("register", "--agree-tos", "--register-unsafely-without-email", "--eab-kid", key.KID, "--eab-hmac-key", key.HMAC)
	cb.mustRun(append([]string{"certonly", "-d", "a.web-17.internal"}, standalone...)...)
	leaf, chain := cb.live("a.web-17.internal")
	verifyLeaf(t, roots, leaf, chain, "a.web-17.internal")
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 48*time.Hour {
		t.Fatalf("lifetime %v beyond the account's 48h", d)
	}
	out, err := cb.run(append([]string{"certonly", "-d", "db.internal"}, standalone...)...)
	if err == nil {
		t.Fatal("a name outside the account's policy was issued")
	}
	if all := out + cb.log(); !strings.Contains(all, "rejectedIdentifier") || !strings.Contains(all, "account") {
		t.Fatalf("refusal does not name the account layer:\n%s", all)
	}
	var ds []struct {
		Allow      bool
		Violations []struct{ Layer, Value string }
	}
	if err := json.Unmarshal([]byte(policyca(t, bin, "decisions", "list", "--denied", "--json", "--state", state)), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || len(ds[0].Violations) != 1 || ds[0].Violations[0].Layer != "account" || ds[0].Violations[0].Value != "db.internal" {
		t.Fatalf("decision log: %+v", ds)
	}
}
