package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netns is a network namespace made for one test and deleted by Cleanup
// (which also deletes the veth ends inside it).
func netns(t *testing.T, name string) string {
	t.Helper()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// link joins namespaces a and b with a veth pair and gives each end an
// address of a /24.
func link(t *testing.T, a, aName, aAddr, b, bName, bAddr string) {
	t.Helper()
	ipCmd(t, "link", "add", aName, "netns", a, "type", "veth", "peer", "name", bName, "netns", b)
	ipCmd(t, "-n", a, "addr", "add", aAddr+"/24", "dev", aName)
	ipCmd(t, "-n", b, "addr", "add", bAddr+"/24", "dev", bName)
	ipCmd(t, "-n", a, "link", "set", aName, "up")
	ipCmd(t, "-n", b, "link", "set", bName, "up")
}

// startIn starts bin args… in namespace ns and waits until its output
// contains ready. It is stopped (SIGTERM) when the test ends.
func startIn(t *testing.T, ns, ready, bin string, args ...string) *caProcess {
	t.Helper()
	p := &caProcess{output: &syncBuffer{}, done: make(chan struct{})}
	// ip netns exec execs the program: the process is the binary itself.
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %v output:\n%s", ns, args, p.output.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.output.String(), ready) {
		select {
		case <-p.done:
			t.Fatalf("%v exited: %v\n%s", args, p.err, p.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not ready after 30s:\n%s", args, p.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// raclientBinary builds the test's ACME client and DNS server helper.
func raclientBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "raclient")
	cmd := exec.Command(goTool(), "build", "-o", out, "./e2e/testdata/raclient")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building raclient: %v\n%s", err, b)
	}
	return out
}

func runIn(ctx context.Context, ns, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, bin}, args...)...).CombinedOutput()
	return string(out), err
}

// TestRAInNetworkNamespaces is DESIGN.md shape 2 with real routing: the
// CA in one namespace, an internal network with the client and its DNS in
// another, and the RA in a third with a link to each. Nothing routes
// between the CA and the internal network. Certificates are issued through
// the RA with http-01 and dns-01 (both validated from inside the internal
// network by the RA), while the CA, asked directly, cannot validate the
// same client.
func TestRAInNetworkNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and must run as root (as CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the ip command (iproute2) is required")
	}
	bin := policycaBinary(t)
	client := raclientBinary(t)
	b := make([]byte, 3)
	rand.Read(b)
	sfx := hex.EncodeToString(b)
	caNS := netns(t, "pcca-"+sfx)
	raNS := netns(t, "pcra-"+sfx)
	inNS := netns(t, "pcin-"+sfx)
	// CA 10.201.0.1 — 10.201.0.2 RA 10.202.0.1 — 10.202.0.2 client.
	// The RA namespace does not forward (a new namespace's default).
	link(t, caNS, "c"+sfx, "10.201.0.1", raNS, "r"+sfx+"a", "10.201.0.2")
	link(t, raNS, "r"+sfx+"b", "10.202.0.1", inNS, "i"+sfx, "10.202.0.2")

	dir := t.TempDir()
	caState := filepath.Join(dir, "ca")
	runInit(t, bin, caState, "10.201.0.1:8443", "--resolver", "10.201.0.1:53", "--http01-port", "5002")
	startIn(t, caNS, "msg=serving", bin, "ca", "--state", caState)

	out, err := exec.Command(bin, "ra", "token", "create", "--state", caState, "--name", "site-a", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("ra token create: %v\n%s", err, out)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(out, &tok); err != nil {
		t.Fatalf("token JSON: %v\n%s", err, out)
	}
	raState := filepath.Join(dir, "ra")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	if out, err := runIn(ctx, raNS, bin, "ra", "enroll", "--token", tok.Token, "--state", raState,
		"--listen", "10.202.0.1:14000", "--resolver", "10.202.0.2:53", "--http01-port", "5002"); err != nil {
		t.Fatalf("ra enroll: %v\n%s", err, out)
	}
	startIn(t, raNS, "RA serving", bin, "ra", "--state", raState)

	rootPEM := filepath.Join(caState, "certs", "root.pem")
	pool, _ := rootPool(t, rootPEM)
	raDir := "https://10.202.0.1:14000/acme/acme/directory"
	for _, c := range []struct{ chall, name string }{{"http-01", "web.site-a.internal"}, {"dns-01", "db.site-a.internal"}} {
		pemOut := filepath.Join(dir, c.chall+".pem")
		if out, err := runIn(ctx, inNS, client, "-dir", raDir, "-root", rootPEM, "-name", c.name, "-challenge", c.chall,
			"-bind", "10.202.0.2", "-a", "10.202.0.2", "-out", pemOut); err != nil {
			t.Fatalf("%s through the RA: %v\n%s", c.chall, err, out)
		}
		data, err := os.ReadFile(pemOut)
		if err != nil {
			t.Fatal(err)
		}
		certs := parseCerts(t, data)
		inter := x509.NewCertPool()
		for _, x := range certs[1:] {
			inter.AddCert(x)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: c.name}); err != nil {
			t.Fatalf("%s certificate: %v", c.chall, err)
		}
	}

	// The client has no route to the CA…
	if out, err := runIn(ctx, inNS, client, "-dir", "https://10.201.0.1:8443/acme/acme/directory", "-root", rootPEM,
		"-name", "web.site-a.internal", "-bind", "10.202.0.2", "-a", "10.202.0.2", "-out", filepath.Join(dir, "x.pem")); err == nil ||
		!strings.Contains(out, "unreachable") {
		t.Fatalf("client → CA directly: %v\n%s; want network unreachable", err, out)
	}
	// …and the CA none to the client: asked for the same name (which its
	// DNS resolves to the client), its own http-01 validation fails to
	// connect.
	out2, err := runIn(ctx, caNS, client, "-dir", "https://10.201.0.1:8443/acme/acme/directory", "-root", rootPEM,
		"-name", "web.site-a.internal", "-bind", "10.201.0.1", "-a", "10.202.0.2", "-out", filepath.Join(dir, "y.pem"))
	if err == nil || !strings.Contains(out2, "urn:ietf:params:acme:error:connection") {
		t.Fatalf("CA validating the internal client itself: %v\n%s; want a connection error", err, out2)
	}
}
