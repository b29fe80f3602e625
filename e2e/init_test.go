package e2e

import (
	"bytes"
	"github.com/policyca/policyca/internal/testutil"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitJSONAndServe checks what `policyca init --json` promises to
// scripts, that the secrets it writes are private, and that `policyca ca`
// can be stopped and started again on the same state without re-initialising
// (a restart must not mint a new root that clients do not trust).
func TestInitJSONAndServe(t *testing.T) {
	t.Parallel()
	bin := policycaBinary(t)

	state := filepath.Join(t.TempDir(), "state")
	listen := listenAddr(testutil.FreePort(t))
	res := runInit(t, bin, state, listen)

	if want := "https://" + listen + "/"; !strings.HasPrefix(res.DirectoryURL, want) {
		t.Errorf("directory_url = %q, want it under %s", res.DirectoryURL, want)
	}
	for field, path := range map[string]string{"root": res.Root, "config": res.Config} {
		if !filepath.IsAbs(path) {
			t.Errorf("%s = %q, want an absolute path so it works from any directory", field, path)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", field, err)
		}
	}

	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory %s has mode %#o, want 0700", state, perm)
	}
	checkKeyFiles(t, state)

	roots, _ := rootPool(t, res.Root)
	rootBefore := mustRead(t, res.Root)
	configBefore := mustRead(t, res.Config)
	client := httpsClient(roots)

	first := startCA(t, bin, state)
	waitHealthy(t, first, client, listen)
	getDirectory(t, client, res.DirectoryURL)
	if err := first.stop(); err != nil {
		t.Fatalf("policyca ca did not shut down cleanly on SIGTERM: %v\noutput:\n%s", err, first.output.String())
	}
	// The log goes through a buffered writer (internal/logbuf, whose own
	// tests cover the flush at Close): the access log of the request and
	// the shutdown line must have reached standard error by the exit.
	out := first.output.String()
	for _, want := range []string{"http request", "/directory", "shutting down"} {
		if !strings.Contains(out, want) {
			t.Errorf("the CA's log lacks %q after a clean exit:\n%s", want, out)
		}
	}

	// The second start must serve from the same state: same root, same
	// config, and a TLS certificate that still chains to the root.
	second := startCA(t, bin, state)
	waitHealthy(t, second, client, listen)
	getDirectory(t, client, res.DirectoryURL)
	if !bytes.Equal(mustRead(t, res.Root), rootBefore) {
		t.Error("the root changed when policyca ca started a second time")
	}
	if !bytes.Equal(mustRead(t, res.Config), configBefore) {
		t.Error("the config changed when policyca ca started a second time")
	}
	checkKeyFiles(t, state)
}

// checkKeyFiles requires every file under dir that holds a PEM private key
// to be readable by its owner only, and at least one such file to exist (a
// software-key setup that wrote none would mean this check checked nothing).
func checkKeyFiles(t *testing.T, dir string) {
	t.Helper()
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Covers "PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"…
		if !bytes.Contains(data, []byte("PRIVATE KEY-----")) {
			return nil
		}
		keys = append(keys, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file %s has mode %#o, want 0600", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no PEM private key found under %s", dir)
	}
	t.Logf("key files: %s", strings.Join(keys, ", "))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
