package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/policyca/policyca/bench"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/signer/soft"
)

// runBench is runRoot for `policyca bench ARGS`.
func runBench(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runRoot(t, append([]string{"bench"}, args...)...)
}

func TestBenchSignSoftKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "issuer.key")
	if err := soft.WriteKey(path, k, nil); err != nil {
		t.Fatal(err)
	}
	out, err := runBench(t, "sign", "--key", soft.URI(path, ""), "-c", "2", "-n", "50", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res bench.SignResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if res.Signatures != 50 || res.Failed != 0 || res.Concurrency != 2 || !strings.HasPrefix(res.Algorithm, "ECDSA P-256") {
		t.Errorf("result %+v", res)
	}
	out, err = runBench(t, "sign", "--key", soft.URI(path, ""), "-n", "10")
	if err != nil || !strings.Contains(out, "signatures/s") {
		t.Errorf("text output (err %v):\n%s", err, out)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"sign without key":  {"sign"},
		"sign unknown URI":  {"sign", "--key", "nope:x"},
		"sign missing file": {"sign", "--key", "file:/nonexistent/key.pem"},
		"acme without dir":  {"acme"},
		"acme bad eab":      {"acme", "--dir", "https://127.0.0.1:1/d", "--eab-kid", "k", "--eab-hmac", "!!"},
		"acme missing ca":   {"acme", "--dir", "https://127.0.0.1:1/d", "--ca", "/nonexistent.pem"},
		"acme bad mode":     {"acme", "--dir", "https://127.0.0.1:1/d", "--accounts", "many"},
	} {
		out, err := runBench(t, args...)
		if err == nil {
			t.Errorf("%s: no error\n%s", name, out)
			continue
		}
		var ee *exitError
		if strings.HasPrefix(name, "acme") && name != "acme without dir" && (!errors.As(err, &ee) || ee.code != 2) {
			t.Errorf("%s: %v, want exit status 2", name, err)
		}
	}
}

// TestBenchACMECPUProfile: --cpuprofile leaves a complete profile even when
// the run fails (here the directory does not answer), and an unwritable
// path is a usage error before anything runs.
func TestBenchACMECPUProfile(t *testing.T) {
	port := strconv.Itoa(testutil.FreePort(t))
	prof := filepath.Join(t.TempDir(), "gen.pb.gz")
	_, err := runBench(t, "acme", "--dir", "https://127.0.0.1:1/directory", "-n", "1", "--timeout", "5s",
		"--http01-port", port, "--cpuprofile", prof)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("run against a dead directory: %v, want exit status 2", err)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile is %d bytes and not gzip", len(b))
	}

	_, err = runBench(t, "acme", "--dir", "https://127.0.0.1:1/directory", "-n", "1",
		"--http01-port", port, "--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "p"))
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--cpuprofile") {
		t.Errorf("unwritable profile: %v, want exit status 2 naming --cpuprofile", err)
	}
}
