package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A new provisioner gets an empty layer in a local, unsigned bundle
// directory; a signed directory and a packed bundle are left as they are
// (editing data.json would break the signature, and a .tar.gz is not a
// directory).
func TestAddProvisionerToBundle(t *testing.T) {
	data := `{"policyca": {"authority": {}, "provisioners": {"acme": {}}}}`
	bundle := func(t *testing.T, signed bool) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if signed {
			if err := os.WriteFile(filepath.Join(dir, ".signatures.json"), []byte(`{"signatures": ["x"]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	read := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, "data.json"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	plain := bundle(t, false)
	if err := AddProvisionerToBundle(plain, "dev"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(plain), `"dev"`) {
		t.Fatalf("unsigned directory: %s", read(plain))
	}
	signed := bundle(t, true)
	if err := AddProvisionerToBundle(signed, "dev"); err != nil {
		t.Fatal(err)
	}
	if read(signed) != data {
		t.Fatalf("a signed directory's data.json was edited: %s", read(signed))
	}
	packed := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(packed, []byte("not read"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AddProvisionerToBundle(packed, "dev"); err != nil {
		t.Fatalf("packed bundle: %v", err)
	}
}
