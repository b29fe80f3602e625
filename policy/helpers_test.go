package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/core"
)

// writeFiles writes a bundle directory from name → content.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const manifest = `{"revision": "r1", "roots": ["policyca"]}`

// policyBundle is a one-file bundle whose decision is the given Rego
// expression.
func policyBundle(t testing.TB, revision, decision string) string {
	t.Helper()
	return writeFiles(t, map[string]string{
		".manifest":   `{"revision": "` + revision + `", "roots": ["policyca"]}`,
		"policy.rego": "package policyca\n\ndecision := " + decision + "\n",
	})
}

func orderInput(prov string, names ...string) Input {
	in := Input{Stage: StageOrder, Provisioner: ProvisionerInfo{Name: prov, Type: "acme"}, Account: AccountInput{ID: "acct-1"}}
	for _, n := range names {
		typ := core.DNS
		if strings.ContainsAny(n, ":") || (len(n) > 0 && n[0] >= '0' && n[0] <= '9') {
			typ = core.IP
		}
		in.Identifiers = append(in.Identifiers, core.Identifier{Type: typ, Value: n})
	}
	return in
}

func readTarGz(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "/")] = data
	}
}

func writeTarGz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
