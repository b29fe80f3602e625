package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the policyca binary built once for the whole test binary:
// building it costs far more than any single test, so tests share it.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "policyca-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot finds the module root above the test's working directory, so the
// tests work wherever `go test` runs them from.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/policyca/policyca")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("e2e: cannot find the policyca module root above the working directory")
		}
		dir = parent
	}
}

// policycaBinary builds ./cmd/policyca. Under `go test -race` the binary is
// built with the race detector too: the packages are then already in the
// build cache from the unit tests, and the e2e run doubles as a race check of
// the real server.
func policycaBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	binOnce.Do(func() {
		out := filepath.Join(binDir, "policyca")
		args := []string{"build", "-o", out}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/policyca")
		cmd := exec.Command(goTool(), args...)
		cmd.Dir = root
		output, err := cmd.CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, output)
			return
		}
		binPath = out
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// goTool prefers the go command of the toolchain running the test, which
// `go test` puts first on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		return filepath.Join(goroot, "bin", "go")
	}
	return "go"
}

// initResult is what `policyca init --json` prints.
type initResult struct {
	DirectoryURL string `json:"directory_url"`
	Root         string `json:"root"`
	Config       string `json:"config"`
}

// runInit runs `policyca init --json` with the given extra flags and decodes
// its output strictly, so a renamed or missing field is noticed here.
func runInit(t *testing.T, bin, state string, listen string, extra ...string) initResult {
	t.Helper()
	args := append([]string{"init", "--state", state, "--listen", listen, "--json"}, extra...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("policyca %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var res initResult
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("policyca init --json: output is not the expected JSON object: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("policyca init --json: trailing output after the JSON object:\n%s", stdout.String())
	}
	if res.DirectoryURL == "" || res.Root == "" || res.Config == "" {
		t.Fatalf("policyca init --json: missing fields in %+v\nstdout:\n%s", res, stdout.String())
	}
	return res
}

// syncBuffer collects a child's stdout and stderr, which os/exec copies from
// two goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caProcess is a running `policyca ca`.
type caProcess struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done is closed
}

// startCA starts `policyca ca --state state [extra…]`. The process is
// stopped when the test ends, and its output goes to the test log if the
// test failed.
func startCA(t testing.TB, bin, state string, extra ...string) *caProcess {
	t.Helper()
	args := append([]string{"ca", "--state", state}, extra...)
	p := &caProcess{output: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting policyca ca: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("policyca %s output:\n%s", strings.Join(args, " "), p.output.String())
		}
	})
	return p
}

// stop asks the CA to shut down gracefully and kills it if it does not. It
// returns the process's exit error (nil for a clean exit).
func (p *caProcess) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	// Generous, because this only guards against a hung test; a CA that
	// ignores SIGTERM is reported through the returned error.
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("policyca ca did not exit within 30s of SIGTERM: %v", p.err)
	}
}

// rootPool reads the PEM root that init wrote.
func rootPool(t testing.TB, path string) (*x509.CertPool, *x509.Certificate) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading root: %v", err)
	}
	certs := parseCerts(t, data)
	if len(certs) != 1 {
		t.Fatalf("root file %s holds %d certificates, want 1", path, len(certs))
	}
	if !certs[0].IsCA {
		t.Fatalf("root %s is not a CA certificate", path)
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs[0])
	return pool, certs[0]
}

// parseCerts decodes every CERTIFICATE block of a PEM file.
func parseCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		certs = append(certs, c)
	}
	return certs
}

// httpsClient trusts only the CA's root, as an ACME client configured with
// REQUESTS_CA_BUNDLE would.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// waitHealthy polls /healthz until it answers 200 over TLS verified against
// the root, or fails the test if the CA exits or never becomes healthy.
func waitHealthy(t testing.TB, p *caProcess, client *http.Client, listen string) {
	t.Helper()
	url := "https://" + listen + "/healthz"
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		select {
		case <-p.done:
			t.Fatalf("policyca ca exited before becoming healthy: %v\noutput:\n%s", p.err, p.output.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("policyca ca not healthy at %s after 90s; last result: %s", url, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getDirectory fetches and decodes the ACME directory.
func getDirectory(t *testing.T, client *http.Client, url string) map[string]any {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatalf("GET %s: decoding directory: %v", url, err)
	}
	for _, k := range []string{"newNonce", "newAccount", "newOrder", "revokeCert"} {
		if s, _ := dir[k].(string); !strings.HasPrefix(s, "https://") {
			t.Errorf("directory %s: %q is %v, want an https URL", url, k, dir[k])
		}
	}
	return dir
}

// listenAddr is the loopback listen address for a port.
func listenAddr(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
